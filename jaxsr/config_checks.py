"""Checks a training config against the models and optimisers it names.

Configs (configs/*.py) are leaves that import no part of jaxsr, so what only
the library knows (registered models, their scales and fields, optimisers,
schedules) is checked here, once, before anything is compiled or loaded; each
error names the offending key.
"""

from __future__ import annotations

import ml_collections

from jaxsr import models
from jaxsr import optim

LOSSES = ('mse', 'l1')


class ConfigError(ValueError):
  """An invalid config; the message names the key."""


def train_scales(c: ml_collections.ConfigDict) -> tuple[float, ...]:
  """The scales a config trains on: data.scales, else model.scale."""
  return tuple(float(s) for s in c.data.scales) or (float(c.model.scale),)


def validate(c: ml_collections.ConfigDict, device_count: int) -> None:
  """Raises ConfigError naming the config key, before any compilation."""
  try:
    info = models.model_info(c.model.name)
  except ValueError as e:
    raise ConfigError(f'config.model.name: {e}') from None
  if c.model.channels not in models.VALID_CHANNELS:
    raise ConfigError(f'config.model.channels={c.model.channels}; valid: 1 (Y) or 3 (RGB)')
  scales = train_scales(c)
  for s in scales:
    if info.scales != 'any' and s not in info.scales:
      raise ConfigError(f'config.data.scales / config.model.scale: x{s:g} is not '
                        f'supported by {c.model.name}; valid: {info.scales}')
    if not float(s).is_integer():
      raise ConfigError(f'config.data.scales: training needs integer scales, got {s}')
  if len(scales) > 1 and not info.works_on_bicubic:
    raise ConfigError(f'config.data.scales={scales}: {c.model.name} upsamples with a '
                      'learned stride, so one model serves one scale; only models on '
                      'the bicubic input train on several scales')
  _check_data(c, scales)
  if c.train.batch_size < 1 or c.train.batch_size % device_count:
    raise ConfigError(f'config.train.batch_size={c.train.batch_size} must be a positive '
                      f'multiple of the device count ({device_count})')
  if c.train.steps < 0:
    raise ConfigError(f'config.train.steps={c.train.steps} must be >= 0')
  if c.train.loss not in LOSSES:
    raise ConfigError(f'config.train.loss={c.train.loss!r}; valid: {LOSSES}')
  if c.eval.max_shapes < 0:
    raise ConfigError(f'config.eval.max_shapes={c.eval.max_shapes} must be >= 0 '
                      '(0: every LR shape compiled as it is)')
  for key in ('checkpoint.every', 'eval.every', 'train.log_every'):
    group, name = key.split('.')
    if c[group][name] < 1:
      raise ConfigError(f'config.{key}={c[group][name]} must be >= 1')
  if c.optim.name not in optim.OPTIMIZERS:
    raise ConfigError(f'config.optim.name={c.optim.name!r}; valid: {optim.OPTIMIZERS}')
  if c.optim.schedule.name not in optim.SCHEDULES:
    raise ConfigError(f'config.optim.schedule.name={c.optim.schedule.name!r}; '
                      f'valid: {optim.SCHEDULES}')
  try:
    # Tracing (not compiling) init surfaces bad field values such as an
    # unknown upsampling mode.
    models.abstract_variables(models.from_config(c.model))
  except (ValueError, TypeError) as e:
    raise ConfigError(f'config.model.kwargs: {e}') from None


def _check_data(c: ml_collections.ConfigDict, scales: tuple[float, ...]) -> None:
  patch, hr_patch = c.data.patch_size, c.data.hr_patch_size
  if patch < 0 or hr_patch < 0 or not (patch or hr_patch):
    raise ConfigError('config.data.patch_size (LR) or config.data.hr_patch_size must be > 0')
  for s in scales:
    lr_side = patch or round(hr_patch / s)
    if lr_side < 1:
      raise ConfigError(f'config.data.hr_patch_size={hr_patch} is smaller than the '
                        f'scale x{s:g}: no LR pixel fits')
