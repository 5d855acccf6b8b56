"""jaxsr.optim: schedules, VDSR's adjustable clipping, global-norm clipping, weight decay."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import common
from jaxsr import optim


def optim_config(**changes):
  c = common.base_config('vdsr').optim
  for key, value in changes.items():
    *groups, leaf = key.split('__')
    node = c
    for g in groups:
      node = node[g]
    node[leaf] = value
  return c


def lrs(c, steps, total_steps=100):
  schedule = optim.build_schedule(c, total_steps)
  return [float(schedule(s)) for s in steps]


def test_constant_schedule():
  assert lrs(optim_config(lr=0.01), [0, 1, 99, 1000]) == pytest.approx([0.01] * 4)


def test_step_schedule_divides_every_every_steps():
  c = optim_config(lr=0.1, schedule__name='step', schedule__every_steps=20,
                   schedule__factor=0.1)
  assert lrs(c, [0, 19, 20, 39, 40, 65]) == pytest.approx(
      [0.1, 0.1, 0.01, 0.01, 0.001, 0.0001])


def test_cosine_schedule_after_warmup():
  c = optim_config(lr=1.0, schedule__name='cosine', schedule__warmup_steps=10,
                   schedule__final_fraction=0.1)
  got = lrs(c, [0, 5, 10, 60, 110], total_steps=110)
  # Linear warmup to lr, then cosine over the remaining 100 steps to lr · 0.1.
  assert got == pytest.approx([0.0, 0.5, 1.0, 0.1 + 0.9 * 0.5, 0.1], abs=1e-6)


@pytest.mark.parametrize('changes,message', [
    ({'schedule__name': 'linear'}, r"config.optim.schedule.name='linear'; valid"),
    ({'schedule__name': 'step', 'schedule__every_steps': 0}, 'every_steps must be > 0'),
])
def test_bad_schedules_name_the_key(changes, message):
  with pytest.raises(ValueError, match=message):
    optim.build_schedule(optim_config(**changes), 10)


def test_bad_optimizer_names_the_key():
  with pytest.raises(ValueError, match=r"config.optim.name='lamb'; valid"):
    optim.build_optimizer(optim_config(name='lamb'), 10)


def run_updates(c, grads, params, steps=1):
  """The updates of each of `steps` steps, all with the same gradients."""
  tx, _ = optim.build_optimizer(c, 100)
  state = tx.init(params)
  out = []
  for _ in range(steps):
    updates, state = tx.update(grads, state, params)
    out.append(updates)
  return out


def test_adjustable_clipping_bound_follows_the_learning_rate():
  """VDSR: gradients clipped to [-θ/γ, θ/γ], so a huge gradient moves a weight by θ at any lr."""
  theta = 0.01
  c = optim_config(name='sgd', lr=0.1, momentum=0.0, grad_clip_theta=theta,
                   schedule__name='step', schedule__every_steps=2, schedule__factor=0.1)
  params = {'w': jnp.zeros(3)}
  grads = {'w': jnp.array([1e6, -1e6, 1e-3])}
  steps = run_updates(c, grads, params, steps=5)
  lr = [0.1, 0.1, 0.01, 0.01, 0.001]
  for step, (u, gamma) in enumerate(zip(steps, lr)):
    # The bound is θ/γ: after each ÷10 of the lr, it is 10 times larger.
    np.testing.assert_allclose(u['w'][:2], [-theta, theta], rtol=1e-5, err_msg=f'step {step}')
    np.testing.assert_allclose(u['w'][2], -gamma * 1e-3, rtol=1e-5)
  bound = optim.clip_by_value_over_lr(theta, optax.constant_schedule(0.5))
  clipped, _ = bound.update(grads, bound.init(params))
  np.testing.assert_allclose(clipped['w'], [0.02, -0.02, 1e-3], rtol=1e-6)


def test_global_norm_clipping():
  c = optim_config(name='sgd', lr=1.0, momentum=0.0, grad_clip_norm=0.5)
  params = {'a': jnp.zeros(2), 'b': jnp.zeros(1)}
  big = {'a': jnp.array([3.0, 0.0]), 'b': jnp.array([4.0])}  # norm 5
  (u,) = run_updates(c, big, params)
  assert float(optax.tree.norm(u)) == pytest.approx(0.5, rel=1e-6)
  np.testing.assert_allclose(u['a'], [-0.3, 0.0], rtol=1e-6)  # the direction is kept
  small = {'a': jnp.array([0.3, 0.0]), 'b': jnp.array([0.0])}  # norm 0.3 < 0.5
  (u,) = run_updates(c, small, params)
  np.testing.assert_allclose(u['a'], [-0.3, 0.0], rtol=1e-6)


@pytest.mark.parametrize('name', ['sgd', 'adamw'])
def test_weight_decay_on_kernels_only(name):
  """Not on biases, nor on other parameters such as FSRCNN's PReLU slopes."""
  c = optim_config(name=name, lr=1.0, momentum=0.0, weight_decay=0.1)
  params = {'params': {'conv': {'kernel': jnp.full((3, 3, 1, 2), 2.0),
                                'bias': jnp.full((2,), 2.0)},
                       'prelu': {'slope': jnp.full((2,), 0.25)}}}
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  (u,) = run_updates(c, zero_grads, params)
  u = u['params']
  np.testing.assert_allclose(u['conv']['kernel'], -0.1 * 2.0, rtol=1e-6)
  np.testing.assert_array_equal(u['conv']['bias'], 0.0)
  np.testing.assert_array_equal(u['prelu']['slope'], 0.0)


@pytest.mark.parametrize('name', ['sgd', 'adam'])
def test_lr_multipliers_scale_the_updates_of_the_named_modules(name):
  """Per-layer learning rates (Caffe's lr_mult): FSRCNN's deconvolution at 0.1."""
  params = {'params': {'extract': {'kernel': jnp.ones((2,)), 'bias': jnp.ones((2,))},
                       'deconv': {'kernel': jnp.ones((2,)), 'bias': jnp.ones((2,))}}}
  grads = jax.tree.map(lambda p: jnp.array([0.5, -2.0]), params)
  plain = run_updates(optim_config(name=name, lr=0.01, momentum=0.9), grads, params, 3)
  scaled = run_updates(optim_config(name=name, lr=0.01, momentum=0.9,
                                    lr_multipliers='deconv=0.1'), grads, params, 3)
  for a, b in zip(plain, scaled):
    np.testing.assert_allclose(b['params']['extract']['kernel'], a['params']['extract']['kernel'])
    np.testing.assert_allclose(b['params']['deconv']['kernel'],
                               0.1 * a['params']['deconv']['kernel'], rtol=1e-6)
    np.testing.assert_allclose(b['params']['deconv']['bias'],
                               0.1 * a['params']['deconv']['bias'], rtol=1e-6)
    assert float(jnp.abs(a['params']['deconv']['kernel']).min()) > 0


@pytest.mark.parametrize('spec,message', [
    ('deconv', r"config.optim.lr_multipliers='deconv': expected MODULE=FACTOR"),
    ('deconv=-1', 'FACTOR >= 0'),
    ('deconv=x', 'expected MODULE=FACTOR'),
    ('deconv=nan', 'expected MODULE=FACTOR'),
])
def test_bad_lr_multipliers_name_the_setting(spec, message):
  with pytest.raises(ValueError, match=message):
    optim.parse_lr_multipliers(spec)


def test_lr_multipliers_must_name_modules_of_the_model():
  from configs import fsrcnn
  from jaxsr import config_checks
  c = fsrcnn.get_config('scale=3')
  c.optim.lr_multipliers = 'deconv=0.1,map0=0.5'
  config_checks.validate(c, 1)
  c.optim.lr_multipliers = 'decon=0.1'
  with pytest.raises(config_checks.ConfigError,
                     match='fsrcnn has no module decon; its layers: deconv, expand'):
    config_checks.validate(c, 1)
