"""The shared shape of every training config, argument parsing and validation.

Config files under configs/ call `base_config()` and set what their paper
says; `validate` checks a config before anything is compiled or loaded and
names the offending key.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable

import ml_collections

from jaxsr import evaluators

LOSSES = ('mse', 'l1')


class ConfigError(ValueError):
  """An invalid config; the message names the key."""


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """'variant=ees,scale=3,runlocal' -> ConfigDict, typed like the defaults.

  A bare word is a boolean flag set to True; unknown keys are an error.
  """
  out = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or '').split(',')):
    key, _, value = item.partition('=')
    key = key.strip()
    if key not in defaults:
      raise ConfigError(f'config argument {key!r} is not one of {sorted(defaults)}')
    default = defaults[key]
    if not _:
      out[key] = True
    elif isinstance(default, bool):
      out[key] = value.lower() in ('1', 'true', 'yes')
    elif isinstance(default, (int, float)) and not isinstance(default, bool):
      out[key] = type(default)(float(value)) if isinstance(default, int) else float(value)
    else:
      out[key] = value
  return out


def base_config(model: str, *, scale: float = 2, channels: int = 1
                ) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict(
      {'name': model, 'scale': float(scale), 'channels': channels,
       'kwargs': ml_collections.ConfigDict()})
  # 'auto': the 291 set (t91 + bsd200) when the data root has it, else the
  # embedded photos. scales: () trains on model.scale only.
  c.data = ml_collections.ConfigDict({
      'train': 'auto', 'data_dir': '', 'scales': (), 'patch_size': 0,
      'hr_patch_size': 41, 'augment': True, 'max_train_images': 0,
      'prefetch': 2})
  c.train = ml_collections.ConfigDict({
      'steps': 10000, 'batch_size': 64, 'loss': 'mse', 'seed': 0,
      'log_every': 100})
  c.optim = ml_collections.ConfigDict({
      'name': 'adam', 'lr': 1e-3, 'momentum': 0.9, 'nesterov': False,
      'b1': 0.9, 'b2': 0.999, 'weight_decay': 0.0,
      'grad_clip_norm': 0.0, 'grad_clip_theta': 0.0,
      'schedule': ml_collections.ConfigDict(
          {'name': 'constant', 'warmup_steps': 0, 'every_steps': 1,
           'factor': 0.1, 'final_fraction': 0.0})})
  c.checkpoint = ml_collections.ConfigDict({'every': 1000, 'keep': 3, 'use_async': True})
  # 'auto': Set5 when the data root has it, else the embedded held-out photos.
  # max_shapes: LR shapes compiled per set and scale (evaluators.plan_buckets).
  c.eval = ml_collections.ConfigDict({'sets': 'auto', 'every': 1000, 'max_images': 0,
                                      'max_shapes': evaluators.EVAL_MAX_SHAPES})
  return c


def vdsr_sgd(c: ml_collections.ConfigDict, *, steps_per_epoch: int, epochs: int
             ) -> ml_collections.ConfigDict:
  """VDSR's optimiser: SGD momentum 0.9, lr 0.1 ÷10 every 20 epochs, weight decay 1e-4."""
  c.train.steps = epochs * steps_per_epoch
  c.optim.name = 'sgd'
  c.optim.lr = 0.1
  c.optim.momentum = 0.9
  c.optim.weight_decay = 1e-4
  c.optim.schedule.name = 'step'
  c.optim.schedule.every_steps = 20 * steps_per_epoch
  c.optim.schedule.factor = 0.1
  return c


def runlocal(c: ml_collections.ConfigDict, *, steps: int = 600, batch_size: int = 16,
             patch_size: int = 16) -> ml_collections.ConfigDict:
  """The same model and loop, sized for a few minutes on a 2-core CPU.

  The papers' SGD schedules (lr 0.1, ÷10 every 20 epochs) need ~10^5 steps;
  a few hundred steps need Adam: EEDS ×2 reaches 34.47 dB on Set5 (bicubic
  33.66) after 600 steps of Adam at 1e-3, against 24.6 dB after 100 steps of
  SGD at 0.1. Gradient clipping stays as the config sets it.
  """
  c.optim.name = 'adam'
  c.optim.lr = 1e-3
  c.optim.weight_decay = 0.0
  c.optim.grad_clip_theta = 0.0
  c.optim.schedule.name = 'constant'
  c.optim.schedule.warmup_steps = 0
  c.train.steps = steps
  c.train.batch_size = batch_size
  c.train.log_every = 50
  from jaxsr import models
  if models.model_info(c.model.name).works_on_bicubic:
    # Sampled by HR size, as the papers of models on the bicubic input do.
    c.data.patch_size, c.data.hr_patch_size = 0, 2 * patch_size
  else:
    c.data.patch_size = patch_size
  c.data.max_train_images = 40
  c.checkpoint.every = max(1, steps // 4)
  c.eval.every = max(1, steps // 4)
  c.eval.max_images = 5
  return c


def train_scales(c: ml_collections.ConfigDict) -> tuple[float, ...]:
  return tuple(float(s) for s in c.data.scales) or (float(c.model.scale),)


def validate(c: ml_collections.ConfigDict, device_count: int) -> None:
  """Raises ValueError naming the config key, before any compilation."""
  from jaxsr import models
  try:
    info = models.model_info(c.model.name)
  except ValueError as e:
    raise ConfigError(f'config.model.name: {e}') from None
  if c.model.channels not in (1, 3):
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
  patch, hr_patch = c.data.patch_size, c.data.hr_patch_size
  if patch < 0 or hr_patch < 0 or not (patch or hr_patch):
    raise ConfigError('config.data.patch_size (LR) or config.data.hr_patch_size must be > 0')
  for s in scales:
    lr_side = patch or round(hr_patch / s)
    if lr_side < 1:
      raise ConfigError(f'config.data.hr_patch_size={hr_patch} is smaller than the '
                       f'scale x{s:g}: no LR pixel fits')
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
  from jaxsr import optim
  if c.optim.name not in optim.OPTIMIZERS:
    raise ConfigError(f'config.optim.name={c.optim.name!r}; valid: {optim.OPTIMIZERS}')
  if c.optim.schedule.name not in optim.SCHEDULES:
    raise ConfigError(f'config.optim.schedule.name={c.optim.schedule.name!r}; '
                     f'valid: {optim.SCHEDULES}')
  try:
    model = models.get_model(c.model.name, scale=c.model.scale,
                              channels=c.model.channels, **c.model.kwargs.to_dict())
    # Tracing (not compiling) init surfaces bad field values such as an
    # unknown upsampling mode.
    import jax
    import jax.numpy as jnp
    jax.eval_shape(model.init, jax.random.key(0),
                   jnp.zeros((1, 8, 8, c.model.channels), jnp.float32))
  except (ValueError, TypeError) as e:
    raise ConfigError(f'config.model.kwargs: {e}') from None


# Sweeps: lists of {dotted config key: value} override dictionaries.

def sweep(key: str, values: Iterable[Any]) -> list[dict[str, Any]]:
  return [{key: v} for v in values]


def product(*sweeps: list[dict[str, Any]]) -> list[dict[str, Any]]:
  return [dict(itertools.chain.from_iterable(d.items() for d in combo))
          for combo in itertools.product(*sweeps)]


def chain(*sweeps: list[dict[str, Any]]) -> list[dict[str, Any]]:
  return [point for s in sweeps for point in s]


def apply_overrides(c: ml_collections.ConfigDict, overrides: dict[str, Any]
                    ) -> ml_collections.ConfigDict:
  """Set dotted keys ('model.name', 'model.kwargs.upsampling') on a copy."""
  c = ml_collections.ConfigDict(c.to_dict())
  for key, value in overrides.items():
    *parents, leaf = key.split('.')
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c
