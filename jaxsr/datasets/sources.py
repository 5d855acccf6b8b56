"""What a run reads: its training source and its evaluation sets, chosen by
config and by what the data root holds (prepared tfds datasets or folders).

Above `prepared` (where prepared data lives), `training_source` (folders)
and `tfds_pairs` (prepared pairs), so that none of them imports another
back.
"""

from __future__ import annotations

from typing import Sequence

from jaxsr import datasets
from jaxsr.datasets import prepared
from jaxsr.datasets import training_source


def open_training_source(config, train_sets: Sequence[str]) -> training_source.TrainingSource:
  """The source of a training config's sets, by config.data.source: 'tfds'
  (the prepared pairs under the data root, `jaxsr.prepare`), 'folders' (the
  image folders, degraded here), or 'auto' (tfds when every set is prepared
  at every scale, else folders; folders with config.data.hr_downscales, whose
  downscaled copies the pairs do not hold).

  Raises:
    DatasetError: source 'tfds' and a set not prepared (names the command).
  """
  from jaxsr import config_checks
  from jaxsr import models
  c = config.data
  source = c.get('source', 'auto')
  channels = config.model.channels
  on_bicubic = models.model_info(config.model.name).works_on_bicubic
  max_images = c.max_train_images or None
  downscales = tuple(c.get('hr_downscales', ()))  # not with tfds (config_checks)
  if source != 'folders' and not downscales:
    root = prepared.data_root_text(c.data_dir or None)
    scales = config_checks.train_scales(config)
    inputs = prepared.input_kind(on_bicubic)
    if all(prepared.prepared_dir(root, s, channels, inputs, scales) for s in train_sets):
      from jaxsr.datasets import tfds_pairs  # tfds loads only when used
      return tfds_pairs.TfdsSource(train_sets, root, channels=channels, on_bicubic=on_bicubic,
                                   scales=scales, max_images=max_images)
    if source == 'tfds':
      raise datasets.DatasetError('config.data.source=tfds: ' + prepared.missing_message(
          root, train_sets, channels, inputs, scales))
  return training_source.FolderSource(train_sets, c.data_dir or None, channels=channels,
                                      on_bicubic=on_bicubic, max_images=max_images,
                                      hr_downscales=downscales)


def image_set(name: str, data_dir: str | None) -> datasets.ImageSet:
  """A set's HR images: from its prepared tfds dataset when the data root
  holds one (the same images and names), else `datasets.get_dataset`."""
  folder = (prepared.hr_dir(prepared.data_root_text(data_dir), name.lower())
            if isinstance(name, str) else None)
  if folder is None:
    return datasets.get_dataset(name, data_dir)
  from jaxsr.datasets import tfds_pairs  # tfds loads only when used
  return tfds_pairs.hr_image_set(name.lower(), folder)
