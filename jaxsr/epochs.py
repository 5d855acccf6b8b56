"""Run lengths in epochs: steps derived from the training set and the global batch.

Configs state `train.epochs` and the decay points of a step schedule in
epochs (`optim.schedule.every_epochs`, `warmup_epochs`); the steps follow at
run time from the data and the global batch, so a pod run with a larger
batch trains the same number of epochs in fewer steps. One epoch is the
patch grid of the training set once:

  patches = Σ over images and train scales of ⌊H_in / side⌋ · ⌊W_in / side⌋

H_in × W_in is the model input (the LR image of the modcropped HR for models
with learned upsampling, the modcropped HR for models on the bicubic input)
and `side` the input patch side; steps = ⌈epochs · patches / global batch⌉,
and the same for every decay or warmup length.

An explicit `train.steps > 0` wins over `train.epochs` (runlocal and
`--config.train.steps=N` keep meaning N steps), as `every_steps` and
`warmup_steps > 0` win over their epoch forms. The resolved config (what
config.json records) holds the steps taken and the epochs they are, so a run
can be reproduced; a resumed run keeps the steps derived at its start.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

from absl import logging
import ml_collections

from jaxsr import config_checks


def global_batch_size(c: ml_collections.ConfigDict, device_count: int) -> int:
  """train.per_device_batch_size × devices when set, else train.batch_size."""
  per_device = int(c.train.get('per_device_batch_size', 0))
  return per_device * device_count if per_device else int(c.train.batch_size)


def patches_per_epoch(hr_shapes: Iterable[tuple[int, int]], input_sides: Mapping[float, int],
                      on_bicubic: bool) -> int:
  """Training patches in one pass over the patch grid of every image at every
  scale of `input_sides` (scale -> input patch side)."""
  total = 0
  for h, w in hr_shapes:
    for scale, side in input_sides.items():
      s = int(scale)
      h_in, w_in = h // s, w // s  # the LR of the modcropped HR
      if on_bicubic:
        h_in, w_in = h_in * s, w_in * s
      total += (h_in // side) * (w_in // side)
  return total


def epochs_to_steps(epochs: float, patches: int, batch_size: int) -> int:
  """⌈epochs · patches / batch_size⌉ (a hair of float error is not a step)."""
  return max(0, math.ceil(epochs * patches / batch_size - 1e-9))


def resolve(c: ml_collections.ConfigDict, patches: int, device_count: int,
            recorded: Mapping | None = None) -> ml_collections.ConfigDict:
  """A copy of `c` with its run length in steps and epochs both.

  train.batch_size becomes the global batch; train.steps the steps the run
  takes and train.epochs the epochs they are; train.steps_from says which was
  given ('steps' or 'epochs'); train.patches_per_epoch and steps_per_epoch
  record the arithmetic; optim.schedule.every_steps and warmup_steps are
  filled from their epoch forms. `recorded`: the config.json of the run
  being resumed; the lengths it derived from the same epochs are kept (a
  changed data set or device count does not move the end or the decay
  points of a run half done).
  """
  c = ml_collections.ConfigDict(c.to_dict())
  batch = global_batch_size(c, device_count)
  train, sched = c.train, c.optim.schedule
  from_epochs = not train.steps and train.get('epochs', 0) > 0
  if from_epochs and patches <= 0:
    raise config_checks.ConfigError(
        f'config.train.epochs={train.epochs}: the training set has no patch of the '
        'configured size (config.data.patch_size / hr_patch_size) at any scale')
  recorded = recorded or {}
  before_train = recorded.get('train', {})
  before_sched = recorded.get('optim', {}).get('schedule', {})
  # (group, steps key, epochs key): a length given in steps wins; one derived
  # from epochs is derived once per run.
  lengths = ((train, before_train, 'steps', 'epochs'),
             (sched, before_sched, 'every_steps', 'every_epochs'),
             (sched, before_sched, 'warmup_steps', 'warmup_epochs'))
  derived = {}
  for group, old, steps_key, epochs_key in lengths:
    epochs = float(group.get(epochs_key, 0.0))
    if int(group.get(steps_key, 0)) or epochs <= 0:
      derived[steps_key] = int(group.get(steps_key, 0))
      continue
    derived[steps_key] = epochs_to_steps(epochs, patches, batch)
    kept = old.get(steps_key) if old.get(epochs_key) == epochs else None
    if kept and int(kept) != derived[steps_key] and (
        steps_key != 'steps' or old.get('steps_from') == 'epochs'):
      logging.warning('config.%s=%g is %d steps now (%d patches / batch %d); the run '
                      'being resumed derived %d at its start and keeps them', epochs_key,
                      epochs, derived[steps_key], patches, batch, int(kept))
      derived[steps_key] = int(kept)
  with c.unlocked():
    train.batch_size = batch
    train.steps = derived['steps']
    if not from_epochs:
      train.epochs = train.steps * batch / patches if patches else 0.0
    train.steps_from = 'epochs' if from_epochs else 'steps'
    train.patches_per_epoch = int(patches)
    train.steps_per_epoch = patches / batch
    sched.every_steps = derived['every_steps']
    sched.warmup_steps = derived['warmup_steps']
  logging.info('Run length: %d steps = %.4g epochs of %d patches at a global batch of %d '
               '(%s given)', train.steps, train.epochs, patches, batch, train.steps_from)
  return c


def training_patches(c: ml_collections.ConfigDict, source) -> int:
  """patches_per_epoch of a training source (`hr_shape(i)`: metadata, no decoding)
  at a config's scales and patch size."""
  from jaxsr import input_pipeline
  from jaxsr import models
  on_bicubic = models.model_info(c.model.name).works_on_bicubic
  sides = {s: input_pipeline.input_patch_size(s, c.data.patch_size, c.data.hr_patch_size,
                                              on_bicubic)
           for s in config_checks.train_scales(c)}
  return patches_per_epoch((source.hr_shape(i) for i in range(len(source))), sides,
                           on_bicubic)
