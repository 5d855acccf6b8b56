"""Image sets by name, from one data root.

The data root is the `data_dir` argument (`--data_dir`) when given, else
`$JAXSR_DATA_DIR`, else `$XDG_CACHE_HOME/jaxsr/datasets` (~/.cache/...).
A registered set lives in `<root>/<name>/` (any case: `Set5/` works), or in
its `HR/` subfolder when it has one (the layout of EDSR's benchmark.tar);
`b100` also accepts `bsd100/`, `t91` also `yang91/`. DIV2K keeps the folder
names of its official zips: `div2k` is `<root>/div2k/DIV2K_train_HR/` (or
`<root>/DIV2K_train_HR/`, or the images directly in `<root>/div2k/`),
`div2k_valid` is `<root>/div2k/DIV2K_valid_HR/`. Any folder path works as a
set named after the folder. The embedded sets (`embedded_train`,
`embedded_test`) are photos shipped inside scikit-image and need no root.

  get_dataset('set5')                -> ImageSet of <root>/set5/*.png
  get_dataset('/data/my_photos')     -> ImageSet named 'my_photos'
  get_dataset('embedded_test')       -> held-out scikit-image photos

TensorFlow-datasets builders of the benchmark sets and DIV2K are in
`jaxsr.datasets.tfds_sets` (imported on demand: it imports tfds).
"""

from __future__ import annotations

import os
import pathlib

from jaxsr.datasets.embedded import EMBEDDED_SETS, embedded_set
from jaxsr.datasets.folders import DatasetError, DatasetImageError, ImageSet, folder_set

ENV_VAR = 'JAXSR_DATA_DIR'

# name -> (description, folder candidates under the root, first match wins)
FOLDER_SETS = {
    'set5': ('Set5, 5 evaluation images (Bevilacqua et al. 2012)', ('set5',)),
    'set14': ('Set14, 14 evaluation images (Zeyde et al. 2010)', ('set14',)),
    'b100': ('B100 / BSD100, the 100 BSDS300 test images', ('b100', 'bsd100')),
    'urban100': ('Urban100, 100 urban scenes (Huang et al. 2015)', ('urban100',)),
    't91': ('T91, 91 training images (Yang et al. 2010)', ('t91', 'yang91')),
    'bsd200': ('BSD200, the 200 BSDS300 training images', ('bsd200',)),
    'div2k': ('DIV2K, the 800 training HR images (Agustsson & Timofte 2017)',
              ('div2k/DIV2K_train_HR', 'DIV2K_train_HR', 'div2k')),
    'div2k_valid': ('DIV2K, the 100 validation HR images',
                    ('div2k/DIV2K_valid_HR', 'DIV2K_valid_HR')),
}


def list_datasets() -> list[str]:
  """Registered set names: folder sets under the data root, then embedded."""
  return sorted(FOLDER_SETS) + sorted(EMBEDDED_SETS)


def data_root(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """`data_dir`, else $JAXSR_DATA_DIR, else the per-user cache; may not exist."""
  if data_dir:
    return pathlib.Path(data_dir).expanduser()
  if os.environ.get(ENV_VAR):
    return pathlib.Path(os.environ[ENV_VAR]).expanduser()
  cache = os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache'
  return pathlib.Path(cache).expanduser() / 'jaxsr' / 'datasets'


def _root_source(data_dir) -> str:
  if data_dir:
    return 'from --data_dir'
  if os.environ.get(ENV_VAR):
    return f'from ${ENV_VAR}'
  return f'the default, as neither --data_dir nor ${ENV_VAR} is set'


def _child(folder: pathlib.Path, name: str) -> pathlib.Path | None:
  """The sub-folder `name` of `folder`, the exact case first, else any case."""
  exact = folder / name
  if exact.is_dir():
    return exact
  try:
    matches = sorted(p for p in folder.iterdir()
                     if p.name.lower() == name.lower() and p.is_dir())
  except OSError:
    return None
  return matches[0] if matches else None


def _find_folder(root: pathlib.Path, candidates) -> pathlib.Path | None:
  for candidate in candidates:
    path = root
    for part in candidate.split('/'):
      path = _child(path, part) if path else None
    if path:
      return _child(path, 'HR') or path
  return None


def _candidates_text(candidates) -> str:
  return ' or '.join(f'{c}/' for c in candidates)


def get_dataset(name_or_path: str | os.PathLike,
                data_dir: str | os.PathLike | None = None) -> ImageSet:
  """A registered set by name, an embedded set, or any folder of images.

  Raises:
    DatasetError: unknown name, missing data root or set folder, a folder
      without images. `ImageSet.load` raises DatasetImageError (also an
      image_io.ImageReadError) for an unreadable or truncated image.
  """
  key = os.fspath(name_or_path)
  if key.lower() in EMBEDDED_SETS:
    return embedded_set(key.lower())
  if key.lower() in FOLDER_SETS:
    name = key.lower()
    root = data_root(data_dir)
    candidates = FOLDER_SETS[name][1]
    if not root.is_dir():
      raise DatasetError(
          f'data root {root} ({_root_source(data_dir)}) does not exist: point '
          f'${ENV_VAR} or --data_dir at the folder holding '
          f'{_candidates_text(candidates)} (the sets side by side: set5/, set14/, '
          'b100/, ...); embedded_train and embedded_test need no data')
    folder = _find_folder(root, candidates)
    if folder is None:
      raise DatasetError(f'set {name!r}: no folder {_candidates_text(candidates)} '
                         f'under the data root {root} ({_root_source(data_dir)})')
    return folder_set(folder, name=name)
  path = pathlib.Path(key).expanduser()
  if path.is_dir():
    return folder_set(path)
  if path.exists():
    raise DatasetError(f'{key}: is a file; a set is a registered name or a folder '
                       'of images')
  if os.sep in key or '/' in key or path.suffix:
    raise DatasetError(f'{key}: no such folder (a set is a registered name or a '
                       'folder of images)')
  raise DatasetError(f'unknown set {key!r}: valid names are {list_datasets()}, '
                     'or give a path to a folder of images')


def has_dataset(name: str, data_dir: str | os.PathLike | None = None) -> bool:
  """True when `name` (a set name or folder) exists and holds images."""
  try:
    return len(get_dataset(name, data_dir)) > 0
  except DatasetError:
    return False


__all__ = ['DatasetError', 'DatasetImageError', 'ImageSet', 'data_root', 'get_dataset',
           'has_dataset', 'list_datasets', 'ENV_VAR', 'FOLDER_SETS', 'EMBEDDED_SETS']
