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
import tarfile
import zipfile
from typing import Sequence

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from jaxsr import image_io
from jaxsr.datasets import FOLDER_SETS
from jaxsr.datasets import tfds_records
from jaxsr.datasets.folders import DatasetError, ImageSet

# EDSR's evaluation archive (https://github.com/sanghyun-son/EDSR-PyTorch),
# about 250 MB: benchmark/{Set5,Set14,B100,Urban100}/HR/*.png, next to their
# LR_bicubic/X{2,3,4} versions.
BENCHMARK_URL = 'https://cv.snu.ac.kr/research/EDSR/benchmark.tar'
BENCHMARK_SETS = ('set5', 'set14', 'b100', 'urban100')
SPLIT = 'test'

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
    manual_dir = tfds_records.manual_dir_of(dl_manager)
    if not tfds_records.is_downloaded(dl_manager, self.name, BENCHMARK_URL):
      tfds_records.check_reachable(
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
        f'or archive of them in the manual dir ({tfds_records.manual_dir_of(dl_manager) or "missing or empty"})')



def _from_manual_dir(dl_manager, folder_names: Sequence[str]
                     ) -> tuple[pathlib.Path | None, dict[str, str]]:
  """The set's images in the manual dir: a set folder, loose images, or an archive."""
  manual_dir = tfds_records.manual_dir_of(dl_manager)
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
        yield path, tfds_records.decode_record(archive.read(address), f'{source}:{address}')
  else:
    with tarfile.open(source) as archive:
      for path, address in members.items():
        yield path, tfds_records.decode_record(archive.extractfile(address).read(),
                            f'{source}:{address}')



def _png_bytes(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
      buffer, format='PNG')
  return buffer.getvalue()







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

  `div2k/<config>` (e.g. div2k/bicubic_x2) is `tfds_div2k.load_div2k(split
  or 'validation', config, ...)` through tfds's catalog builder.

  `data_dir=None` is tfds's default ($TFDS_DATA_DIR, else ~/tensorflow_datasets).
  """
  key = str(name).lower().removeprefix(f'{SrBenchmark.name}/')
  if key.startswith('div2k/'):
    from jaxsr.datasets import tfds_div2k  # it builds on this module
    return tfds_div2k.load_div2k(split or 'validation', key.split('/', 1)[1],
                      data_dir=data_dir, manual_dir=manual_dir)
  key = key.removeprefix(f'{SrTraining.name}/')
  if key not in BENCHMARK_SETS + TRAINING_SETS:
    raise DatasetError(f'unknown tfds set {name!r}: valid names are '
                       f'{list(BENCHMARK_SETS + TRAINING_SETS)} and div2k/<config>')
  if split not in (None, SPLIT):
    raise DatasetError(f'{key}: the only split is {SPLIT!r}, got {split!r}')
  builder_cls = SrTraining if key in TRAINING_SETS else SrBenchmark
  builder = builder_cls(config=key, data_dir=data_dir)
  tfds_records.prepare_builder(builder, manual_dir)
  tfds_name = f'{builder_cls.name}/{key}'
  source = tfds_records.array_record_source(tfds_name, SPLIT, builder.data_dir_root, ['hr'])
  names = tuple(source[i]['name'].decode() for i in range(len(source)))
  return ImageSet(name=key, image_names=names, loaders=tuple(
      functools.partial(tfds_records.load_record, source, i, 'hr', tfds_name)
      for i in range(len(source))))
