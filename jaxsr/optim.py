"""Optimisers and learning-rate schedules, built from `config.optim` in one place."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

SCHEDULES = ('constant', 'step', 'cosine')
OPTIMIZERS = ('sgd', 'adam', 'adamw')


def build_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """config.optim.schedule: name, warmup_steps, and per-name fields.

  step:   lr · factor^floor(step / every_steps)  (VDSR: 0.1, ÷10 every 20 epochs)
  cosine: cosine decay to lr · final_fraction over the run
  """
  sched = cfg.schedule
  lr = cfg.lr
  warmup = int(sched.get('warmup_steps', 0))
  if sched.name == 'constant':
    main = optax.constant_schedule(lr)
  elif sched.name == 'step':
    every = int(sched.every_steps)
    if every <= 0:
      raise ValueError('config.optim.schedule.every_steps must be > 0')
    main = optax.exponential_decay(lr, transition_steps=every,
                                   decay_rate=sched.factor, staircase=True)
  elif sched.name == 'cosine':
    main = optax.cosine_decay_schedule(
        lr, decay_steps=max(1, total_steps - warmup),
        alpha=sched.get('final_fraction', 0.0))
  else:
    raise ValueError(f'config.optim.schedule.name={sched.name!r}; valid: {SCHEDULES}')
  if warmup <= 0:
    return main
  return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup), main], [warmup])


class ClipOverLrState(NamedTuple):
  count: jnp.ndarray


def clip_by_value_over_lr(theta: float, schedule: optax.Schedule
                          ) -> optax.GradientTransformation:
  """VDSR's adjustable gradient clipping: each gradient in [-θ/γ, θ/γ], γ the current lr."""

  def init_fn(params):
    del params
    return ClipOverLrState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    del params
    bound = theta / jnp.maximum(schedule(state.count), 1e-12)
    updates = jax.tree.map(lambda g: jnp.clip(g, -bound, bound), updates)
    return updates, ClipOverLrState(count=state.count + 1)

  return optax.GradientTransformation(init_fn, update_fn)


def parse_lr_multipliers(spec: str) -> dict[str, float]:
  """'deconv=0.1,conv3=0.1' -> {'deconv': 0.1, 'conv3': 0.1}: per-layer learning rates.

  Each name is a module of the model (a component of a parameter's path), as
  Caffe's lr_mult: SRCNN trains its last layer and FSRCNN its deconvolution
  at a tenth of the learning rate.
  """
  out = {}
  for item in filter(None, (part.strip() for part in (spec or '').split(','))):
    name, _, value = item.partition('=')
    try:
      factor = float(value)
    except ValueError:
      factor = -1.0
    if not name or not 0 <= factor < float('inf'):  # NaN fails too
      raise ValueError(f'config.optim.lr_multipliers={spec!r}: expected MODULE=FACTOR '
                       f'pairs like deconv=0.1, FACTOR >= 0; got {item!r}')
    out[name.strip()] = factor
  return out


def module_names(path) -> list[str]:
  return [str(getattr(entry, 'key', entry)) for entry in path]


def scale_by_module(multipliers: dict[str, float]) -> optax.GradientTransformation:
  """Multiplies each parameter's update by the factor of the first module in
  `multipliers` on its path (1 for the others): per-layer learning rates."""
  factors = sorted(set(multipliers.values()))

  def label(params):
    def one(path, _):
      hits = [multipliers[n] for n in module_names(path) if n in multipliers]
      return f'factor{factors.index(hits[0])}' if hits else 'unscaled'
    return jax.tree_util.tree_map_with_path(one, params)

  transforms = {f'factor{i}': optax.scale(f) for i, f in enumerate(factors)}
  transforms['unscaled'] = optax.identity()
  return optax.multi_transform(transforms, label)


def _decay_mask(params: Any) -> Any:
  """Weight decay on convolution kernels only: not on biases, nor on PReLU slopes."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], 'key', '') == 'kernel', params)


def build_optimizer(cfg: ml_collections.ConfigDict, total_steps: int
                    ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  schedule = build_schedule(cfg, total_steps)
  parts = []
  if cfg.get('grad_clip_theta'):
    parts.append(clip_by_value_over_lr(cfg.grad_clip_theta, schedule))
  if cfg.get('grad_clip_norm'):
    parts.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
  wd = cfg.get('weight_decay', 0.0)
  if cfg.name == 'sgd':
    if wd:
      parts.append(optax.add_decayed_weights(wd, mask=_decay_mask))
    parts.append(optax.sgd(schedule, momentum=cfg.get('momentum') or None,
                           nesterov=cfg.get('nesterov', False)))
  elif cfg.name == 'adam':
    if wd:
      parts.append(optax.add_decayed_weights(wd, mask=_decay_mask))
    parts.append(optax.adam(schedule, b1=cfg.get('b1', 0.9), b2=cfg.get('b2', 0.999)))
  elif cfg.name == 'adamw':
    parts.append(optax.adamw(schedule, b1=cfg.get('b1', 0.9), b2=cfg.get('b2', 0.999),
                             weight_decay=wd, mask=_decay_mask))
  else:
    raise ValueError(f'config.optim.name={cfg.name!r}; valid: {OPTIMIZERS}')
  multipliers = parse_lr_multipliers(cfg.get('lr_multipliers', ''))
  if multipliers:
    parts.append(scale_by_module(multipliers))
  return optax.chain(*parts), schedule
