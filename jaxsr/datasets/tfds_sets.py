"""TensorFlow-datasets builders for the benchmark sets, used without TensorFlow.

Measured with tensorflow-datasets 4.9.10 and no TensorFlow: builders can write
`array_record` files (not the default tfrecord) and `tfds.data_source` reads
them (image features decoded by Pillow, or left as bytes by SkipDecoding).
These import TensorFlow and fail: `tfds.load`, `as_dataset`, `ImageFolder`,
tfds's archive extraction (`dl_manager.extract`, `download_and_extract`,
`iter_archive`), `tf.io.gfile` (the catalog DIV2K builder lists its files
with it), `Image` encoding of arrays, and `tfds.list_builders()` with its
community index. So these builders download with `dl_manager.download`
only, read archives with zipfile/tarfile, give the `Image` features PNG bytes
encoded by Pillow, and the ImageSets decode the records with
`image_io.decode_image`. TensorFlow stays an optional extra; with it, tfds's
own decoder reads these records too (grayscale repeated to 3 channels).

  load_tfds_set('set5', '/data/tfds', manual_dir='/data/benchmark')
      -> ImageSet 'set5'; prepared once as <data_dir>/sr_benchmark/set5/1.0.0
  load_tfds_set('t91', '/data/tfds', manual_dir='/data/sets')
      -> ImageSet 't91' from /data/sets/t91/; as <data_dir>/sr_training/t91/1.0.0
  load_tfds_set('div2k/bicubic_x2', '/data/tfds', manual_dir='/data/div2k')
      -> the 100 DIV2K validation HR images, via tfds's catalog `div2k` builder
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import pathlib
import posixpath
import re
import socket
import tarfile
import urllib.parse
import urllib.request
import zipfile
from typing import Callable, Sequence

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import resource as tfds_resource

from jaxsr import image_io
from jaxsr.datasets import FOLDER_SETS
from jaxsr.datasets.folders import DatasetError, DatasetImageError, ImageSet

# EDSR's evaluation archive (https://github.com/sanghyun-son/EDSR-PyTorch),
# about 250 MB: benchmark/{Set5,Set14,B100,Urban100}/HR/*.png, next to their
# LR_bicubic/X{2,3,4} versions.
BENCHMARK_URL = 'https://cv.snu.ac.kr/research/EDSR/benchmark.tar'
BENCHMARK_SETS = ('set5', 'set14', 'b100', 'urban100')
SPLIT = 'test'
DIV2K_SPLITS = ('train', 'validation')

_ARCHIVE_SUFFIXES = ('.zip', '.tar', '.tar.gz', '.tgz', '.tar.bz2', '.tar.xz')

_CITATIONS = {
    'set5': 'M. Bevilacqua, A. Roumy, C. Guillemot, M.-L. Alberi Morel. '
            'Low-complexity single-image super-resolution based on nonnegative '
            'neighbor embedding. BMVC 2012.',
    'set14': 'R. Zeyde, M. Elad, M. Protter. On single image scale-up using '
             'sparse-representations. Curves and Surfaces 2010.',
    'b100': 'D. Martin, C. Fowlkes, D. Tal, J. Malik. A database of human '
            'segmented natural images and its application to evaluating '
            'segmentation algorithms and measuring ecological statistics. '
            'ICCV 2001.',
    'urban100': 'J.-B. Huang, A. Singh, N. Ahuja. Single image super-resolution '
                'from transformed self-exemplars. CVPR 2015.',
    't91': 'J. Yang, J. Wright, T. S. Huang, Y. Ma. Image super-resolution via '
           'sparse representation. IEEE TIP 2010.',
    'bsd200': 'D. Martin, C. Fowlkes, D. Tal, J. Malik. A database of human '
              'segmented natural images and its application to evaluating '
              'segmentation algorithms and measuring ecological statistics. '
              'ICCV 2001.',
}

@dataclasses.dataclass(eq=False)
class BenchmarkConfig(tfds.core.BuilderConfig):
  folder_names: tuple[str, ...] = ()


class SrBenchmark(tfds.core.GeneratorBasedBuilder):
  """HR images of Set5, Set14, B100 and Urban100: one config each.

  One builder for all four so that they share one download of BENCHMARK_URL
  (tfds caches downloads per builder name).
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'HR images as PNG, sorted by file name.'}
  HOMEPAGE = 'https://github.com/sanghyun-son/EDSR-PyTorch'
  BUILDER_CONFIGS = [
      BenchmarkConfig(name=name, description=FOLDER_SETS[name][0],
                      folder_names=FOLDER_SETS[name][1])
      for name in BENCHMARK_SETS
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Optional: without these files the set is downloaded from {BENCHMARK_URL}.
  Put in the manual dir (default <data_dir>/downloads/manual) one of:
    * a folder named after the set (Set5, Set14, B100 or BSD100, Urban100; any
      case), at any depth, holding the HR images or an HR/ subfolder of them,
      e.g. the extracted benchmark/ folder of benchmark.tar;
    * an archive (.zip, .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) holding such a
      folder, e.g. benchmark.tar itself, or holding only the set's images;
    * the set's HR images themselves (PNG, BMP, JPEG, TIFF, WebP), directly in
      the manual dir.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.builder_config.description,
        features=tfds.features.FeaturesDict({
            'name': tfds.features.Text(),
            # Grayscale images are stored as 1-channel PNGs: tfds's decoder
            # repeats them to 3 channels, load_tfds_set keeps (H, W, 1).
            'hr': tfds.features.Image(shape=(None, None, 3),
                                      encoding_format='png'),
        }),
        homepage=self.HOMEPAGE,
        citation=_CITATIONS.get(self.builder_config.name, ''),
        # Records in file-name order, as get_dataset lists a folder.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    source, members = _from_manual_dir(dl_manager, self.builder_config.folder_names)
    if not members:
      source, members = self._download(dl_manager)
    return {SPLIT: self._generate_examples(source, members)}

  def _download(self, dl_manager) -> tuple[pathlib.Path, dict[str, str]]:
    """(source, members) of the sets' archive, when the manual dir has none."""
    name = self.builder_config.name
    folder_names = self.builder_config.folder_names
    manual_dir = _manual_dir(dl_manager)
    if not _is_downloaded(dl_manager, self.name, BENCHMARK_URL):
      _check_reachable(
          BENCHMARK_URL,
          f'{name}: found no {"/".join(folder_names)} folder, images or '
          f'archive of them in the manual dir ({manual_dir or "missing or empty"})')
    source = pathlib.Path(dl_manager.download(BENCHMARK_URL))
    members = _select_images(_list_files(source), folder_names)
    if not members:
      raise DatasetError(f'{name}: {BENCHMARK_URL} (downloaded to {source}) '
                         f'holds no {"/".join(folder_names)} folder of images')
    return source, members

  def _generate_examples(self, source: pathlib.Path, members: dict[str, str]):
    for key, image in _read_images(source, members):
      name = posixpath.splitext(posixpath.basename(key))[0]
      yield key, {'name': name, 'hr': _png_bytes(image)}


TRAINING_SETS = ('t91', 'bsd200')


class SrTraining(SrBenchmark):
  """HR images of T91 and BSD200 (together the 291 set): one config each.

  No archive of these is hosted with a stable checksum, so they come only
  from the manual dir, e.g. the data root itself (its t91/ or yang91/, and
  bsd200/ folders).
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'HR images as PNG, sorted by file name.'}
  BUILDER_CONFIGS = [
      BenchmarkConfig(name=name, description=FOLDER_SETS[name][0],
                      folder_names=FOLDER_SETS[name][1])
      for name in TRAINING_SETS
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put in the manual dir (e.g. the data root) a folder named after the set
  (t91 or yang91, bsd200; any case), at any depth, holding the HR images or
  an HR/ subfolder of them, or an archive holding such a folder.
  """
  HOMEPAGE = ''

  def _download(self, dl_manager) -> tuple[pathlib.Path, dict[str, str]]:
    name = self.builder_config.name
    raise DatasetError(
        f'{name}: found no {"/".join(self.builder_config.folder_names)} folder, images '
        f'or archive of them in the manual dir ({_manual_dir(dl_manager) or "missing or empty"})')


def _manual_dir(dl_manager) -> pathlib.Path | None:
  """The manual dir when it exists and is not empty, else None."""
  try:
    return pathlib.Path(dl_manager.manual_dir)
  except AssertionError:
    return None


def _from_manual_dir(dl_manager, folder_names: Sequence[str]
                     ) -> tuple[pathlib.Path | None, dict[str, str]]:
  """The set's images in the manual dir: a set folder, loose images, or an archive."""
  manual_dir = _manual_dir(dl_manager)
  if manual_dir is None:
    return None, {}
  archives = sorted(p for p in manual_dir.iterdir()
                    if p.is_file() and p.name.lower().endswith(_ARCHIVE_SUFFIXES))
  for source in [manual_dir, *archives]:
    members = _select_images(_list_files(source), folder_names)
    if members:
      return source, members
  return None, {}


def _list_files(source: pathlib.Path) -> dict[str, str]:
  """Normalised relative path -> how to address it in `source` (folder or archive)."""
  if source.is_dir():
    return {p.relative_to(source).as_posix(): str(p)
            for p in source.rglob('*') if p.is_file()}
  try:
    if zipfile.is_zipfile(source):
      with zipfile.ZipFile(source) as archive:
        return {posixpath.normpath(info.filename): info.filename
                for info in archive.infolist() if not info.is_dir()}
    with tarfile.open(source) as archive:
      return {posixpath.normpath(member.name): member.name
              for member in archive.getmembers() if member.isfile()}
  except (OSError, tarfile.TarError, zipfile.BadZipFile) as e:
    raise DatasetError(f'{source}: not a zip or tar archive that can be read '
                       f'({e})') from None


def _select_images(files: dict[str, str], folder_names: Sequence[str]
                   ) -> dict[str, str]:
  """The images of the shallowest set folder (its HR/ first), else loose ones.

  A set folder is named like one of `folder_names`; loose images lie at the
  top of the folder or archive. Returns {relative path: address}, sorted.
  """
  images = {}
  for path, address in files.items():
    parts = path.split('/')
    hidden = any(p.startswith('.') or p == '__MACOSX' for p in parts)
    if not hidden and posixpath.splitext(path)[1].lower() in image_io.IMAGE_EXTENSIONS:
      images[path] = address
  names = {n.lower() for n in folder_names}

  def rank(folder: str) -> tuple[int, int] | None:
    parts = folder.lower().split('/') if folder else []
    if parts and parts[-1] in names:
      return len(parts), 1
    if len(parts) >= 2 and parts[-1] == 'hr' and parts[-2] in names:
      return len(parts) - 1, 0
    return None

  folders = {posixpath.dirname(path) for path in images}
  ranked = sorted((r, f) for f in folders if (r := rank(f)) is not None)
  if ranked:
    chosen = ranked[0][1]
  elif '' in folders:
    chosen = ''
  else:
    return {}
  return {path: images[path] for path in sorted(images)
          if posixpath.dirname(path) == chosen}


def _read_images(source: pathlib.Path, members: dict[str, str]):
  """Yields (relative path, uint8 image) for `members` of a folder or archive."""
  if source.is_dir():
    for path, address in members.items():
      try:
        yield path, image_io.read_image(address)
      except image_io.ImageReadError as e:
        raise DatasetImageError(str(e)) from None
  elif zipfile.is_zipfile(source):
    with zipfile.ZipFile(source) as archive:
      for path, address in members.items():
        yield path, _decode(archive.read(address), f'{source}:{address}')
  else:
    with tarfile.open(source) as archive:
      for path, address in members.items():
        yield path, _decode(archive.extractfile(address).read(),
                            f'{source}:{address}')


def _decode(data: bytes, where: str) -> np.ndarray:
  """uint8 (H, W, 3) or (H, W, 1), as image_io.read_image gives for a file."""
  try:
    return image_io.decode_image(data, where)
  except image_io.ImageReadError as e:
    raise DatasetImageError(str(e)) from None


def _png_bytes(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
      buffer, format='PNG')
  return buffer.getvalue()


def _is_downloaded(dl_manager, builder_name: str, url: str,
                   checksum: str | None = None) -> bool:
  """Whether tfds's download cache holds `url` (named by its checksum if registered)."""
  path = (dl_manager.download_dir / builder_name /
          tfds_resource.get_dl_fname(url, checksum))
  return tfds_resource.is_locally_cached(path)


def _check_reachable(url: str, context: str) -> None:
  """Raises DatasetError at once when the host of `url` cannot be reached.

  tfds retries a failed download 10 times with exponential backoff, minutes
  in all; offline this makes that a clear error instead.
  """
  parts = urllib.parse.urlsplit(url)
  if urllib.request.getproxies().get(parts.scheme):
    return  # Only the proxy can tell.
  port = parts.port or (443 if parts.scheme == 'https' else 80)
  try:
    socket.create_connection((parts.hostname, port), timeout=10).close()
  except OSError as e:
    raise DatasetError(f'{context}; and {parts.hostname} cannot be reached to '
                       f'download {url} ({e}): put the files in the manual dir '
                       'or run once with network access') from None


def _prepare(builder: tfds.core.DatasetBuilder,
             manual_dir: str | os.PathLike | None) -> None:
  """Writes array_record files unless prepared; never asks GCS for them."""
  builder.download_and_prepare(
      file_format='array_record',
      download_config=tfds.download.DownloadConfig(
          manual_dir=os.fspath(manual_dir) if manual_dir else None,
          try_download_gcs=False))


def _data_source(tfds_name: str, split: str, data_dir, image_keys: Sequence[str]):
  """The split's records; image features stay PNG bytes for Pillow."""
  try:
    return tfds.data_source(
        tfds_name, split=split, data_dir=data_dir, download=False,
        decoders={k: tfds.decode.SkipDecoding() for k in image_keys},
        try_gcs=False)
  except NotImplementedError:  # Prepared elsewhere in tfrecord, the default.
    raise DatasetError(
        f'{tfds_name} under {data_dir} is not in array_record files, the only '
        'format tfds.data_source reads: delete it or use another data_dir') from None


def _load_record(source, index: int, key: str, where: str) -> np.ndarray:
  return _decode(source[index][key], f'{where} record {index}')


def load_tfds_set(name: str, data_dir: str | os.PathLike | None,
                  manual_dir: str | os.PathLike | None = None, *,
                  split: str | None = None) -> ImageSet:
  """A benchmark or training set through its builder, or DIV2K's HR images.

  `name` is set5, set14, b100 or urban100 (or `sr_benchmark/<name>`), or t91
  or bsd200 (`sr_training/<name>`, from the manual dir only): this
  prepares `<data_dir>/sr_benchmark/<name>/` once, from `manual_dir` (see
  SrBenchmark.MANUAL_DOWNLOAD_INSTRUCTIONS; default <data_dir>/downloads/manual)
  or else from BENCHMARK_URL, then reads it with `tfds.data_source`. Images and
  names equal those of get_dataset(name) on the same folder.

  `div2k/<config>` (e.g. div2k/bicubic_x2) is `load_div2k(split or
  'validation', config, ...)` through tfds's catalog builder.

  `data_dir=None` is tfds's default ($TFDS_DATA_DIR, else ~/tensorflow_datasets).
  """
  key = str(name).lower().removeprefix(f'{SrBenchmark.name}/')
  if key.startswith('div2k/'):
    return load_div2k(split or 'validation', key.split('/', 1)[1],
                      data_dir=data_dir, manual_dir=manual_dir)
  key = key.removeprefix(f'{SrTraining.name}/')
  if key not in BENCHMARK_SETS + TRAINING_SETS:
    raise DatasetError(f'unknown tfds set {name!r}: valid names are '
                       f'{list(BENCHMARK_SETS + TRAINING_SETS)} and div2k/<config>')
  if split not in (None, SPLIT):
    raise DatasetError(f'{key}: the only split is {SPLIT!r}, got {split!r}')
  builder_cls = SrTraining if key in TRAINING_SETS else SrBenchmark
  builder = builder_cls(config=key, data_dir=data_dir)
  _prepare(builder, manual_dir)
  tfds_name = f'{builder_cls.name}/{key}'
  source = _data_source(tfds_name, SPLIT, builder.data_dir_root, ['hr'])
  names = tuple(source[i]['name'].decode() for i in range(len(source)))
  return ImageSet(name=key, image_names=names, loaders=tuple(
      functools.partial(_load_record, source, i, 'hr', tfds_name)
      for i in range(len(source))))


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
      manual_dir = _manual_dir(dl_manager)
      paths, to_download, missing = {}, {}, []
      for key, url in urls.items():
        info = self.url_infos[url]
        folder = _extracted_div2k(manual_dir, info.filename)
        if folder:
          paths[key] = folder
          continue
        to_download[key] = url
        if not ((manual_dir and (manual_dir / info.filename).is_file()) or
                _is_downloaded(dl_manager, self.name, url, info.checksum)):
          missing.append(info.filename)
      if missing:
        _check_reachable(urls['valid_hr_url'], (
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
  _prepare(builder, manual_dir)
  tfds_name = f'div2k/{config}'
  source = _data_source(tfds_name, split, builder.data_dir_root, ['lr', 'hr'])
  set_name = f'div2k_{split}' if image == 'hr' else f'div2k_{split}_{config}_lr'
  return ImageSet(
      name=set_name, image_names=tuple(f'record_{i:03d}' for i in range(len(source))),
      loaders=tuple(functools.partial(_load_record, source, i, image, tfds_name)
                    for i in range(len(source))))

