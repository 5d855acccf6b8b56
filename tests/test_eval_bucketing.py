"""Shape bucketing in evaluation.model_predict: fewer compilations, same SR."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr import evaluation
from jaxsr import models
from jaxsr import tiling

SIZES = [(30, 41), (50, 64), (64, 57)]  # all in the 64×64 bucket


def _predict_both(model, variables, lr, bucket=64):
  size = tuple(int(model.scale) * n for n in lr.shape[:2])
  padded = evaluation.model_predict(model, variables, bucket=bucket)(lr[None], size)[0]
  plain = evaluation.model_predict(model, variables, bucket=0)(lr[None], size)[0]
  assert padded.shape == plain.shape == size + lr.shape[2:]
  return padded, plain


@pytest.mark.parametrize('scale', [2, 3])
def test_bicubic_is_unchanged_by_padding(scale):
  model = models.get_model('bicubic', scale=scale)
  lr = np.random.default_rng(0).random((37, 50, 1), np.float32)
  padded, plain = _predict_both(model, {}, lr)
  np.testing.assert_allclose(padded, plain, atol=1e-5)


def test_conv_model_changes_only_pixels_near_the_padded_borders():
  model = models.get_model('espcn', scale=2)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  radius = tiling.measure_receptive_radius(model, variables, limit=8)
  lr = np.random.default_rng(1).random((37, 45, 1), np.float32)
  padded, plain = _predict_both(model, variables, lr)
  keep = 2 * (radius + 1)  # SR pixels whose receptive field stays inside the image
  np.testing.assert_allclose(padded[:-keep, :-keep], plain[:-keep, :-keep], atol=1e-4)
  # The top and left borders see the same zero padding as before.
  np.testing.assert_allclose(padded[:keep, :-keep], plain[:keep, :-keep], atol=1e-4)


def test_one_compilation_per_bucket_and_none_for_a_new_predict():
  model = models.get_model('espcn', scale=2, features=(8, 4))  # its own jit cache
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  apply = evaluation._jitted_apply(model)
  before = apply._cache_size()
  predict = evaluation.model_predict(model, variables, bucket=64)
  for h, w in SIZES:
    predict(np.zeros((1, h, w, 1), np.float32), (2 * h, 2 * w))
  assert apply._cache_size() - before == 1
  # A new predict function (training builds one per evaluation) reuses it.
  evaluation.model_predict(model, variables)(np.zeros((1, 30, 41, 1), np.float32), (60, 82))
  new_params = jax.tree.map(lambda p: p + 1, variables)
  evaluation.model_predict(model, new_params, bucket=64)(
      np.zeros((1, 30, 41, 1), np.float32), (60, 82))
  assert apply._cache_size() - before == 2  # the 64×64 bucket and 30×41 unpadded


def test_sizes_other_than_scale_times_lr_run_unpadded():
  model = models.get_model('bicubic', scale=2)
  lr = np.random.default_rng(2).random((1, 20, 30, 1), np.float32)
  out = evaluation.model_predict(model, {}, bucket=64)(lr, (41, 59))
  assert out.shape == (1, 41, 59, 1)
