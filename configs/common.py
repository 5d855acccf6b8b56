"""The shared shape of every training config, its arguments and its sweeps.

Config files call `base_config()` and set what their paper says. They are
leaves: this module imports only ml_collections and the standard library, so
a config loads and its sweep expands without jax, flax or the model zoo.
`jaxsr.config_checks` validates a config against the models and optimisers.

A sweep is data: a list of `Point`s, each the `get_config` arguments of one
run (variant, scale, ...) plus dotted-key overrides. A point is resolved by
calling `get_config` again with its arguments, so what a config derives from
them (FSRCNN's LR patch per scale) is what that run trains with, and each
ablation is written once, as the config's own arguments.
"""

from __future__ import annotations

import itertools
import types
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import ml_collections

# LR shapes compiled per set and scale in evaluation. A literal, as configs
# do not import jaxsr; tests check it equals jaxsr.evaluators' default.
EVAL_MAX_SHAPES = 3


class ConfigArgumentError(ValueError):
  """A bad config argument (`configs/x.py:ARG`) or override; names it."""


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """'variant=ees,scale=3,runlocal' -> ConfigDict, typed like the defaults.

  A bare word is a boolean flag set to True; unknown keys are an error.
  """
  out = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or '').split(',')):
    key, has_value, value = item.partition('=')
    key = key.strip()
    if key not in defaults:
      raise ConfigArgumentError(
          f'config argument {key!r} is not one of {sorted(defaults)}')
    default = defaults[key]
    try:
      if not has_value:
        out[key] = True
      elif isinstance(default, bool):
        out[key] = value.lower() in ('1', 'true', 'yes')
      elif isinstance(default, int):
        out[key] = int(float(value))
      elif isinstance(default, float):
        out[key] = float(value)
      else:
        out[key] = value
    except (TypeError, ValueError):
      raise ConfigArgumentError(
          f'config argument {key}={value!r}: expected a {type(default).__name__} '
          f'like {default!r}') from None
  return out


def pick(key: str, value: Any, choices: Mapping[Any, Any]) -> Any:
  """choices[value], or an error naming the config argument and its valid values."""
  if value not in choices:
    raise ConfigArgumentError(f'config argument {key}={value!r}; valid: {list(choices)}')
  return choices[value]


def format_args(args: Mapping[str, Any]) -> str:
  """{'variant': 'eed', 'scale': 3, 'runlocal': True} -> 'variant=eed,scale=3,runlocal'."""
  items = []
  for key, value in args.items():
    if value is True:
      items.append(key)
    elif isinstance(value, float):
      items.append(f'{key}={value:g}')
    else:
      items.append(f'{key}={value}')
  return ','.join(items)


def base_config(model: str, *, scale: float = 2, channels: int = 1
                ) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # The model's constructor fields are keys of c.model too: a config sets
  # those its paper fixes; jaxsr.main adds the others (None: the default).
  c.model = ml_collections.ConfigDict(
      {'name': model, 'scale': float(scale), 'channels': channels})
  # train 'auto': the 291 set (t91 + bsd200) under the data root; the embedded
  # photos (train='embedded') stand in only where allow_embedded (runlocal).
  # source: 'tfds' (the pairs `python -m jaxsr.prepare` wrote under the data
  # root), 'folders', or 'auto' (tfds when prepared, else folders).
  # scales: () trains on model.scale only. sampler: where patches are cut,
  # 'device' (a pool in accelerator memory), 'host', or 'auto' (the device
  # when the pool fits). window_images: images held at a
  # time, 0 the whole set when it fits (else windows of ~256 MB), the window
  # changing every window_steps steps (jaxsr.input_pipeline).
  # hr_downscales: factors < 1 by which each training image is also
  # downscaled (MATLAB bicubic) as further HR images, the VDSR/FSRCNN papers'
  # scale augmentation (0.9, 0.8, 0.7, 0.6); () none.
  c.data = ml_collections.ConfigDict({
      'train': 'auto', 'data_dir': '', 'scales': (), 'patch_size': 0,
      'hr_patch_size': 41, 'augment': True, 'hr_downscales': (), 'max_train_images': 0,
      'prefetch': 2, 'sampler': 'auto', 'window_images': 0, 'window_steps': 1000,
      'source': 'auto', 'allow_embedded': False})
  # loss_reduction: 'mean' over every pixel, or 'sum_per_sample' (VDSR's
  # ½‖r − f(x)‖² per sample, the Caffe convention the papers' learning rates
  # and θ/γ clipping are stated in; see jaxsr.train.compute_loss).
  # Run length: steps > 0, else epochs of the training set's patch grid,
  # converted to steps at run time by the global batch (jaxsr.epochs); both 0:
  # evaluation only. batch_size is global; per_device_batch_size > 0 makes it
  # per_device_batch_size × the device count. init_from: start from shipped
  # weights ('fsrcnn_x3') or a run's workdir (jaxsr.init_from), '' from scratch.
  c.train = ml_collections.ConfigDict({
      'steps': 0, 'epochs': 0.0, 'batch_size': 64, 'per_device_batch_size': 0,
      'loss': 'mse', 'loss_reduction': 'mean', 'seed': 0, 'log_every': 100,
      'init_from': ''})
  c.optim = ml_collections.ConfigDict({
      'name': 'adam', 'lr': 1e-3, 'momentum': 0.9, 'nesterov': False,
      'b1': 0.9, 'b2': 0.999, 'weight_decay': 0.0,
      'grad_clip_norm': 0.0, 'grad_clip_theta': 0.0,
      # Per-layer learning rates, 'MODULE=FACTOR,...' (SRCNN's last layer and
      # FSRCNN's deconvolution at 0.1 in their papers); '' none.
      'lr_multipliers': '',
      # step decay every every_steps, or every every_epochs (steps win);
      # warmup likewise.
      'schedule': ml_collections.ConfigDict(
          {'name': 'constant', 'warmup_steps': 0, 'warmup_epochs': 0.0,
           'every_steps': 0, 'every_epochs': 0.0, 'factor': 0.1,
           'final_fraction': 0.0})})
  c.checkpoint = ml_collections.ConfigDict({'every': 1000, 'keep': 3, 'use_async': True})
  # 'auto': Set5 when the data root has it, else the embedded held-out photos.
  # max_shapes: LR shapes compiled per set and scale (evaluators.plan_buckets).
  # kind: the evaluator, by its name in jaxsr.evaluators.EVALUATORS.
  c.eval = ml_collections.ConfigDict({'kind': 'benchmark', 'sets': 'auto', 'every': 1000,
                                      'max_images': 0, 'max_shapes': EVAL_MAX_SHAPES})
  return c


def vdsr_sgd(c: ml_collections.ConfigDict, *, epochs: float) -> ml_collections.ConfigDict:
  """VDSR's regime: batch 64, SGD momentum 0.9, lr 0.1 ÷10 every 20 epochs, weight decay 1e-4."""
  c.train.batch_size = 64
  c.train.steps = 0
  c.train.epochs = float(epochs)
  c.optim.name = 'sgd'
  c.optim.lr = 0.1
  c.optim.momentum = 0.9
  c.optim.weight_decay = 1e-4
  c.optim.schedule.name = 'step'
  c.optim.schedule.every_epochs = 20.0
  c.optim.schedule.factor = 0.1
  return c


def adam_cosine(c: ml_collections.ConfigDict, *, steps: int, lr: float = 1e-3
                ) -> ml_collections.ConfigDict:
  """Our regime where a paper's is impractical here: Adam, cosine decay over the run."""
  c.train.steps = steps
  c.optim.name = 'adam'
  c.optim.lr = lr
  c.optim.schedule.name = 'cosine'
  return c


def adam_regime(c: ml_collections.ConfigDict, *, steps: int, batch_size: int = 16
                ) -> ml_collections.ConfigDict:
  """Adam at 1e-3 on the per-pixel mean loss, decayed to 0 by a cosine over
  `steps`, no weight decay or θ clipping (global-norm clipping stays as the
  config sets it): what runlocal and the shipped VDSR/EEDS weights train with
  (`regime=adam`), where the papers' SGD at 0.1 needs ~10^5 steps."""
  adam_cosine(c, steps=steps)
  c.train.batch_size = batch_size
  c.train.loss_reduction = 'mean'  # the lr above is tuned for the per-pixel mean
  c.optim.weight_decay = 0.0
  c.optim.grad_clip_theta = 0.0
  c.optim.schedule.final_fraction = 0.0
  c.optim.schedule.warmup_steps = 0
  return c


REGIMES = ('paper', 'adam')


def apply_regime(c: ml_collections.ConfigDict, regime: str, *, steps: int
                 ) -> ml_collections.ConfigDict:
  """The `regime=` config argument: 'paper' keeps the config as its paper sets
  it, 'adam' switches it to `adam_regime` over `steps`."""
  if pick('regime', regime, {r: r for r in REGIMES}) == 'adam':
    adam_regime(c, steps=steps)
  return c


def runlocal(c: ml_collections.ConfigDict, *, on_bicubic: bool, steps: int = 600,
             batch_size: int = 16, patch_size: int = 16) -> ml_collections.ConfigDict:
  """The same model and loop, sized for a few minutes on a 2-core CPU.

  The papers' SGD schedules (lr 0.1, ÷10 every 20 epochs) need ~10^5 steps
  and barely move in a few hundred; Adam at 1e-3 on the per-pixel mean loss
  does, decayed to 0 by a cosine over the run: at a constant 1e-3 the
  held-out PSNR of the last step swings by more than a dB between
  evaluations, so a short run could end below bicubic. Gradient clipping by
  norm stays as the config sets it. `on_bicubic`: the model works on the
  bicubic-upsampled input (the config knows its model; the registry is not
  imported here), so patches are sampled by HR size as those papers do.
  """
  adam_regime(c, steps=steps, batch_size=batch_size)
  c.train.log_every = 50
  if on_bicubic:
    c.data.patch_size, c.data.hr_patch_size = 0, 2 * patch_size
  else:
    c.data.patch_size = patch_size
  c.data.max_train_images = 40
  c.data.allow_embedded = True  # the quick run works on a fresh machine
  c.checkpoint.every = max(1, steps // 4)
  c.eval.every = max(1, steps // 4)
  c.eval.max_images = 5
  return c


# --- Sweeps ---

class Point(NamedTuple):
  """One run of a sweep: `get_config` arguments, then dotted-key overrides.

  A NamedTuple rather than a dataclass, so that this file also loads by path
  under any module name (dataclasses look their module up in sys.modules).
  """
  args: Mapping[str, Any] = types.MappingProxyType({})
  overrides: Mapping[str, Any] = types.MappingProxyType({})

  def config_arg(self, base: str = '') -> str:
    """This run's `get_config` argument: `base` (e.g. 'runlocal') and the point's."""
    base_keys = {item.partition('=')[0].strip() for item in base.split(',') if item}
    varied = sorted(base_keys & set(self.args))
    if varied:
      raise ConfigArgumentError(
          f'config argument {base!r} sets {", ".join(varied)}, which the sweep '
          'varies; leave it out (select points with --only instead)')
    return ','.join(filter(None, [base, format_args(self.args)]))


def grid(overrides: Mapping[str, Sequence[Any]] | None = None,
         **args: Sequence[Any]) -> list[Point]:
  """Every combination of the given `get_config` arguments and overrides, in order.

  grid(variant=['eed', 'eeds'], scale=[2, 3]) -> eed ×2, eed ×3, eeds ×2, eeds ×3.
  """
  overrides = dict(overrides or {})
  return [Point(dict(zip(args, arg_values)), dict(zip(overrides, override_values)))
          for arg_values in itertools.product(*args.values())
          for override_values in itertools.product(*overrides.values())]


def resolve(get_config: Callable[[str], ml_collections.ConfigDict], point: Point,
            base: str = '') -> ml_collections.ConfigDict:
  """The config of one sweep point: `get_config` with its arguments, then its overrides."""
  return apply_overrides(get_config(point.config_arg(base)), point.overrides)


def check_key(c: ml_collections.ConfigDict, key: str) -> Any:
  """The value at dotted `key`; an error naming the valid keys where it stops."""
  node = c
  parts = key.split('.')
  for depth, part in enumerate(parts):
    where = '.'.join(['config', *parts[:depth]])
    if not isinstance(node, ml_collections.ConfigDict):
      raise ConfigArgumentError(f'{where} is a value, not a group of keys')
    if part not in node:
      raise ConfigArgumentError(f'{where} has no key {part!r}; valid: {sorted(node)}')
    node = node[part]
  return node


def apply_overrides(c: ml_collections.ConfigDict, overrides: Mapping[str, Any]
                    ) -> ml_collections.ConfigDict:
  """Set dotted keys ('optim.lr', 'model.upsampling') on a copy.

  Keys must exist, except the model's constructor fields (model.<field>),
  which jaxsr checks against the model.
  """
  c = ml_collections.ConfigDict(c.to_dict())
  for key, value in overrides.items():
    try:
      if key.count('.') != 1 or not key.startswith('model.'):
        check_key(c, key)
    except ConfigArgumentError as e:
      raise ConfigArgumentError(f'override {key}: {e}') from None
    parent, _, leaf = key.rpartition('.')
    (check_key(c, parent) if parent else c)[leaf] = value
  return c
