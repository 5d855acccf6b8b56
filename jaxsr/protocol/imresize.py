"""MATLAB-compatible bicubic `imresize`, in NumPy (float64 reference) and JAX.

The SR literature makes its LR images and bicubic baselines with MATLAB's
`imresize(img, scale, 'bicubic')`; numbers only compare with papers if we
reproduce it exactly. What MATLAB does, and what this module does:

* Keys' cubic kernel with a = -0.5, support [-2, 2].
* When downscaling (scale < 1) the kernel is stretched by 1/scale and its
  height scaled by `scale` (antialiasing), so it covers 4/scale input pixels.
* Output pixel x (1-based) samples the input at u = x/scale + 0.5·(1 - 1/scale)
  (pixel centres aligned, not corners).
* Out-of-range taps are mirrored symmetrically (…, 2, 1, 1, 2, …, n, n, …).
* Taps are normalised to sum to 1; taps whose weight is zero for every output
  pixel are dropped (only affects speed).
* One dimension at a time: the dimension with the smaller scale first, rows
  (height) first when the scales are equal.
* uint8 input: each one-dimensional pass is rounded and clipped back to uint8
  before the next pass, as MATLAB's imresizemex does; the output is uint8.
* With a scale factor, the output size is ceil(scale · input size) and the
  kernel uses that scale (not out/in); with an explicit output size the scale
  of each dimension is out/in.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

_KERNEL_WIDTH = 4.0


def cubic(x: np.ndarray) -> np.ndarray:
  """Keys' cubic convolution kernel with a = -0.5."""
  absx = np.abs(x)
  absx2 = absx**2
  absx3 = absx**3
  return ((1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) +
          (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) *
          ((absx > 1) & (absx <= 2)))


def contributions(in_length: int, out_length: int, scale: float,
                  antialiasing: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Per-output-pixel weights and 0-based input indices, as MATLAB computes.

  Returns:
    weights: (out_length, P) float64, rows summing to 1.
    indices: (out_length, P) int, already mirrored into [0, in_length).
  """
  if in_length < 1 or out_length < 1:
    raise ValueError(f'imresize: lengths must be positive, got in={in_length}, '
                     f'out={out_length}')
  kernel_width = _KERNEL_WIDTH
  if scale < 1 and antialiasing:
    kernel = lambda v: scale * cubic(scale * v)
    kernel_width = kernel_width / scale
  else:
    kernel = cubic
  x = np.arange(1, out_length + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1 - 1 / scale)
  left = np.floor(u - kernel_width / 2)
  taps = int(math.ceil(kernel_width)) + 2
  indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
  weights = kernel(u[:, None] - indices)
  weights = weights / weights.sum(axis=1, keepdims=True)
  mirror = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])
  indices = mirror[np.mod(indices.astype(np.int64) - 1, mirror.size)]
  keep = np.any(weights != 0, axis=0)
  return weights[:, keep], indices[:, keep]


def resize_matrix(in_length: int, out_length: int, scale: float,
                  antialiasing: bool = True) -> np.ndarray:
  """The (out_length, in_length) matrix that applies one 1-D pass."""
  weights, indices = contributions(in_length, out_length, scale, antialiasing)
  matrix = np.zeros((out_length, in_length), np.float64)
  rows = np.repeat(np.arange(out_length), weights.shape[1])
  np.add.at(matrix, (rows, indices.ravel()), weights.ravel())
  return matrix


def output_plan(in_hw: Sequence[int], scale: float | Sequence[float] | None,
                output_size: Sequence[int] | None
                ) -> tuple[tuple[int, int], tuple[float, float], tuple[int, ...]]:
  """MATLAB's (output size, per-dimension scale, dimension order)."""
  if (scale is None) == (output_size is None):
    raise ValueError('imresize: give exactly one of scale and output_size')
  if output_size is not None:
    out_hw = tuple(int(s) for s in output_size)
    if len(out_hw) != 2 or min(out_hw) < 1:
      raise ValueError(f'imresize: output_size must be two positive ints, '
                       f'got {output_size}')
    scales = (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1])
  else:
    scales = tuple(float(s) for s in np.broadcast_to(scale, (2,)))
    if min(scales) <= 0:
      raise ValueError(f'imresize: scale must be positive, got {scale}')
    out_hw = tuple(int(math.ceil(s * n)) for s, n in zip(scales, in_hw))
  order = (0, 1) if scales[0] <= scales[1] else (1, 0)
  return out_hw, scales, order


def imresize(img: np.ndarray, scale: float | Sequence[float] | None = None, *,
             output_size: Sequence[int] | None = None,
             antialiasing: bool = True) -> np.ndarray:
  """NumPy reference: MATLAB `imresize(img, scale, 'bicubic')`.

  Args:
    img: (H, W) or (H, W, C). uint8 input gives uint8 output rounded after each
      1-D pass like MATLAB; any float input is computed and returned in float64.
    scale: a factor (or one per dimension), e.g. 0.5 or 1/3 or 0.30.
    output_size: (H_out, W_out) instead of a scale.
    antialiasing: widen the kernel when downscaling (MATLAB's default).
  """
  img = np.asarray(img)
  if img.ndim not in (2, 3):
    raise ValueError(f'imresize: expected (H, W) or (H, W, C), got {img.shape}')
  is_uint8 = img.dtype == np.uint8
  out_hw, scales, order = output_plan(img.shape[:2], scale, output_size)
  out = img.astype(np.float64)
  for dim in order:
    weights, indices = contributions(out.shape[dim], out_hw[dim], scales[dim],
                                     antialiasing)
    moved = np.moveaxis(out, dim, 0)
    moved = np.einsum('op,op...->o...', weights, moved[indices])
    out = np.moveaxis(moved, 0, dim)
    if is_uint8:
      out = np.clip(np.round(out), 0, 255)
  return out.astype(np.uint8) if is_uint8 else out


def imresize_jax(x, scale: float | Sequence[float] | None = None, *,
                 output_size: Sequence[int] | None = None,
                 antialiasing: bool = True):
  """jit-able MATLAB bicubic resize of a float batch (B, H, W, C).

  Shapes are static: the 1-D resize matrices are built in NumPy at trace time
  and applied as two matmuls at HIGHEST precision (TPUs would otherwise use
  bfloat16 passes, which costs PSNR). No uint8 rounding between passes: this is
  the float path used inside models.
  """
  import jax.numpy as jnp
  from jax import lax
  if x.ndim != 4:
    raise ValueError(f'imresize_jax: expected (B, H, W, C), got {x.shape}')
  out_hw, scales, order = output_plan(x.shape[1:3], scale, output_size)
  for dim in order:
    in_length = x.shape[1 + dim]
    matrix = jnp.asarray(
        resize_matrix(in_length, out_hw[dim], scales[dim], antialiasing),
        dtype=x.dtype)
    spec = 'oh,bhwc->bowc' if dim == 0 else 'ow,bhwc->bhoc'
    x = jnp.einsum(spec, matrix, x, precision=lax.Precision.HIGHEST)
  return x
