"""DIV2K through tfds's catalog `div2k` builder, without TensorFlow.

  load_div2k('validation', 'bicubic_x2', data_dir='/data/tfds', manual_dir='/data/div2k')
      -> the 100 DIV2K validation HR images, prepared once as
         <data_dir>/div2k/bicubic_x2/2.0.0 (what `tfds build div2k` writes)

The catalog builder extracts archives and lists files with TensorFlow; the
builder here reads the zips (or their extracted folders) itself, as
jaxsr.datasets.tfds_sets's builders do (whose module docstring says what
tfds can do without TensorFlow).
"""

from __future__ import annotations

import functools
import os
import pathlib
import posixpath
import re
import zipfile
from typing import Callable

import tensorflow_datasets as tfds

from jaxsr.datasets import tfds_records
from jaxsr.datasets.folders import DatasetError, ImageSet

DIV2K_SPLITS = ('train', 'validation')


def _div2k_folders(zip_name: str) -> tuple[str, ...]:
  """Where the images of an official DIV2K zip are once it is extracted.

  DIV2K_valid_HR.zip holds DIV2K_valid_HR/*.png and
  DIV2K_valid_LR_bicubic_X2.zip holds DIV2K_valid_LR_bicubic/X2/*.png; a
  folder named after the zip is accepted too.
  """
  stem = zip_name.removesuffix('.zip')
  head, _, tail = stem.rpartition('_')
  nested = (f'{head}/{tail}',) if re.fullmatch(r'X\d', tail) else ()
  return nested + (stem,)


def _extracted_div2k(manual_dir: pathlib.Path | None, zip_name: str
                     ) -> pathlib.Path | None:
  """The extracted folder of `zip_name` in the manual dir, if it holds PNGs."""
  if manual_dir is None:
    return None
  for folder in _div2k_folders(zip_name):
    path = manual_dir / folder
    if path.is_dir() and next(path.rglob('*.png'), None):
      return path
  return None


def _png_files(source: str | os.PathLike) -> dict[str, Callable[[], bytes]]:
  """File name -> reader of every PNG in a zip or, recursively, a folder."""
  source = pathlib.Path(source)
  if source.is_dir():
    return {p.name: p.read_bytes for p in sorted(source.rglob('*.png'))
            if not p.name.startswith('.')}
  with zipfile.ZipFile(source) as archive:
    names = [n for n in archive.namelist()
             if n.endswith('.png') and not posixpath.basename(n).startswith('.')]

  def read(member: str) -> bytes:
    with zipfile.ZipFile(source) as archive:
      return archive.read(member)
  return {posixpath.basename(n): functools.partial(read, n) for n in sorted(names)}


@functools.cache
def div2k_builder_cls() -> type[tfds.core.GeneratorBasedBuilder]:
  """tfds's catalog `div2k` builder, minus the two steps that need TensorFlow.

  The catalog builder extracts its zips with tfds's extractor and lists them
  with tf.io.gfile; this one reads the zips with zipfile. Its configs, URLs,
  checksums, features and version are the catalog's, so it writes the same
  `<data_dir>/div2k/<config>/2.0.0` that `tfds build div2k` would. It also
  takes the zips' extracted folders from the manual dir.
  """
  catalog = tfds.builder_cls('div2k')

  class Div2k(catalog, skip_registration=True):
    name = 'div2k'
    # README, citation and checksums.tsv of the catalog builder, not of jaxsr.
    pkg_dir_path = catalog._get_pkg_dir_path()
    _checksums_path = catalog._checksums_path
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        'Optional, to prepare offline: the official zips of the config (e.g. '
        'DIV2K_train_HR.zip, DIV2K_valid_HR.zip, DIV2K_train_LR_bicubic_X2.zip, '
        'DIV2K_valid_LR_bicubic_X2.zip) from https://data.vision.ee.ethz.ch/cvl/DIV2K/, '
        'or their extracted folders (DIV2K_train_HR/, DIV2K_valid_HR/, '
        'DIV2K_train_LR_bicubic/X2/, DIV2K_valid_LR_bicubic/X2/).')

    def _split_generators(self, dl_manager):
      urls = self.builder_config.download_urls
      manual_dir = tfds_records.manual_dir_of(dl_manager)
      paths, to_download, missing = {}, {}, []
      for key, url in urls.items():
        info = self.url_infos[url]
        folder = _extracted_div2k(manual_dir, info.filename)
        if folder:
          paths[key] = folder
          continue
        to_download[key] = url
        if not ((manual_dir and (manual_dir / info.filename).is_file()) or
                tfds_records.is_downloaded(dl_manager, self.name, url, info.checksum)):
          missing.append(info.filename)
      if missing:
        tfds_records.check_reachable(urls['valid_hr_url'], (
            f'div2k/{self.builder_config.name}: {", ".join(missing)} not in the '
            f'manual dir ({manual_dir or "missing or empty"}), neither as zips nor '
            'extracted'))
      if to_download:
        # tfds takes a zip from the manual dir (by its checksums.tsv file
        # name, checksum verified) before it tries to download it.
        paths.update(dl_manager.download(to_download))
      return {
          'train': self._generate_examples(paths['train_lr_url'],
                                           paths['train_hr_url']),
          'validation': self._generate_examples(paths['valid_lr_url'],
                                                paths['valid_hr_url']),
      }

    def _generate_examples(self, lr_path, hr_path):
      lr_files, hr_files = _png_files(lr_path), _png_files(hr_path)
      for key, read_lr in lr_files.items():
        # As the catalog builder does: '0801x2.png' is the LR of '0801.png'.
        hr_key = key[:4] + '.png'
        if hr_key not in hr_files:
          raise DatasetError(f'div2k: {key} in {lr_path} has no HR image '
                             f'{hr_key} in {hr_path}')
        yield key, {'lr': read_lr(), 'hr': hr_files[hr_key]()}

  return Div2k


def load_div2k(split: str = 'validation', config: str = 'bicubic_x2',
               data_dir: str | os.PathLike | None = None,
               manual_dir: str | os.PathLike | None = None,
               image: str = 'hr') -> ImageSet:
  """DIV2K HR (or, with image='lr', the config's LR) images of one split.

  Prepares tfds's `div2k/<config>` (both splits, about 5 GB of downloads for
  the x2 configs) once, without TensorFlow, then reads it with
  `tfds.data_source`. The records carry no file names and tfds shuffles them,
  so images are named by record index.
  """
  if split not in DIV2K_SPLITS:
    raise DatasetError(f'div2k: unknown split {split!r}, expected one of '
                       f'{list(DIV2K_SPLITS)}')
  if image not in ('hr', 'lr'):
    raise DatasetError(f"div2k: image must be 'hr' or 'lr', got {image!r}")
  builder_cls = div2k_builder_cls()
  configs = [c.name for c in builder_cls.BUILDER_CONFIGS]
  if config not in configs:
    raise DatasetError(f'div2k: unknown config {config!r}, expected one of {configs}')
  builder = builder_cls(config=config, data_dir=data_dir)
  tfds_records.prepare_builder(builder, manual_dir)
  tfds_name = f'div2k/{config}'
  source = tfds_records.array_record_source(tfds_name, split, builder.data_dir_root, ['lr', 'hr'])
  set_name = f'div2k_{split}' if image == 'hr' else f'div2k_{split}_{config}_lr'
  return ImageSet(
      name=set_name, image_names=tuple(f'record_{i:03d}' for i in range(len(source))),
      loaders=tuple(functools.partial(tfds_records.load_record, source, i, image, tfds_name)
                    for i in range(len(source))))

