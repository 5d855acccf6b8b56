"""jaxsr.cpu.conv's CPU convolutions against a float64 reference.

The chunked kernel gradient is exact (float64: equal to XLA's gradient to
rounding); its float32 gradient, and that of the oneDNN convolutions
(jaxsr.cpu.onednn_conv, float32 only), are within 1e-4 of float64
(relative L2 of the whole gradient, and of each parameter). The one exception is VDSR's first
conv, whose float32 gradient (a sum with much cancellation) is ~1e-3 off
float64 with XLA's own kernel gradient too: there the bound is XLA's
float32 error. The models are shallower than registered (compile time).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr import models

conv = pytest.importorskip('jaxsr.cpu.conv')  # the optional fast path
from jaxsr.cpu import conv_transpose  # noqa: E402
from jaxsr.cpu import onednn_conv  # noqa: E402

needs_onednn = pytest.mark.skipif(
    not onednn_conv.available(),
    reason=f'oneDNN convolutions unavailable: {onednn_conv.unavailable_reason()}')


# Shallower than the registry's (compile time), with the same kinds of layers;
# EEDS without its shallow branch (4-8 channels: no chunked convolution there).
SMALL = {'vdsr': {'depth': 6}, 'edsr_baseline': {'num_blocks': 2},
         'eeds': {'num_residual_units': 1, 'upsampling_kernel': 4, 'use_shallow': False}}


def _grads(name, dtype, batch, impl):
  """Gradient of the training loss (MSE) for a fixed random batch."""
  model = models.get_model(name, scale=2, channels=1, dtype=dtype, **SMALL.get(name, {}),
                           **conv.factories(impl))
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

  saved = conv.CHUNK_BYTES
  conv.CHUNK_BYTES = 1  # 'chunked': a chunk of 1 image for every qualifying conv
  try:
    return jax.jit(jax.grad(loss))(params)
  finally:
    conv.CHUNK_BYTES = saved


def _errors(got, want):
  """Relative L2 error per parameter and of the whole gradient."""
  leaves = [(np.asarray(g, np.float64), np.asarray(w)) for g, w in
            zip(jax.tree.leaves(got), jax.tree.leaves(want))]
  per_leaf = [np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-300) for g, w in leaves]
  total = (np.sqrt(sum(np.sum((g - w) ** 2) for g, w in leaves))
           / np.sqrt(sum(np.sum(w ** 2) for _, w in leaves)))
  return np.array(per_leaf), float(total)


def _float64_reference(name):
  with jax.enable_x64(True):
    return jax.tree.map(np.asarray, _grads(name, jnp.float64, 3, 'xla'))


def _assert_float32_close(name, got, want):
  per_leaf, total = _errors(got, want)
  assert total < 1e-4
  off = per_leaf >= 1e-4
  if off.any():  # as far off as XLA's own float32 gradient, not further
    xla_per_leaf, _ = _errors(_grads(name, jnp.float32, 3, 'xla'), want)
    np.testing.assert_array_less(per_leaf[off], 2 * xla_per_leaf[off])


@pytest.mark.parametrize('name', ['vdsr', 'eeds', 'edsr_baseline', 'espcn'])
def test_chunked_weight_grad_matches_float64(name):
  want = _float64_reference(name)
  with jax.enable_x64(True):
    exact = jax.tree.map(np.asarray, _grads(name, jnp.float64, 3, 'chunked'))
  assert _errors(exact, want)[1] < 1e-12
  _assert_float32_close(name, _grads(name, jnp.float32, 3, 'chunked'), want)


@needs_onednn
@pytest.mark.parametrize('name', ['vdsr', 'eeds', 'edsr_baseline', 'espcn'])
def test_onednn_grads_match_float64(name):
  _assert_float32_close(name, _grads(name, jnp.float32, 3, 'onednn'), _float64_reference(name))


@needs_onednn
@pytest.mark.parametrize('x_shape,k,pads', [
    ((2, 9, 7, 3), 3, ((1, 1), (1, 1))), ((3, 10, 12, 16), 5, ((2, 2), (2, 2))),
    ((2, 8, 8, 4), 4, ((1, 2), (2, 1))), ((2, 6, 6, 3), 1, ((0, 0), (0, 0))),
    ((1, 5, 6, 2), 3, ((0, 0), (0, 0)))])
def test_onednn_conv_matches_float64(x_shape, k, pads):
  """The conv, its two gradients and its forward-mode derivative: odd and
  even kernels, asymmetric and no padding."""
  rng = np.random.default_rng(0)
  x, dx = rng.standard_normal((2, *x_shape))
  w, dw = rng.standard_normal((2, k, k, x_shape[-1], 5))
  with jax.enable_x64(True):
    ref = lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1, 1), pads, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    y64, vjp64 = jax.vjp(ref, x, w)
    dy = rng.standard_normal(y64.shape)
    want = [np.asarray(a) for a in (y64, *vjp64(dy), jax.jvp(ref, (x, w), (dx, dw))[1])]
  f32 = lambda a: jnp.asarray(a.astype(np.float32))
  f = lambda x, w: onednn_conv.conv2d(x, w, pads)
  y, vjp = jax.vjp(f, f32(x), f32(w))
  got = (y, *vjp(f32(dy)), jax.jvp(f, (f32(x), f32(w)), (f32(dx), f32(dw)))[1])
  for g, w_ in zip(got, want):
    assert g.dtype == jnp.float32 and g.shape == w_.shape
    np.testing.assert_allclose(np.linalg.norm(np.asarray(g, np.float64) - w_)
                               / np.linalg.norm(w_), 0, atol=1e-6)


@needs_onednn
def test_onednn_conv_under_vmap_jacfwd_and_jit():
  """vmap (of the primitive and of its gradient), jacfwd and jit agree with XLA."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((3, 5, 4, 2)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, 2, 4)), jnp.float32)
  pads = ((1, 1), (1, 1))
  ref = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), pads, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  f = lambda x, w: onednn_conv.conv2d(x, w, pads)
  per_image = lambda g: lambda w: jnp.sum(jax.vmap(lambda x: g(x[None], w))(x) ** 2)
  pairs = [(jax.vmap(lambda x: f(x[None], w))(x), jax.vmap(lambda x: ref(x[None], w))(x)),
           (jax.jacfwd(f)(x[:1], w), jax.jacfwd(ref)(x[:1], w)),
           (jax.jit(jax.grad(per_image(f)))(w), jax.grad(per_image(ref))(w))]
  for got, want in pairs:
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@needs_onednn
def test_a_first_layer_computes_no_input_gradient():
  x, w = jnp.zeros((2, 8, 8, 16)), jnp.zeros((3, 3, 16, 16))
  loss = lambda w, x: jnp.sum(onednn_conv.conv2d(x, w, ((1, 1), (1, 1))))
  assert 'jaxsr_onednn_bwd_data' not in str(jax.make_jaxpr(jax.grad(loss))(w, x))
  assert 'jaxsr_onednn_bwd_data' in str(jax.make_jaxpr(jax.grad(loss, (0, 1)))(w, x))


@pytest.mark.parametrize('impl', ['onednn', 'chunked'])
def test_conv_factory_is_nn_conv(impl):
  """The same parameters and function as flax's nn.Conv."""
  if impl == 'onednn' and not onednn_conv.available():
    pytest.skip(f'oneDNN convolutions unavailable: {onednn_conv.unavailable_reason()}')
  x = jnp.asarray(np.random.default_rng(0).random((2, 9, 8, 32), np.float32))
  for kernel, padding in [((3, 3), 'SAME'), ((2, 2), 'SAME'), ((1, 1), 'VALID'),
                          ((3, 3), ((1, 0), (2, 1)))]:
    ref = nn.Conv(32, kernel, padding=padding)
    params = ref.init(jax.random.key(0), x)
    params = jax.tree.map(lambda a: a + 0.1, params)  # non-zero biases
    new = conv.conv_factory(impl)(32, kernel, padding=padding)
    assert (jax.tree.map(jnp.shape, new.init(jax.random.key(0), x))
            == jax.tree.map(jnp.shape, params))
    np.testing.assert_allclose(new.apply(params, x), ref.apply(params, x), rtol=1e-5,
                               atol=1e-5)


def _traced(x, w, impl):
  dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ('NHWC', 'HWIO', 'NHWC'))
  return str(jax.make_jaxpr(jax.grad(lambda a, b: jnp.sum(conv.conv_general_dilated(
      a, b, (1, 1), 'SAME', dimension_numbers=dn, implementation=impl)), (0, 1)))(x, w))


@needs_onednn
def test_where_onednn_and_chunks_are_chosen():
  x, w = jnp.zeros((16, 40, 40, 64)), jnp.zeros((3, 3, 64, 64))
  narrow = jnp.zeros((3, 3, 64, conv.ONEDNN_MIN_OUT_CHANNELS - 1))
  small = jnp.zeros((2, 8, 8, 64))  # 2·2·8·8·64·9·64 FLOPs < ONEDNN_MIN_FLOPS
  uses_onednn = lambda x, w, impl: 'jaxsr_onednn_conv' in _traced(x, w, impl)
  assert uses_onednn(x, w, 'auto')
  assert not uses_onednn(x, narrow, 'auto')  # measured faster in XLA
  assert not uses_onednn(small, w, 'auto')
  assert uses_onednn(x, narrow, 'onednn') and uses_onednn(small, w, 'onednn')
  assert not uses_onednn(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), 'onednn')
  for impl in ('chunked', 'xla'):
    assert not uses_onednn(x, w, impl)
  # The kernel gradient by groups of images: one convolution per group.
  assert _traced(x, w, 'chunked').count('conv_general_dilated') > _traced(x, w, 'xla').count(
      'conv_general_dilated') + 1
  with pytest.raises(ValueError, match="unknown convolution implementation 'mkl'"):
    conv.conv_factory('mkl')


def test_without_onednn_the_convolutions_stay_xla(monkeypatch, tmp_path):
  x, w = jnp.zeros((2, 8, 8, 4)), jnp.zeros((3, 3, 4, 4))
  monkeypatch.setattr(onednn_conv, '_state', {})
  monkeypatch.setenv('JAXSR_ONEDNN', '0')
  assert not onednn_conv.available()
  assert onednn_conv.unavailable_reason() == 'JAXSR_ONEDNN=0'
  with pytest.raises(RuntimeError, match='oneDNN convolutions unavailable: JAXSR_ONEDNN=0'):
    conv.conv_factory('onednn')
  assert 'jaxsr_onednn' not in _traced(x, w, 'auto')
  # A failed build: the reason names the source and the compiler's error.
  monkeypatch.setattr(onednn_conv, '_state', {})
  monkeypatch.delenv('JAXSR_ONEDNN')
  monkeypatch.setattr(onednn_conv, '_onednn_paths', lambda: (tmp_path, tmp_path))
  monkeypatch.setattr(onednn_conv, 'cache_dir', lambda: tmp_path / 'cache')
  assert not onednn_conv.available()
  assert 'building onednn_conv.cc failed' in onednn_conv.unavailable_reason()
  assert not list((tmp_path / 'cache').glob('*.so'))  # no partial library left
  assert 'jaxsr_onednn' not in _traced(x, w, 'auto')


def test_missing_onednn_names_the_packages(monkeypatch):
  monkeypatch.setattr(onednn_conv, '_distribution_file', lambda dist, name: None)
  reason = onednn_conv._onednn_paths()
  assert 'pip install onednn-cpu-gomp==' in reason and '[onednn]' not in reason


@pytest.mark.parametrize('kernel,stride', [(14, 2), (16, 4), (3, 2)])
def test_subpixel_conv_transpose_is_nn_conv_transpose(kernel, stride):
  """Same parameters, values, gradients and tangents in float64 (EEDS's upsampling)."""
  from jaxsr.models import layers
  pad = layers.transposed_conv_padding(kernel, stride)  # (3, 2): asymmetric
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    args = (3, (kernel, kernel))
    kwargs = dict(strides=(stride, stride), padding=(pad, pad), dtype=jnp.float64)
    ref = nn.ConvTranspose(*args, param_dtype=jnp.float64, **kwargs)
    new = conv_transpose.SubPixelConvTranspose(*args, **kwargs)
    x = jnp.asarray(rng.standard_normal((2, 7, 6, 4)))
    shapes = jax.eval_shape(ref.init, jax.random.key(0), x)
    shape_of = lambda tree: jax.tree.map(lambda a: a.shape, tree)
    assert shape_of(jax.eval_shape(new.init, jax.random.key(0), x)) == shape_of(shapes)
    params = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), shapes)

    def value_and_grads(module):
      f = lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
      return jax.jit(lambda p, x: (module.apply(p, x), jax.grad(f, argnums=(0, 1))(p, x),
                                   jax.jvp(f, (p, x), (p, x))[1]))(params, x)

    got, want = value_and_grads(new), value_and_grads(ref)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, atol=1e-10), got, want)
    with pytest.raises(ValueError, match='exact s× output'):
      conv_transpose.SubPixelConvTranspose(3, (kernel, kernel), (stride, stride),
                                           ((0, 0), (0, 0))).init(jax.random.key(0), x)
