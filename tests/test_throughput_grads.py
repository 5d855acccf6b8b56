"""The chunked kernel gradient (jaxsr.models.conv) against a float64 reference.

The reformulation is exact (float64: equal to XLA's gradient to rounding),
and its float32 gradient is within 1e-4 of float64 (relative L2 of the
whole gradient, and of each parameter). The one exception is VDSR's first
conv, whose float32 gradient (a sum with much cancellation) is ~1e-3 off
float64 with XLA's own kernel gradient too: there the bound is XLA's
float32 error. The models are shallower than registered (compile time).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr import models
from jaxsr.models import conv


# Shallower than the registry's (compile time), with the same kinds of layers;
# EEDS without its shallow branch (4-8 channels: no chunked convolution there).
SMALL = {'vdsr': {'depth': 6}, 'edsr_baseline': {'num_blocks': 2},
         'eeds': {'num_residual_units': 1, 'upsampling_kernel': 4, 'use_shallow': False}}


def _grads(name, dtype, batch, chunked):
  """Gradient of the training loss (MSE) for a fixed random batch."""
  model = models.get_model(name, scale=2, channels=1, dtype=dtype, **SMALL.get(name, {}))
  rng = np.random.default_rng(0)
  lr = jnp.asarray(rng.random((batch, 10, 9, 1)), dtype)
  hr = jnp.asarray(rng.random((batch, 20, 18, 1)), dtype)
  # Random N(0, 1/fan_in) weights drawn by NumPy: compiling model.init costs more.
  abstract = jax.eval_shape(model.init, jax.random.key(0), lr)
  params = jax.tree.map(
      lambda a: jnp.asarray(rng.standard_normal(a.shape)
                            / np.sqrt(max(np.prod(a.shape[:-1]), 1)), dtype), abstract)

  def loss(p):  # train.compute_loss's MSE, in `dtype`
    return jnp.mean((model.apply(p, lr) - hr) ** 2)

  saved = conv.CHUNK_BYTES, conv.MIN_CHANNELS
  # Chunk of 1 image for every qualifying conv, or no chunking at all.
  conv.CHUNK_BYTES, conv.MIN_CHANNELS = (1, saved[1]) if chunked else (saved[0], 2**31)
  try:
    return jax.jit(jax.grad(loss))(params)
  finally:
    conv.CHUNK_BYTES, conv.MIN_CHANNELS = saved


def _errors(got, want):
  """Relative L2 error per parameter and of the whole gradient."""
  leaves = [(np.asarray(g, np.float64), np.asarray(w)) for g, w in
            zip(jax.tree.leaves(got), jax.tree.leaves(want))]
  per_leaf = [np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-300) for g, w in leaves]
  total = (np.sqrt(sum(np.sum((g - w) ** 2) for g, w in leaves))
           / np.sqrt(sum(np.sum(w ** 2) for _, w in leaves)))
  return np.array(per_leaf), float(total)


@pytest.mark.parametrize('name', ['vdsr', 'eeds', 'edsr_baseline', 'espcn'])
def test_chunked_weight_grad_matches_float64(name):
  chunked = _grads(name, jnp.float32, 3, chunked=True)
  with jax.enable_x64(True):
    want = jax.tree.map(np.asarray, _grads(name, jnp.float64, 3, chunked=False))
    exact = jax.tree.map(np.asarray, _grads(name, jnp.float64, 3, chunked=True))
  assert _errors(exact, want)[1] < 1e-12
  per_leaf, total = _errors(chunked, want)
  assert total < 1e-4
  off = per_leaf >= 1e-4
  if off.any():  # as far off as XLA's own float32 gradient, not further
    xla_per_leaf, _ = _errors(_grads(name, jnp.float32, 3, chunked=False), want)
    np.testing.assert_array_less(per_leaf[off], 2 * xla_per_leaf[off])


def test_chunked_conv_is_used_only_where_it_qualifies():
  assert conv.weight_grad_chunk((16, 40, 40, 64)) == 1
  assert conv.weight_grad_chunk((16, 20, 20, 64)) == 2
  assert conv.weight_grad_chunk((4, 8, 8, 1)) == 4
  x = jnp.zeros((16, 40, 40, 64))
  w3, w1, narrow = (jnp.zeros((3, 3, 64, 64)), jnp.zeros((1, 1, 64, 64)),
                    jnp.zeros((7, 7, 16, 16)))
  dn = jax.lax.conv_dimension_numbers(x.shape, w3.shape, ('NHWC', 'HWIO', 'NHWC'))

  def uses_custom_vjp(w, xx=x):
    jaxpr = jax.make_jaxpr(lambda a, b: conv.conv_general_dilated(
        a, b, (1, 1), 'SAME', dimension_numbers=dn))(xx, w)
    return 'custom_vjp_call' in str(jaxpr)

  assert uses_custom_vjp(w3)
  assert not uses_custom_vjp(w1)
  assert not uses_custom_vjp(narrow, jnp.zeros((16, 40, 40, 16)))


@pytest.mark.parametrize('kernel,stride', [(14, 2), (16, 4), (3, 2)])
def test_subpixel_conv_transpose_is_nn_conv_transpose(kernel, stride):
  """Same parameters, values and gradients in float64 (EEDS's upsampling)."""
  import flax.linen as nn
  from jaxsr.models import layers
  pad = layers.transposed_conv_padding(kernel, stride)  # (3, 2): asymmetric
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    ref = nn.ConvTranspose(3, (kernel, kernel), strides=(stride, stride),
                           padding=(pad, pad), dtype=jnp.float64, param_dtype=jnp.float64)
    new = layers.SubPixelConvTranspose(3, kernel, stride, pad, dtype=jnp.float64)
    x = jnp.asarray(rng.standard_normal((2, 7, 6, 4)))
    shapes = jax.eval_shape(ref.init, jax.random.key(0), x)
    shape_of = lambda tree: jax.tree.map(lambda a: a.shape, tree)
    assert shape_of(jax.eval_shape(new.init, jax.random.key(0), x)) == shape_of(shapes)
    params = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), shapes)

    def value_and_grads(module):
      f = lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
      return jax.jit(lambda p, x: (module.apply(p, x),
                                   jax.grad(f, argnums=(0, 1))(p, x)))(params, x)

    got, want = value_and_grads(new), value_and_grads(ref)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, atol=1e-10), got, want)
