"""train.loss_reduction: the per-pixel mean and the papers' per-sample ½‖·‖² sum."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import optax
import pytest

from configs import common
from jaxsr import config_checks
from jaxsr import models
from jaxsr import train

REPO = pathlib.Path(__file__).resolve().parent.parent


def load_config(name, arg=''):
  spec = importlib.util.spec_from_file_location(name, REPO / 'configs' / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_values_on_a_known_input():
  # Two samples of 4×5×1 pixels, each off by 0.5 everywhere.
  sr, hr = jnp.zeros((2, 4, 5, 1)), jnp.full((2, 4, 5, 1), 0.5)
  assert float(train.compute_loss(sr, hr, 'mse')) == pytest.approx(0.25)
  assert float(train.compute_loss(sr, hr, 'mse', 'mean')) == pytest.approx(0.25)
  # ½ · 20 pixels · 0.25, the same for both samples, so the batch mean too.
  assert float(train.compute_loss(sr, hr, 'mse', 'sum_per_sample')) == pytest.approx(2.5)
  assert float(train.compute_loss(sr, hr, 'l1', 'mean')) == pytest.approx(0.5)
  assert float(train.compute_loss(sr, hr, 'l1', 'sum_per_sample')) == pytest.approx(10.0)


def test_samples_are_averaged_not_summed():
  hr = jnp.zeros((2, 3, 3, 1))
  sr = jnp.stack([jnp.ones((3, 3, 1)), jnp.zeros((3, 3, 1))])  # errors 9 and 0
  assert float(train.compute_loss(sr, hr, 'mse', 'sum_per_sample')) == pytest.approx(
      0.5 * 9 / 2)


def test_the_gradient_of_the_sum_is_half_the_pixels_of_a_sample_times_the_mean():
  """VDSR's 41×41 Y patches: ½ · 41 · 41 · 1 = 840.5 times the per-pixel mean's."""
  hr = jax.random.uniform(jax.random.key(0), (3, 41, 41, 1))
  x = jax.random.uniform(jax.random.key(1), (3, 41, 41, 1))

  def grad(reduction):
    return jax.grad(lambda w: train.compute_loss(w * x, hr, 'mse', reduction))(0.3)

  assert float(grad('sum_per_sample') / grad('mean')) == pytest.approx(840.5, rel=1e-4)


def test_train_step_uses_the_reduction():
  model = models.get_model('vdsr', scale=2, depth=3, features=4)
  batch = {'lr': jax.random.uniform(jax.random.key(0), (2, 6, 6, 1)),
           'hr': jax.random.uniform(jax.random.key(1), (2, 12, 12, 1))}
  params = model.init(jax.random.key(2), batch['lr'], output_size=(12, 12))
  tx = optax.sgd(0.0)
  state = train.TrainState(step=jnp.zeros([], jnp.int32), params=params,
                           opt_state=tx.init(params))
  norms = {}
  for reduction in ('mean', 'sum_per_sample'):
    _, out = train.train_step(state, batch, model=model, tx=tx,
                              schedule=optax.constant_schedule(0.0), loss_kind='mse',
                              loss_reduction=reduction)
    norms[reduction] = float(out['train/grad_norm'])
  assert norms['sum_per_sample'] / norms['mean'] == pytest.approx(0.5 * 12 * 12, rel=1e-4)


def test_an_unknown_reduction_is_refused():
  with pytest.raises(ValueError, match="loss reduction 'sum'; valid"):
    train.compute_loss(jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 1)), 'mse', 'sum')


def test_config_validation_names_the_key():
  c = load_config('vdsr', 'runlocal')
  config_checks.validate(c, device_count=1)
  c.train.loss_reduction = 'sum'
  with pytest.raises(config_checks.ConfigError,
                     match=r"config.train.loss_reduction='sum'; valid: \('mean', "
                           r"'sum_per_sample'\)"):
    config_checks.validate(c, device_count=1)


def test_paper_settings_sum_per_sample_and_runlocal_the_mean():
  assert common.base_config('vdsr').train.loss_reduction == 'mean'
  for name, arg in (('vdsr', ''), ('vdsr', 'scale=3'), ('eeds', 'variant=eed'),
                    ('dcnn', 'variant=dscnn')):
    assert load_config(name, arg).train.loss_reduction == 'sum_per_sample', name
    runlocal = ','.join(filter(None, [arg, 'runlocal']))
    assert load_config(name, runlocal).train.loss_reduction == 'mean', name

