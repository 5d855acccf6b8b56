"""MATLAB bicubic imresize: against the definition, invariants, and NumPy vs JAX."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr.protocol import imresize as ir


def keys_cubic(t: float) -> float:
  """Keys (1981), a = -0.5, written out independently of the module."""
  t = abs(t)
  if t <= 1:
    return 1.5 * t**3 - 2.5 * t**2 + 1
  if t <= 2:
    return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
  return 0.0


def matlab_resize_1d(v: np.ndarray, scale: float, out_len: int) -> np.ndarray:
  """Direct loop over MATLAB's definition: centre mapping, symmetric borders."""
  n = len(v)
  width = 4.0 / scale if scale < 1 else 4.0
  kernel = (lambda t: scale * keys_cubic(scale * t)) if scale < 1 else keys_cubic
  out = np.zeros(out_len)
  for x in range(1, out_len + 1):
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = math.floor(u - width / 2)
    taps = range(left, left + math.ceil(width) + 2)
    w = np.array([kernel(u - j) for j in taps])
    idx = []
    for j in taps:  # 1-based symmetric reflection: 0 -> 1, -1 -> 2, n+1 -> n
      while j < 1 or j > n:
        j = 1 - j if j < 1 else 2 * n + 1 - j
      idx.append(j - 1)
    out[x - 1] = np.dot(w / w.sum(), v[idx])
  return out


@pytest.mark.parametrize('n,scale', [(7, 2.0), (9, 3.0), (8, 4.0), (12, 0.5),
                                     (10, 1 / 3), (13, 0.30), (11, 1 / 0.3)])
def test_one_dimension_matches_definition(n, scale):
  v = np.random.default_rng(0).uniform(0, 1, n)
  out_len = math.ceil(n * scale)
  expected = matlab_resize_1d(v, scale, out_len)
  got = ir.imresize(v[:, None], output_size=None, scale=(scale, 1.0))[:, 0]
  np.testing.assert_allclose(got, expected, atol=1e-12)


def test_hand_computed_upscale_value():
  # x2 of [0, 1, 2, 3, 4]: output pixel 3 (1-based) samples u = 1.75;
  # taps j = -1..4 -> mirrored [1, 0, 0, 1, 2, 3] with cubic(u - j).
  v = np.arange(5.0)
  w = np.array([keys_cubic(1.75 - j) for j in range(-1, 5)])
  values = np.array([1, 0, 0, 1, 2, 3], float)
  expected = np.dot(w / w.sum(), values)
  got = ir.imresize(v[None, :], 2.0)[0]
  assert got[2] == pytest.approx(expected, abs=1e-12)
  # By hand: weights 0, -0.0234375, 0.2265625, 0.8671875, -0.0703125, 0 on
  # values 1, 0, 0, 1, 2, 3.
  assert got[2] == pytest.approx(0.8671875 - 2 * 0.0703125, abs=1e-12)


def test_constant_and_linear_are_preserved():
  const = np.full((9, 11), 0.37)
  np.testing.assert_allclose(ir.imresize(const, 3.0), 0.37, atol=1e-12)
  np.testing.assert_allclose(ir.imresize(const, 0.5), 0.37, atol=1e-12)
  ramp = np.tile(np.arange(20.0), (4, 1))
  up = ir.imresize(ramp, 2.0)
  # Cubic convolution reproduces linear functions away from the borders.
  centres = (np.arange(1, 41) - 0.5) / 2 + 0.5 - 1
  np.testing.assert_allclose(up[0, 4:-4], centres[4:-4], atol=1e-12)


def test_output_sizes_and_dimension_order():
  img = np.random.default_rng(1).uniform(size=(17, 23, 3))
  assert ir.imresize(img, 0.30).shape == (math.ceil(17 * .3), math.ceil(23 * .3), 3)
  assert ir.imresize(img, output_size=(40, 50)).shape == (40, 50, 3)
  # Equal scales: rows (height) first, i.e. separable passes in that order.
  rows_first = ir.imresize(ir.imresize(img, scale=(0.5, 1.0)), scale=(1.0, 0.5))
  np.testing.assert_allclose(ir.imresize(img, 0.5), rows_first, atol=1e-12)


def test_uint8_rounds_after_each_pass():
  img = np.random.default_rng(2).integers(0, 256, (15, 14, 3), dtype=np.uint8)
  got = ir.imresize(img, 1 / 3)
  assert got.dtype == np.uint8
  first = np.clip(np.round(ir.imresize(img.astype(float), scale=(1 / 3, 1.0))), 0, 255)
  second = np.clip(np.round(ir.imresize(first, scale=(1.0, 1 / 3))), 0, 255)
  np.testing.assert_array_equal(got, second.astype(np.uint8))


def test_bad_arguments():
  with pytest.raises(ValueError, match='exactly one'):
    ir.imresize(np.zeros((4, 4)))
  with pytest.raises(ValueError, match='positive'):
    ir.imresize(np.zeros((4, 4)), -2)
  with pytest.raises(ValueError, match=r'\(H, W\)'):
    ir.imresize(np.zeros(4), 2)


@pytest.mark.parametrize('scale,size', [(2.0, None), (3.0, None), (0.25, None),
                                        (None, (29, 31))])
def test_jax_matches_numpy(scale, size):
  img = np.random.default_rng(3).uniform(size=(2, 13, 17, 3))
  expected = np.stack([ir.imresize(x, scale, output_size=size) for x in img])
  got = jax.jit(lambda x: ir.imresize_jax(x, scale, output_size=size))(
      jnp.asarray(img, jnp.float32))
  np.testing.assert_allclose(np.asarray(got), expected, atol=2e-6)
