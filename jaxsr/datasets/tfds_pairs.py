"""Training sets prepared once as tfds datasets of degraded pairs.

`SrPairs` ('sr_pairs') stores, per image of a training set, the model's
target and, per scale s, `x{s}`: the whole-image input the protocol makes
(`training_source`), in one config the LR image (make_lr of the modcropped
HR), in another its bicubic upsampling to the modcropped HR size. The inputs
are float32, stored exactly as computed; the target is the uint8-level image
(Y rounded, or RGB) as uint8, and target / 255 in float64 cast to float32 is
the training target exactly. So a run on prepared data sees the very
batches a run on the folders would, and skips the degradation (seconds per
hundred images) at start-up.

One config per (set, channels, input, scales), named e.g.
`t91_y_bicubic_x2_3_4`, under `<data_dir>/sr_pairs/<config>/1.0.0`
(`prepared`): ArrayRecord files (no TensorFlow), read with random access by
`TfdsSource`. tfds writes them zstd-compressed, which float images barely
shrink (by ~20%) and which made reading them 4-5× slower, so they are
rewritten uncompressed (`_uncompress`). The images' names, HR shapes and
file digests are the dataset's metadata, so `hr_shape` and `record` read no
example.

ArrayRecord reads and writes local files only: on gs:// `prepare_pairs`
builds in a local temporary folder and uploads it, and `TfdsSource` first
copies a remote dataset into the local cache (once; again when its
dataset_info.json changes).
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import os
import pathlib
import shutil
import tempfile
from typing import Callable, Sequence

from array_record.python import array_record_module
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from jaxsr.datasets import FOLDER_SETS, get_dataset
from jaxsr.datasets import prepared
from jaxsr.datasets import training_source
from jaxsr.datasets.folders import DatasetError, ImageSet
from jaxsr.datasets.training_source import DegradedImage
from jaxsr.protocol import degradation

SPLIT = 'train'


@dataclasses.dataclass(eq=False)
class PairsConfig(tfds.core.BuilderConfig):
  set_name: str = ''
  channels: int = 1
  inputs: str = 'lr'
  scales: tuple[int, ...] = ()


class SrPairs(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """One training set's targets and per-scale model inputs (see the module)."""

  VERSION = tfds.core.Version(prepared.VERSION)
  RELEASE_NOTES = {prepared.VERSION: 'Targets uint8, LR and bicubic inputs float32, per scale.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'The data root holding the set as jaxsr.datasets.get_dataset finds it '
      '(t91/ or yang91/, bsd200/, div2k/DIV2K_train_HR/, ...).')

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    image = lambda dtype: tfds.features.Tensor(
        shape=(None, None, c.channels), dtype=dtype, encoding=tfds.features.Encoding.BYTES)
    features = {'name': tfds.features.Text(), 'target': image(np.uint8)}
    for s in c.scales:
      features[f'x{s}'] = image(np.float32)
    return tfds.core.DatasetInfo(
        builder=self, description=f'{c.set_name}: targets and {c.inputs} inputs at x{c.scales}',
        features=tfds.features.FeaturesDict(features), disable_shuffling=True,
        metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    image_set = get_dataset(self.builder_config.set_name, dl_manager.manual_dir)
    return {SPLIT: self._generate_examples(image_set)}

  def _generate_examples(self, image_set):
    c = self.builder_config
    images = []
    for i, name in enumerate(image_set.image_names):
      img = image_set.load(i)
      example = {'name': name,
                 'target': degradation.hr_target(img, c.channels).astype(np.uint8)}
      for s in c.scales:
        example[f'x{s}'] = training_source.model_input(img, s, c.channels,
                                                       on_bicubic=c.inputs == 'bicubic')
      images.append([name, *img.shape[:2], training_source.image_digest(image_set, i)])
      yield f'{i:06d}', example
    # Saved with dataset_info.json once every example is written.
    self.info.metadata['images'] = images


def _is_remote(path: str) -> bool:
  return '://' in path


def prepare_pairs(set_name: str, scales: Sequence[float], channels: int, inputs: str,
                  data_dir: str, manual_dir: str | None) -> tuple[epath.Path, bool]:
  """Builds the set's pairs under data_dir unless there; (its folder, built now)."""
  if set_name not in FOLDER_SETS:
    raise DatasetError(f'{set_name}: prepared pairs are built for the data root\'s sets '
                       f'{sorted(FOLDER_SETS)}')
  found = prepared.prepared_dir(data_dir, set_name, channels, inputs, scales)
  if found:
    return found, False
  get_dataset(set_name, manual_dir)  # a missing set fails here, in one line
  config = PairsConfig(name=prepared.config_name(set_name, channels, inputs, scales),
                       set_name=set_name, channels=channels, inputs=inputs,
                       scales=tuple(sorted({int(s) for s in scales})))
  return build(lambda root: SrPairs(config=config, data_dir=root), data_dir, manual_dir,
               uncompressed=True)


def build(make_builder: Callable[[str], tfds.core.DatasetBuilder], data_dir: str,
          manual_dir: str | None, *, uncompressed: bool = False) -> tuple[epath.Path, bool]:
  """Prepares `make_builder(data_dir)` in ArrayRecord files unless done;
  (its folder, built now). Remote: built locally, then uploaded."""
  builder = make_builder(data_dir)
  target = epath.Path(builder.data_dir)
  if (target / 'dataset_info.json').exists():
    return target, False
  download = tfds.download.DownloadConfig(
      manual_dir=os.fspath(manual_dir) if manual_dir else None, try_download_gcs=False)
  if not _is_remote(data_dir):
    builder.download_and_prepare(file_format='array_record', download_config=download)
    if uncompressed:
      _uncompress(pathlib.Path(builder.data_dir))
    return target, True
  with tempfile.TemporaryDirectory(prefix='jaxsr_prepare_') as tmp:
    local = make_builder(tmp)
    local.download_and_prepare(file_format='array_record', download_config=download)
    if uncompressed:
      _uncompress(pathlib.Path(local.data_dir))
    _copy_folder(epath.Path(local.data_dir), target)
  return target, True


def _uncompress(folder: pathlib.Path) -> None:
  """Rewrites the ArrayRecord shards of a dataset uncompressed, record for record."""
  for shard in sorted(folder.glob('*.array_record-*')):
    reader = array_record_module.ArrayRecordReader(os.fspath(shard))
    records = reader.read_all()
    reader.close()
    tmp = shard.with_name(shard.name + '.uncompressed')
    writer = array_record_module.ArrayRecordWriter(os.fspath(tmp), 'group_size:1,uncompressed')
    for record in records:
      writer.write(record)
    writer.close()
    tmp.replace(shard)


def _copy_folder(src: epath.Path, dst: epath.Path) -> None:
  """Copies the files of a dataset folder; dataset_info.json last, since its
  presence marks the dataset complete."""
  dst.mkdir(parents=True, exist_ok=True)
  files = sorted(src.iterdir(), key=lambda p: p.name == 'dataset_info.json')
  for f in files:
    with f.open('rb') as r, (dst / f.name).open('wb') as w:
      shutil.copyfileobj(r, w, 16 << 20)


def _local_copy(remote: epath.Path) -> pathlib.Path:
  """A local copy of a remote dataset folder, in the per-user cache.

  Processes of one host (a pod host's, or one per GPU) copy it once: the
  first to find it missing or stale copies it under a file lock, the others
  wait on the lock and then use that copy. The copy goes to a folder of its
  own and is renamed into place, so a reader never sees part of one, and a
  process killed while copying leaves no copy (and releases the lock).
  """
  cache = pathlib.Path(os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache')
  local = (cache / 'jaxsr' / 'remote_datasets' /
           os.fspath(remote).replace('://', '/').lstrip('/'))
  info = (remote / 'dataset_info.json').read_bytes()
  current = lambda: (local / 'dataset_info.json').is_file() and (
      local / 'dataset_info.json').read_bytes() == info
  if current():
    return local
  local.parent.mkdir(parents=True, exist_ok=True)
  with open(local.with_name(f'{local.name}.lock'), 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released on close, or when the process dies
    if current():  # another process copied it meanwhile
      return local
    partial = pathlib.Path(tempfile.mkdtemp(prefix=f'{local.name}.partial', dir=local.parent))
    try:
      _copy_folder(remote, epath.Path(partial))
      if local.exists():  # a stale copy: set aside, then replace
        stale = pathlib.Path(tempfile.mkdtemp(prefix=f'{local.name}.stale', dir=local.parent))
        local.rename(stale / local.name)
        partial.rename(local)
        shutil.rmtree(stale, ignore_errors=True)
      else:
        partial.rename(local)
    finally:
      shutil.rmtree(partial, ignore_errors=True)
  return local


def hr_image_set(name: str, folder: epath.Path) -> ImageSet:
  """The ImageSet of a prepared HR dataset (tfds_sets' builders), PNGs decoded on load."""
  from jaxsr.datasets import tfds_records, tfds_sets
  if _is_remote(os.fspath(folder)):
    folder = _local_copy(folder)
  builder = tfds.builder_from_directory(os.fspath(folder))
  records = builder.as_data_source(split=tfds_sets.SPLIT,
                                   decoders={'hr': tfds.decode.SkipDecoding()})
  names = tuple(records[i]['name'].decode() for i in range(len(records)))
  return ImageSet(name=name, image_names=names, loaders=tuple(
      functools.partial(tfds_records.load_record, records, i, 'hr', os.fspath(folder))
      for i in range(len(records))))


class TfdsSource:
  """The prepared pairs of training sets (`training_source.TrainingSource`)."""

  def __init__(self, sets: Sequence[str], data_dir: str, *, channels: int, on_bicubic: bool,
               scales: Sequence[float], max_images: int | None = None):
    self.channels = channels
    self.on_bicubic = on_bicubic
    self._items: list[tuple[object, int, list]] = []  # (records, index, metadata row)
    self._rows: list[tuple[str, str, str]] = []
    self._sizes: dict[str, int] = {}
    for set_name in sets:
      inputs = prepared.input_kind(on_bicubic)
      folder = prepared.prepared_dir(data_dir, set_name, channels, inputs, scales)
      if folder is None:
        raise DatasetError(prepared.missing_message(data_dir, [set_name], channels, inputs,
                                                    scales))
      if _is_remote(os.fspath(folder)):
        folder = _local_copy(folder)
      builder = tfds.builder_from_directory(os.fspath(folder))
      records = builder.as_data_source(split=SPLIT)
      images = builder.info.metadata['images']
      n = len(images) if not max_images else min(len(images), max_images)
      self._sizes[set_name] = n
      self._items += [(records, i, images[i]) for i in range(n)]
      self._rows += [(set_name, row[0], row[3]) for row in images[:n]]
    self._last: tuple[int, dict, np.ndarray] | None = None

  def __len__(self) -> int:
    return len(self._items)

  def hr_shape(self, index: int) -> tuple[int, int]:
    row = self._items[index][2]
    return int(row[1]), int(row[2])

  def load(self, index: int, scale: float) -> DegradedImage:
    if self._last is None or self._last[0] != index:
      records, i, row = self._items[index]
      example = records[i]
      if example['name'].decode() != row[0]:
        raise DatasetError(f'prepared record {i} is {example["name"]!r}, its metadata says '
                           f'{row[0]!r}: prepare the set again')
      self._last = (index, example, np.float32(example['target'] / 255.0))
    _, example, target = self._last
    return DegradedImage(lr=example[f'x{int(scale)}'], hr=target,
                         hr_step=1 if self.on_bicubic else int(scale))

  @property
  def record(self) -> dict:
    return {'source': 'tfds', 'sets': dict(self._sizes),
            'fingerprint': training_source.fingerprint(self._rows)}
