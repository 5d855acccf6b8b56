"""Tests of the model zoo: registry contract, parameter counts, numerics."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr import models
from jaxsr.protocol.imresize import imresize
from jaxsr.protocol.imresize import imresize_jax
from jaxsr.models import backend
from jaxsr.models import csc_decomp
from jaxsr.models import layers
from jaxsr.models import sizing

# Channels=1 parameter counts per scale. A registered model missing here
# fails the registry walk: add it with its count checked against the paper.
GOLDEN_PARAMS = {
    'bicubic': {2: 0, 3: 0, 4: 0},
    'srcnn': {2: 8_129, 3: 8_129, 4: 8_129},
    'srcnn_955': {2: 57_281, 3: 57_281, 4: 57_281},
    'fsrcnn': {2: 12_809, 3: 12_809, 4: 12_809},
    'espcn': {2: 21_284, 3: 22_729, 4: 24_752},
    'vdsr': {2: 665_921, 3: 665_921, 4: 665_921},
    'edsr_baseline': {2: 1_367_553, 3: 1_552_193, 4: 1_515_265},
    'edsr': {2: 40_720_385, 3: 43_670_785, 4: 43_080_705},
    'csc_decomp': {2: 8_129, 3: 8_129, 4: 8_129},
    'eed': {2: 248_601, 3: 249_065, 4: 249_561},
    'ees': {2: 6_521, 3: 7_449, 4: 8_441},
    'eeds': {2: 255_122, 3: 256_514, 4: 258_002},
    'dcnn': {2: 244_881, 3: 244_881, 4: 244_881},
    'dscnn': {2: 253_010, 3: 253_010, 4: 253_010},
    # 1→32, six 32→32 and 32→1 3×3 convs: SRCNN 9-5-5's 17×17 window, ~its 57,281.
    'dcnn_plain': {2: 56_097, 3: 56_097, 4: 56_097},
    'dscnn_plain': {2: 64_226, 3: 64_226, 4: 64_226},  # + SRCNN 9-1-5 (8,129)
}
# The seed experiment's HR -> LR factor is 0.30: models on the bicubic input
# must upscale by the real factor 1 / 0.30.
REAL_SCALE = 1 / 0.30
LR_HW = (17, 23)
# Too slow for the 2-core budget; their counts are still checked.
SKIP_APPLY = {('edsr', 3), ('edsr', 4)}


def _key():
  return jax.random.key(0)


def _lr(channels=1, hw=LR_HW, seed=0):
  rng = np.random.RandomState(seed)
  return jnp.asarray(rng.rand(1, *hw, channels), jnp.float32)


def _count(params) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))


def _registry_cases():
  for name in models.list_models():
    scales = models.model_info(name).scales
    for scale in ((2, 3, 4) if scales == 'any' else scales):
      yield name, scale


@pytest.mark.parametrize('name,scale', list(_registry_cases()))
def test_registry_walk(name, scale):
  if scale not in GOLDEN_PARAMS.get(name, {}):
    pytest.fail(f'no golden parameter count for {name} ×{scale}: add it to '
                f'GOLDEN_PARAMS')
  model = models.get_model(name, scale=scale)
  lr = _lr()
  expected_hw = (round(scale * LR_HW[0]), round(scale * LR_HW[1]))
  shapes = jax.eval_shape(model.init, _key(), lr)
  assert _count(shapes) == GOLDEN_PARAMS[name][scale]
  out = jax.eval_shape(model.apply, shapes, lr)
  assert out.shape == (1, *expected_hw, 1) and out.dtype == jnp.float32
  if (name, scale) in SKIP_APPLY:
    return
  params = model.init(_key(), lr)
  assert _count(params) == GOLDEN_PARAMS[name][scale]
  sr = model.apply(params, lr)
  assert sr.shape == (1, *expected_hw, 1)
  assert bool(jnp.all(jnp.isfinite(sr)))


def test_golden_table_has_no_stale_entries():
  assert sorted(GOLDEN_PARAMS) == sorted(models.list_models())


def test_registered_names():
  required = {'bicubic', 'srcnn', 'srcnn_955', 'fsrcnn', 'espcn', 'vdsr',
              'edsr_baseline', 'edsr', 'csc_decomp', 'eed', 'ees', 'eeds',
              'dcnn', 'dscnn'}
  assert required <= set(models.list_models())
  assert models.get_model('srcnn', scale=2).kernel_sizes == (9, 1, 5)
  assert models.get_model('srcnn', scale=2,
                          kernel_sizes=(9, 5, 5)).kernel_sizes == (9, 5, 5)


def test_model_info():
  info = models.model_info('vdsr')
  assert info.works_on_bicubic and info.scales == 'any'
  assert 'Kim' in info.paper
  info = models.model_info('eeds')
  assert not info.works_on_bicubic and info.scales == (2, 3, 4)
  with pytest.raises(dataclasses.FrozenInstanceError):
    info.name = 'x'


@pytest.mark.parametrize('name', [n for n in models.list_models()
                                  if models.model_info(n).works_on_bicubic])
def test_bicubic_input_models_take_any_scale(name):
  model = models.get_model(name, scale=REAL_SCALE)
  lr = _lr()
  shapes = jax.eval_shape(model.init, _key(), lr)
  default = jax.eval_shape(model.apply, shapes, lr)
  assert default.shape[1:3] == (round(REAL_SCALE * 17), round(REAL_SCALE * 23))
  explicit = jax.eval_shape(lambda p, x: model.apply(p, x, (56, 77)), shapes,
                            lr)
  assert explicit.shape == (1, 56, 77, 1)


def test_real_scale_apply_and_rgb():
  model = models.get_model('srcnn', scale=REAL_SCALE, channels=3)
  lr = _lr(channels=3)
  params = model.init(_key(), lr)
  sr = model.apply(params, lr, output_size=(57, 76))
  assert sr.shape == (1, 57, 76, 3) and bool(jnp.all(jnp.isfinite(sr)))


def test_edsr_rgb_counts_match_paper():
  # Lim et al.: 1.37M (baseline ×2) and 43.1M (EDSR ×4) on RGB.
  for name, scale, expected in [('edsr_baseline', 2, 1_369_859),
                                ('edsr', 4, 43_089_923)]:
    model = models.get_model(name, scale=scale, channels=3)
    shapes = jax.eval_shape(model.init, _key(), _lr(channels=3))
    assert _count(shapes) == expected


def test_bicubic_model_equals_imresize():
  lr = _lr(seed=1)
  model = models.get_model('bicubic', scale=3)
  params = model.init(_key(), lr)
  assert _count(params) == 0
  sr = model.apply(params, lr)
  np.testing.assert_allclose(sr, imresize_jax(lr, 3), atol=1e-6)
  np.testing.assert_allclose(sr[0], imresize(np.asarray(lr[0], np.float64), 3),
                             atol=1e-5)


def test_vdsr_is_bicubic_plus_residual():
  model = models.get_model('vdsr', scale=2)
  lr = _lr()
  shapes = jax.eval_shape(model.init, _key(), lr)
  zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  np.testing.assert_allclose(model.apply(zeros, lr),
                             imresize_jax(lr, output_size=(34, 46)), atol=1e-6)


def test_pixel_shuffle_matches_reference():
  b, h, w, c, r = 2, 3, 5, 2, 3
  x = np.random.RandomState(0).rand(b, h, w, c * r * r).astype(np.float32)
  expected = np.zeros((b, h * r, w * r, c), np.float32)
  for y in range(h):
    for xx in range(w):
      for ch in range(c):
        for i in range(r):
          for j in range(r):
            expected[:, y * r + i, xx * r + j, ch] = x[:, y, xx,
                                                       ch * r * r + i * r + j]
  np.testing.assert_array_equal(layers.pixel_shuffle(jnp.asarray(x), r),
                                expected)


def test_unpool_places_values_top_left():
  x = jnp.arange(1, 13, dtype=jnp.float32).reshape(1, 3, 4, 1)
  out = np.asarray(layers.unpool(x, 3))
  assert out.shape == (1, 9, 12, 1)
  np.testing.assert_array_equal(out[:, ::3, ::3], x)
  mask = np.ones_like(out, bool)
  mask[:, ::3, ::3] = False
  assert not out[mask].any()


@pytest.mark.parametrize('stride,kernel', [(2, 14), (3, 15), (4, 16), (2, 9)])
def test_deconv_output_size_and_centring(stride, kernel):
  up = layers.LearnedUpsampling(1, stride, kernel, 'deconv')
  x = jnp.zeros((1, 5, 7, 1)).at[0, 2, 3, 0].set(1.0)
  params = up.init(_key(), x)
  # A symmetric (separable tent) kernel: the response's centroid shows where
  # the kernel is centred relative to the LR pixel.
  tent = 1.0 + kernel / 2 - np.abs(np.arange(kernel) - (kernel - 1) / 2)
  params = {'params': {'deconv': {
      'kernel': jnp.asarray(np.outer(tent, tent)[:, :, None, None],
                            jnp.float32),
      'bias': jnp.zeros((1,))}}}
  out = np.asarray(up.apply(params, x))[0, :, :, 0]
  assert out.shape == (5 * stride, 7 * stride)
  rows, cols = np.indices(out.shape)
  centre = ((rows * out).sum() / out.sum(), (cols * out).sum() / out.sum())
  expected = (2 * stride + (stride - 1) / 2, 3 * stride + (stride - 1) / 2)
  # Exact when kernel + stride is even; half a pixel off otherwise.
  tol = 1e-4 if (kernel + stride) % 2 == 0 else 0.5 + 1e-4
  np.testing.assert_allclose(centre, expected, atol=tol)


def test_eeds_unpool_variant():
  model = models.get_model('eeds', scale=3, upsampling='unpool')
  lr = _lr(hw=(7, 9))
  params = model.init(_key(), lr)
  assert _count(params) == GOLDEN_PARAMS['eeds'][3]
  sr = model.apply(params, lr)
  assert sr.shape == (1, 21, 27, 1) and bool(jnp.all(jnp.isfinite(sr)))


def _circular(image, kernel, adjoint=False):
  """Circular convolution, kernel centre tap ((k-1)//2) at the origin.

  adjoint=True applies the transpose (correlation: offsets negated).
  """
  out = np.zeros_like(image)
  ky, kx = kernel.shape
  sign = -1 if adjoint else 1
  for a in range(ky):
    for b in range(kx):
      shift = (sign * (a - (ky - 1) // 2), sign * (b - (kx - 1) // 2))
      out += kernel[a, b] * np.roll(image, shift, axis=(0, 1))
  return out


def test_csc_decomposition():
  phi_h, phi_v = 10.0, 3.0
  y = _lr(hw=(11, 14), seed=2)
  smooth, residual = csc_decomp.decompose(y, phi_h, phi_v)
  np.testing.assert_allclose(smooth + residual, y, atol=1e-6)
  z = np.asarray(csc_decomp.solve_smooth_code(y, phi_h, phi_v), np.float64)
  z, y64 = z[0, :, :, 0], np.asarray(y, np.float64)[0, :, :, 0]
  f, h, v = (csc_decomp.MEAN_FILTER, csc_decomp.HORIZONTAL_DIFF,
             csc_decomp.VERTICAL_DIFF)
  # Normal equations: (FᵀF + Φ HᵀH + φ VᵀV) z = Fᵀ y.
  normal = lambda k: _circular(_circular(z, k), k, adjoint=True)
  lhs = normal(f) + phi_h * normal(h) + phi_v * normal(v)
  np.testing.assert_allclose(lhs, _circular(y64, f, adjoint=True), atol=1e-5)
  np.testing.assert_allclose(smooth[0, :, :, 0], _circular(z, f), atol=1e-5)
  # The smooth part really is smoother than the input.
  smooth_tv = np.abs(np.diff(smooth[0, :, :, 0], axis=1)).mean()
  assert smooth_tv < 0.5 * np.abs(np.diff(y64, axis=1)).mean()


def test_csc_model_without_cnn_is_bicubic():
  model = models.get_model('csc_decomp', scale=2)
  lr = _lr()
  shapes = jax.eval_shape(model.init, _key(), lr)
  zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  # Bicubic is linear: bicubic(S) + 0 differs from bicubic(Y) by bicubic(R).
  _, residual = csc_decomp.decompose(lr, 10.0, 10.0)
  np.testing.assert_allclose(
      model.apply(zeros, lr) + imresize_jax(residual, output_size=(34, 46)),
      imresize_jax(lr, output_size=(34, 46)), atol=1e-5)


def test_mixed_precision_dtype_field():
  model = models.get_model('srcnn', scale=2, dtype=jnp.bfloat16)
  lr = _lr()
  params = model.init(_key(), lr)
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
  sr = model.apply(params, lr)
  assert sr.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(sr)))


def test_every_module_has_contract_fields():
  for name in models.list_models():
    model = models.get_model(name, scale=2)
    assert isinstance(model, sizing.SRModel)
    family = (sizing.BicubicInputModel if models.model_info(name).works_on_bicubic
              else sizing.LearnedUpsamplingModel)
    assert isinstance(model, family)
    assert isinstance(model.scale, float) and model.channels == 1
    assert 'dtype' in models.config_fields(name)
    assert not set(backend.XLA_FACTORIES) & set(models.config_fields(name))
    assert model == models.get_model(name, scale=2)  # the same factories


# Smaller than registered where compiling three implementations would be slow.
FAST_PATH_OVERRIDES = {'edsr': {'num_blocks': 2}, 'edsr_baseline': {'num_blocks': 2},
                       'vdsr': {'depth': 8}}


@pytest.mark.parametrize('name', models.list_models())
def test_fast_path_on_and_off(name, monkeypatch):
  """The CPU fast path (oneDNN, and the chunked kernel gradient) against
  Flax's own layers: the same parameter tree, the same outputs (1e-5) and
  forward-mode derivatives (jax.jvp; custom_vjp would fail here)."""
  conv = pytest.importorskip('jaxsr.cpu.conv')
  from jaxsr.cpu import onednn_conv
  monkeypatch.setattr(conv, 'CHUNK_BYTES', 1)  # chunks of one image
  lr = jnp.stack([_lr(seed=0, hw=(9, 10))[0], _lr(seed=1, hw=(9, 10))[0]])
  kwargs = dict(scale=2, **FAST_PATH_OVERRIDES.get(name, {}))
  xla = models.get_model(name, **kwargs, **backend.XLA_FACTORIES)
  params = xla.init(_key(), lr)
  tangents = jax.tree.map(lambda a: jnp.cos(jnp.arange(a.size, dtype=a.dtype)).reshape(a.shape),
                          (params, lr))

  def outputs(model):
    return jax.jit(lambda p, x: jax.jvp(model.apply, (p, x), tangents))(params, lr)

  want = outputs(xla)
  scale = max(float(jnp.abs(want[1]).max()), 1.0)
  for impl in ['chunked'] + ['onednn'] * onednn_conv.available():
    fast = models.get_model(name, **kwargs, **conv.factories(impl))
    assert fast != xla
    assert (jax.tree.map(jnp.shape, jax.eval_shape(fast.init, _key(), lr))
            == jax.tree.map(jnp.shape, params))
    got = outputs(fast)
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5 * scale)


def test_unknown_name_lists_valid_names():
  with pytest.raises(ValueError, match='valid names.*vdsr'):
    models.get_model('vdsrr', scale=2)
  with pytest.raises(ValueError, match='valid names'):
    models.model_info('nope')


@pytest.mark.parametrize('name,scale', [('espcn', 2.5), ('edsr', 8),
                                        ('eeds', 1.5), ('fsrcnn', '2')])
def test_unsupported_scale_lists_valid_scales(name, scale):
  with pytest.raises(ValueError, match=r'valid scales: \[2, 3, 4\]'):
    models.get_model(name, scale=scale)


@pytest.mark.parametrize('scale', [0, -2.0, math.inf, None])
def test_bad_scale_for_bicubic_input_model(scale):
  with pytest.raises(ValueError, match='positive real'):
    models.get_model('vdsr', scale=scale)


@pytest.mark.parametrize('channels', [0, 2, 4])
def test_wrong_channels(channels):
  with pytest.raises(ValueError, match=r'channels must be 1 \(Y\) or 3'):
    models.get_model('srcnn', scale=2, channels=channels)


def test_input_channels_must_match_model():
  model = models.get_model('espcn', scale=2, channels=3)
  with pytest.raises(ValueError, match='channels=3.*1 channels'):
    jax.eval_shape(model.init, _key(), _lr(channels=1))


def test_unknown_override_lists_fields():
  with pytest.raises(ValueError, match=r"valid fields: .*'depth'"):
    models.get_model('vdsr', scale=2, num_layers=10)


def test_fixed_scale_model_rejects_other_output_size():
  model = models.get_model('fsrcnn', scale=2)
  lr = _lr()
  shapes = jax.eval_shape(model.init, _key(), lr)
  with pytest.raises(ValueError, match=r'only produces output_size=\(34, 46\)'):
    jax.eval_shape(lambda p, x: model.apply(p, x, (35, 46)), shapes, lr)
  ok = jax.eval_shape(lambda p, x: model.apply(p, x, (34, 46)), shapes, lr)
  assert ok.shape == (1, 34, 46, 1)


def test_unknown_upsampling_method():
  model = models.get_model('eed', scale=2, upsampling='bilinear')
  with pytest.raises(ValueError, match=r"valid: \['deconv', 'unpool'\]"):
    jax.eval_shape(model.init, _key(), _lr())


def test_dcnn_plain_is_a_plain_chain_and_refuses_unknown_deep_nets():
  model = models.get_model('dcnn_plain', scale=2)
  params = model.init(_key(), _lr())
  deep = params['params']['deep']
  assert sorted(deep) == [f'conv{i}' for i in range(8)]
  assert [deep[f'conv{i}']['kernel'].shape for i in (0, 1, 7)] == [
      (3, 3, 1, 32), (3, 3, 32, 32), (3, 3, 32, 1)]
  with pytest.raises(ValueError, match=r"unknown deep 'wide'; valid: \['residual', 'plain'\]"):
    models.get_model('dcnn', scale=2, deep='wide').init(_key(), _lr())
