"""Training configs as the library reads them: loaded with the model's fields, then checked.

Configs (configs/*.py) are leaves that import no part of jaxsr, so what only
the library knows is added or checked here. `define_config_flag` loads a
config file as ml_collections' config_flags does and adds a key for every
constructor field of its model, so `--config.model.<field>=...` overrides any
of them. `validate` checks models, scales, fields, optimisers and schedules
once, before anything is compiled or loaded; each error names the key.
"""

from __future__ import annotations

import re
import sys
from typing import Sequence

from absl import flags
import jax
import ml_collections
from ml_collections import config_flags

from jaxsr import models
from jaxsr import optim

LOSSES = ('mse', 'l1')
# jaxsr.train.compute_loss: 'mean' over every pixel, or VDSR's per-sample sum.
LOSS_REDUCTIONS = ('mean', 'sum_per_sample')

# Flags defined here (define_config_flag) belong to the calling module, so
# that its --help lists them.
flags.disclaim_key_flags()


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
  _check_run_length(c, device_count)
  if c.train.loss not in LOSSES:
    raise ConfigError(f'config.train.loss={c.train.loss!r}; valid: {LOSSES}')
  if c.train.get('loss_reduction', 'mean') not in LOSS_REDUCTIONS:
    raise ConfigError(f'config.train.loss_reduction={c.train.loss_reduction!r}; '
                      f'valid: {LOSS_REDUCTIONS}')
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
    multipliers = optim.parse_lr_multipliers(c.optim.get('lr_multipliers', ''))
  except ValueError as e:
    raise ConfigError(str(e)) from None
  try:
    model = models.from_config(c.model)
    _check_field_types(c.model, model)
    # Tracing (not compiling) init surfaces bad field values such as an
    # unknown upsampling mode.
    variables = models.abstract_variables(model)
  except ConfigError:
    raise
  except (ValueError, TypeError) as e:
    raise ConfigError(f'config.model: {e}') from None
  _check_lr_multipliers(multipliers, variables, c.model.name)


def _check_lr_multipliers(multipliers: dict[str, float], variables, model_name: str) -> None:
  paths = [optim.module_names(path)
           for path, _ in jax.tree_util.tree_leaves_with_path(variables)]
  unknown = [name for name in multipliers if not any(name in names for names in paths)]
  if unknown:
    top = sorted({names[1] for names in paths})  # names[0] is the 'params' collection
    raise ConfigError(f'config.optim.lr_multipliers: {model_name} has no module '
                      f'{", ".join(unknown)}; its layers: {", ".join(top)}')


def _check_field_types(group: ml_collections.ConfigDict, model) -> None:
  """Field values typed like the model's defaults (command-line values are literals)."""
  defaults = models.get_model(group.name, scale=model.scale, channels=model.channels)
  for field, value in models.config_kwargs(group).items():
    default = getattr(defaults, field)
    kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,),
             tuple: (tuple, list), list: (tuple, list)}.get(type(default))
    wrong = kinds and (not isinstance(value, kinds) or
                       (isinstance(value, bool) and bool not in kinds))
    if wrong:
      raise ConfigError(f'config.model.{field}={value!r}: {group.name} expects a value '
                        f'of type {type(default).__name__}, like {default!r}')


def _check_run_length(c: ml_collections.ConfigDict, device_count: int) -> None:
  """The global batch against the devices; steps, epochs and decay lengths."""
  per_device = c.train.get('per_device_batch_size', 0)
  if per_device < 0:
    raise ConfigError(f'config.train.per_device_batch_size={per_device} must be >= 0 '
                      '(0: config.train.batch_size is the global batch)')
  if not per_device and (c.train.batch_size < 1 or c.train.batch_size % device_count):
    raise ConfigError(
        f'config.train.batch_size={c.train.batch_size} is not a positive multiple of the '
        f'device count ({device_count}); set config.train.per_device_batch_size instead '
        f'(the global batch is then it × {device_count})')
  for key in ('train.steps', 'train.epochs', 'optim.schedule.every_steps',
              'optim.schedule.every_epochs', 'optim.schedule.warmup_steps',
              'optim.schedule.warmup_epochs'):
    *groups, name = key.split('.')
    group = c
    for g in groups:
      group = group[g]
    if group.get(name, 0) < 0:
      raise ConfigError(f'config.{key}={group[name]} must be >= 0')
  sched = c.optim.schedule
  if sched.name == 'step' and not (sched.get('every_steps', 0) > 0
                                   or sched.get('every_epochs', 0) > 0):
    raise ConfigError('config.optim.schedule.name=step needs every_epochs or every_steps '
                      '> 0 (the decay interval)')


SAMPLERS = ('auto', 'device', 'host')
# training_source.SOURCES (not imported here: this module loads without tfds).
DATA_SOURCES = ('auto', 'tfds', 'folders')


def _check_data(c: ml_collections.ConfigDict, scales: tuple[float, ...]) -> None:
  patch, hr_patch = c.data.patch_size, c.data.hr_patch_size
  if patch < 0 or hr_patch < 0 or not (patch or hr_patch):
    raise ConfigError('config.data.patch_size (LR) or config.data.hr_patch_size must be > 0')
  if c.data.get('sampler', 'auto') not in SAMPLERS:
    raise ConfigError(f'config.data.sampler={c.data.sampler!r}; valid: {SAMPLERS}')
  if c.data.get('source', 'auto') not in DATA_SOURCES:
    raise ConfigError(f'config.data.source={c.data.source!r}; valid: {DATA_SOURCES}')
  if c.data.get('window_images', 0) < 0 or c.data.get('window_steps', 1) < 1:
    raise ConfigError(f'config.data.window_images={c.data.window_images} must be >= 0 (0: '
                      f'the whole set) and config.data.window_steps={c.data.window_steps} >= 1')
  downscales = c.data.get('hr_downscales', ())
  if not all(isinstance(f, (int, float)) and 0 < f < 1 for f in downscales):
    raise ConfigError(f'config.data.hr_downscales={downscales!r}: expected factors in '
                      '(0, 1) like 0.9,0.8,0.7,0.6 (each image is also trained on at '
                      'those sizes)')
  if downscales and c.data.get('source', 'auto') == 'tfds':
    raise ConfigError(f'config.data.hr_downscales={tuple(downscales)}: the prepared '
                      'pairs (config.data.source=tfds) hold each image at its own size '
                      'only; use config.data.source=folders or auto')
  if len(scales) > 1 and patch:
    raise ConfigError(f'config.data.scales={scales}: a batch mixes the scales, so the '
                      'patch is one HR size: set config.data.hr_patch_size, not patch_size')
  for s in scales:
    lr_side = patch or round(hr_patch / s)
    if lr_side < 1:
      raise ConfigError(f'config.data.hr_patch_size={hr_patch} is smaller than the '
                        f'scale x{s:g}: no LR pixel fits')


def with_model_fields(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`c` with a `model.<field>` key for each constructor field it does not set.

  The added keys hold None, which keeps the model's default (see
  `models.config_kwargs`), and take any literal on the command line; the
  value is checked when the model is built (`validate`).
  """
  with c.unlocked():
    for field in models.config_fields(c.model.name):
      if field not in c.model:
        c.model[field] = ml_collections.config_dict.placeholder(object)
  return c


class _ConfigWithModelFields(flags.ArgumentParser):
  """config_flags' config file parser, then the model's fields, before overrides."""

  def __init__(self, name: str, file_parser: flags.ArgumentParser,
               sys_argv: Sequence[str] | None):
    self.name = name
    self._file_parser = file_parser
    self._sys_argv = sys_argv

  def flag_type(self):
    return self._file_parser.flag_type()

  def parse(self, path):
    config = self._file_parser.parse(path)
    if not (isinstance(config, ml_collections.ConfigDict)
            and isinstance(config.get('model'), ml_collections.ConfigDict)):
      return config
    try:
      with_model_fields(config)
    except ValueError:
      pass  # An unknown model: validate() names the valid ones.
    else:
      # Unknown model fields are named with the valid ones (config_flags
      # itself would only suggest the closest key).
      prefix = rf'^--?{re.escape(self.name)}\.model\.'
      for arg in self._sys_argv or sys.argv:
        key = re.sub(prefix, '', arg).split('=')[0] if re.match(prefix, arg) else None
        if key and '.' not in key and key not in config.model:
          raise ValueError(f'--{self.name}.model.{key}: {config.model.name} has no field '
                           f'{key!r}; valid: {sorted(config.model)}')
    return config


def define_config_flag(name: str, help_string: str,
                       flag_values: flags.FlagValues = flags.FLAGS,
                       sys_argv: Sequence[str] | None = None) -> flags.FlagHolder:
  """`--name=FILE[:ARG]` as config_flags.DEFINE_config_file, with the model's fields."""
  holder = config_flags.DEFINE_config_file(name, None, help_string, flag_values=flag_values,
                                           lock_config=True, sys_argv=sys_argv)
  flag = flag_values[name]
  flag.parser = _ConfigWithModelFields(name, flag.parser, sys_argv)
  return holder
