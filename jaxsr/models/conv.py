"""nn.Conv with a faster weight gradient on the CPU.

XLA computes the gradient of a convolution's kernel as one more
convolution, of the layer input (batch as features) with the output
gradient as an H×W "kernel". On the CPU (XLA:CPU's YNNPACK convolutions,
jaxlib 0.10) that convolution runs at a fraction of the forward pass's
speed once a batch of 64-channel H×W maps is large (16×40×40×64: 5-10×
slower than the forward pass, see benchmarks/RESULTS.md), while the same sum
taken over small groups of images is fast. `conv_general_dilated` computes
the kernel gradient as a sum over groups of `weight_grad_chunk` images,
each group's map at most ~256 KB, for 2-D stride-1 undilated convolutions
with k > 1 and at least 32 input and output channels (where it measured
faster), when the default backend is the CPU (GPUs' and TPUs' libraries
have fast kernel gradients; a batch sharded over several devices would be
cut across them); every other convolution, the forward pass and the input
gradient are XLA's own. The result is the same sum, in a different order.

`Conv` is nn.Conv with it: same parameters, names and forward pass.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
from jax import lax

_NHWC = ('NHWC', 'HWIO', 'NHWC')
# Bytes of one group's input maps for the kernel gradient (measured on a
# 2-core AMD EPYC: 16×40×40×64 fastest per image, 16×20×20×64 by pairs).
CHUNK_BYTES = 256 * 1024
MIN_CHANNELS = 32


def weight_grad_chunk(shape, itemsize: int = 4) -> int:
  """Images per group for the kernel gradient of an NHWC input of `shape`."""
  per_image = shape[1] * shape[2] * shape[3] * itemsize
  return max(1, min(shape[0], CHUNK_BYTES // max(per_image, 1)))


def _conv(x, w, pads):
  return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _chunked_conv(x, w, pads, chunk):
  return _conv(x, w, pads)


def _chunked_fwd(x, w, pads, chunk):
  return _conv(x, w, pads), (x, w)


def _chunked_bwd(pads, chunk, residuals, dy):
  x, w = residuals
  dx = jax.vjp(lambda x: _conv(x, w, pads), x)[1](dy)[0]
  dw = None
  for i in range(0, x.shape[0], chunk):
    part = jax.vjp(lambda w: _conv(x[i:i + chunk], w, pads), w)[1](dy[i:i + chunk])[0]
    dw = part if dw is None else dw + part
  return dx, dw


_chunked_conv.defvjp(_chunked_fwd, _chunked_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, precision=None, **kwargs):
  """lax.conv_general_dilated, with the chunked kernel gradient where it helps."""
  fallback = functools.partial(
      lax.conv_general_dilated, lhs, rhs, window_strides, padding,
      lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
      precision=precision, **kwargs)
  if (jax.default_backend() != 'cpu' or lhs.ndim != 4 or kwargs
      or precision is not None or feature_group_count != 1
      or tuple(window_strides) != (1, 1)
      or any(d is not None and tuple(d) != (1, 1) for d in (lhs_dilation, rhs_dilation))
      or dimension_numbers != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
      or rhs.shape[0] * rhs.shape[1] == 1
      or min(rhs.shape[2], rhs.shape[3]) < MIN_CHANNELS):
    return fallback()
  if isinstance(padding, str):
    if padding != 'SAME':
      return fallback()
    padding = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in rhs.shape[:2]]
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  chunk = weight_grad_chunk(lhs.shape, lhs.dtype.itemsize)
  if chunk >= lhs.shape[0]:
    return fallback()
  return _chunked_conv(lhs, rhs, pads, chunk)


Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)
