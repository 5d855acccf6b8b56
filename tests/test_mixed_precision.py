"""config.model.dtype=bfloat16: layers compute in bfloat16, parameters (and so
optimizer states and checkpoints) stay float32, losses and outputs are float32."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import skimage.data

from configs import common
from jaxsr import config_checks
from jaxsr import pretrained
from jaxsr import models
from jaxsr import train
from jaxsr.models import backend
from jaxsr.protocol import degradation
from jaxsr.protocol import metrics as metrics_lib
from jaxsr.protocol.imresize import imresize_jax

# Registered sizes but where a forward pass would be slow here.
SMALLER = {'edsr': {'num_blocks': 2, 'features': 32}, 'edsr_baseline': {'num_blocks': 2}}


def _conv_dtypes(fn, *args) -> list[str]:
  """The result dtype of every convolution in fn's jaxpr (nested ones too)."""
  text = str(jax.make_jaxpr(fn)(*args))
  return re.findall(r':(\w+)\[[\d,]*\] = conv_general_dilated\[', text)


@pytest.mark.parametrize('name', models.list_models())
def test_every_model_computes_in_bfloat16_with_float32_parameters(name):
  scale = 2
  lr = jax.random.uniform(jax.random.key(1), (1, 8, 8, 1), jnp.float32)
  model = models.get_model(name, scale=scale, dtype='bfloat16', **SMALLER.get(name, {}))
  reference = model.clone(dtype=jnp.float32)
  abstract = jax.eval_shape(model.init, jax.random.key(0), lr)
  assert {p.dtype for p in jax.tree.leaves(abstract)} <= {jnp.dtype(jnp.float32)}
  assert abstract == jax.eval_shape(reference.init, jax.random.key(0), lr)
  rng = np.random.default_rng(0)  # random weights without compiling init
  params = jax.tree.map(lambda a: jnp.asarray(rng.normal(0, 0.1, a.shape), a.dtype), abstract)
  convs = _conv_dtypes(model.apply, params, lr)
  assert set(convs) == ({'bf16'} if name != 'bicubic' else set()), convs
  assert set(_conv_dtypes(reference.apply, params, lr)) <= {'f32'}
  sr = jax.jit(model.apply)(params, lr)
  assert sr.dtype == jnp.float32 and sr.shape == (1, 16, 16, 1)
  assert bool(jnp.all(jnp.isfinite(sr)))


def test_the_dtype_is_a_config_key_with_a_clear_error():
  c = common.base_config('eeds', scale=2)
  config_checks.with_model_fields(c)
  c.model.dtype = 'bfloat16'
  assert models.from_config(c.model).dtype == 'bfloat16'
  c.model.dtype = 'float16'
  with pytest.raises(config_checks.ConfigError,
                     match=r"config.model: eeds: dtype 'float16'; valid: \['float32', 'bfloat16'\]"):
    config_checks.validate(c, device_count=1)


def test_the_cpu_fast_path_is_float32_only():
  assert backend.conv_factories(jnp.bfloat16) == backend.XLA_FACTORIES
  model = models.get_model('vdsr', scale=2, dtype='bfloat16')
  assert (model.conv, model.conv_transpose) == (backend.XLA_FACTORIES['conv'],
                                                backend.XLA_FACTORIES['conv_transpose'])


def _y(image: np.ndarray) -> np.ndarray:
  return degradation.hr_target(degradation.modcrop(image, 2), channels=1) / 255


def _train_eeds(dtype: str, steps: int, patches: np.ndarray, test_hr: np.ndarray):
  """(first loss, last loss, held-out PSNR) of the shipped EEDS x2 weights
  fine-tuned on `patches` (Adam) by jaxsr.train.train_step, in `dtype`."""
  model, params = pretrained.load('eeds', 2)
  # Flax's convolutions in both: the comparison is of the dtype.
  model = model.clone(dtype=dtype, **backend.XLA_FACTORIES)
  tx = optax.adam(1e-4)
  hr = jnp.asarray(patches)
  lr = imresize_jax(hr, output_size=(hr.shape[1] // 2, hr.shape[2] // 2))
  state = train.TrainState(step=jnp.zeros([], jnp.int32), params=params,
                           opt_state=tx.init(params))
  step = jax.jit(functools.partial(train.train_step, model=model, tx=tx,
                                   schedule=optax.constant_schedule(1e-4), loss_kind='mse'))
  rng = np.random.default_rng(0)
  losses = []
  for _ in range(steps):
    pick = rng.choice(len(hr), 8, replace=False)
    state, metrics = step(state, {'lr': lr[pick], 'hr': hr[pick]})
    losses.append(float(metrics['train/loss']))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves((state.params, state.opt_state))
             if jnp.issubdtype(p.dtype, jnp.floating))
  test = jnp.asarray(test_hr)[None]
  sr = jax.jit(model.apply)(state.params, imresize_jax(
      test, output_size=(test.shape[1] // 2, test.shape[2] // 2)))
  assert sr.dtype == jnp.float32
  return losses[0], losses[-1], metrics_lib.psnr(np.asarray(sr[0]) * 255, test_hr * 255)


def test_a_short_eeds_run_in_bfloat16_ends_within_0_1_db_of_float32():
  images = [_y(getattr(skimage.data, n)()) for n in ('astronaut', 'coffee', 'rocket')]
  rng = np.random.default_rng(1)
  patches = np.stack([img[y:y + 16, x:x + 16] for img in images for y, x in
                      rng.integers(0, 256, (32, 2))]).astype(np.float32)
  test_hr = _y(skimage.data.chelsea())[100:164, 100:180].astype(np.float32)
  runs = {dtype: _train_eeds(dtype, STEPS, patches, test_hr) for dtype in ('float32', 'bfloat16')}
  for first, last, psnr in runs.values():
    assert np.isfinite(last) and psnr > 30, runs  # a trained model, still
  assert abs(runs['bfloat16'][2] - runs['float32'][2]) < 0.1, runs


STEPS = 30
