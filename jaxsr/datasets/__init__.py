"""Image sets by name, from one data root.

The data root is the `data_dir` argument (`--data_dir`) when given, else
`$JAXSR_DATA_DIR`, else `$XDG_CACHE_HOME/jaxsr/datasets` (~/.cache/...). A
registered set lives in `<root>/<name>/` (case-insensitive, optionally with an
`HR/` subfolder); any folder path works as a set named after the folder. The
embedded sets (`embedded_train`, `embedded_test`) are photos shipped inside
scikit-image and need no data root.

  get_dataset('set5')                -> ImageSet of <root>/set5/*.png
  get_dataset('/data/my_photos')     -> ImageSet named 'my_photos'
  get_dataset('embedded_test')       -> held-out scikit-image photos
"""

from __future__ import annotations

import os
import pathlib

from jaxsr.datasets.embedded import EMBEDDED_SETS, embedded_set
from jaxsr.datasets.folders import DatasetError, ImageSet, folder_set

# name -> (description, sub-folder candidates under the root)
FOLDER_SETS = {
    'set5': ('Set5, 5 evaluation images (Bevilacqua et al. 2012)', ('set5',)),
    'set14': ('Set14, 14 evaluation images (Zeyde et al. 2010)', ('set14',)),
    'b100': ('B100 / BSD100, the 100 BSDS300 test images', ('b100', 'bsd100')),
    'urban100': ('Urban100, 100 urban scenes (Huang et al. 2015)', ('urban100',)),
    't91': ('T91, 91 training images (Yang et al. 2010)', ('t91', 'yang91')),
    'bsd200': ('BSD200, the 200 BSDS300 training images', ('bsd200',)),
    'div2k': ('DIV2K train HR (Agustsson & Timofte 2017): <root>/div2k/DIV2K_train_HR',
              ('div2k/DIV2K_train_HR', 'div2k')),
}


def list_datasets() -> list[str]:
  return sorted(FOLDER_SETS) + sorted(EMBEDDED_SETS)


def data_root(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  if data_dir:
    return pathlib.Path(data_dir).expanduser()
  if os.environ.get('JAXSR_DATA_DIR'):
    return pathlib.Path(os.environ['JAXSR_DATA_DIR']).expanduser()
  cache = os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache'
  return pathlib.Path(cache) / 'jaxsr' / 'datasets'


def _root_source(data_dir) -> str:
  if data_dir:
    return 'from --data_dir'
  if os.environ.get('JAXSR_DATA_DIR'):
    return 'from $JAXSR_DATA_DIR'
  return 'the default cache folder; set JAXSR_DATA_DIR or --data_dir'


def _find_folder(root: pathlib.Path, candidates) -> pathlib.Path | None:
  if not root.is_dir():
    return None
  entries = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
  for candidate in candidates:
    first, *rest = candidate.split('/')
    path = entries.get(first.lower())
    if path is None:
      continue
    for part in rest:
      path = path / part
    if path.is_dir():
      return path / 'HR' if (path / 'HR').is_dir() else path
  return None


def get_dataset(name_or_path: str, data_dir: str | os.PathLike | None = None) -> ImageSet:
  """A registered set by name, an embedded set, or any folder of images."""
  key = str(name_or_path)
  if key in EMBEDDED_SETS:
    return embedded_set(key)
  if key.lower() in FOLDER_SETS:
    root = data_root(data_dir)
    if not root.is_dir():
      raise DatasetError(
          f'data root {root} ({_root_source(data_dir)}) does not exist: expected a '
          f'folder holding {key.lower()}/ and the other benchmark sets')
    folder = _find_folder(root, FOLDER_SETS[key.lower()][1])
    if folder is None:
      raise DatasetError(f'set {key!r}: no folder {key.lower()}/ under the data root '
                         f'{root} ({_root_source(data_dir)})')
    return folder_set(folder, name=key.lower())
  path = pathlib.Path(key).expanduser()
  if path.is_dir():
    return folder_set(path)
  if os.sep in key or path.suffix or path.exists():
    raise DatasetError(f'{key}: not a folder (a set may be a folder of PNG/BMP/JPEG '
                       'images)')
  raise DatasetError(f'unknown set {key!r}: valid names are {list_datasets()}, '
                     'or a path to a folder of images')


def has_dataset(name: str, data_dir: str | os.PathLike | None = None) -> bool:
  """True when `name` can be loaded and is not empty."""
  try:
    return len(get_dataset(name, data_dir)) > 0
  except DatasetError:
    return False


__all__ = ['DatasetError', 'ImageSet', 'data_root', 'get_dataset', 'has_dataset',
           'list_datasets', 'FOLDER_SETS', 'EMBEDDED_SETS']
