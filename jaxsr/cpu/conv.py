"""Faster convolutions on XLA:CPU, as a drop-in `conv_general_dilated`.

`conv_general_dilated(..., implementation=...)` is lax.conv_general_dilated
(same arguments, same function) that runs 2-D stride-1 undilated float32
NHWC convolutions by oneDNN (jaxsr.cpu.onednn_conv: the library PyTorch's
CPU convolutions use, faster than XLA:CPU's on SR training shapes), or
keeps XLA's convolution with a faster kernel gradient. nn.Conv takes it as
its `conv_general_dilated` field: `conv_factory(implementation)` is nn.Conv
with it, the same parameters and initialisers.

Implementations:
* 'onednn': every convolution that oneDNN can run.
* 'auto': oneDNN except where XLA measured faster (narrow outputs, tiny
  convolutions: ONEDNN_MIN_*), and only on one device: XLA cannot partition
  a custom call over a batch sharded across devices (it would gather it).
  jaxsr.models.backend asks for 'auto' on a one-device CPU run, 'chunked'
  on several.
* 'chunked': XLA's convolution, except for the kernel gradient of wide ones.
  XLA computes it as one more convolution, of the layer input (batch as
  features) with the output gradient as an H×W "kernel", which XLA:CPU runs
  at a fraction of the forward pass's speed for a batch of 64-channel maps,
  while the same sum over small groups of images is fast. So the kernel
  gradient is summed over groups of `weight_grad_chunk` images (each group's
  maps ~CHUNK_BYTES) for k > 1 and at least MIN_CHANNELS input and output
  channels. It is written as a custom_jvp (the grouped convolution is the
  kernel tangent's), so forward-mode autodiff works too.
* 'xla': lax.conv_general_dilated as it is.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
from jax import lax
from jax.custom_derivatives import SymbolicZero
import jax.numpy as jnp

from jaxsr.cpu import conv_transpose
from jaxsr.cpu import onednn_conv

_NHWC = ('NHWC', 'HWIO', 'NHWC')
# Bytes of one group's input maps for the kernel gradient (measured on a
# 2-core AMD EPYC: 16×40×40×64 fastest per image, 16×20×20×64 by pairs).
CHUNK_BYTES = 256 * 1024
MIN_CHANNELS = 32
# Convolutions measured faster in XLA, in a training step on the 2-core CPU
# (benchmarks/RESULTS.md): narrow outputs (VDSR's and ESPCN's last convs) and
# small ones (ESPCN's first).
ONEDNN_MIN_OUT_CHANNELS = 8
ONEDNN_MIN_FLOPS = 50e6  # forward pass of one call
IMPLEMENTATIONS = ('auto', 'onednn', 'chunked', 'xla')


def weight_grad_chunk(shape, itemsize: int = 4) -> int:
  """Images per group for the kernel gradient of an NHWC input of `shape`."""
  per_image = shape[1] * shape[2] * shape[3] * itemsize
  return max(1, min(shape[0], CHUNK_BYTES // max(per_image, 1)))


def _conv(x, w, pads):
  return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=_NHWC)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _chunked_conv(x, w, pads, chunk):
  return _conv(x, w, pads)


def _chunked_conv_jvp(pads, chunk, primals, tangents):
  x, w = primals
  dx, dw = tangents
  terms = []
  if not isinstance(dx, SymbolicZero):
    terms.append(_conv(dx, w, pads))
  if not isinstance(dw, SymbolicZero):  # transposed: a sum over image groups
    terms.append(jnp.concatenate([_conv(x[i:i + chunk], dw, pads)
                                  for i in range(0, x.shape[0], chunk)]))
  y = _conv(x, w, pads)
  return y, functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(y)


_chunked_conv.defjvp(_chunked_conv_jvp, symbolic_zeros=True)


def _use_onednn(lhs, rhs, implementation: str) -> bool:
  if (implementation not in ('auto', 'onednn') or lhs.dtype != jnp.float32
      or rhs.dtype != jnp.float32):
    return False
  forward_flops = 2 * lhs.size * rhs.shape[0] * rhs.shape[1] * rhs.shape[3]  # about
  if implementation == 'auto' and (rhs.shape[3] < ONEDNN_MIN_OUT_CHANNELS
                                   or forward_flops < ONEDNN_MIN_FLOPS):
    return False
  return onednn_conv.available()


def _cpu_pads(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
              dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
  """((top, bottom), (left, right)) when the CPU paths here can run the conv."""
  if (lhs.ndim != 4 or kwargs or precision is not None or feature_group_count != 1
      or tuple(window_strides) != (1, 1)
      or any(d is not None and tuple(d) != (1, 1) for d in (lhs_dilation, rhs_dilation))
      or dimension_numbers is None
      or (lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
          != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))):
    return None
  if isinstance(padding, str):
    if padding not in ('SAME', 'VALID'):
      return None
    padding = [((k - 1) // 2, k - 1 - (k - 1) // 2) if padding == 'SAME' else (0, 0)
               for k in rhs.shape[:2]]
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  return None if min(min(p) for p in pads) < 0 else pads


def _wants_chunks(lhs, rhs, implementation: str) -> bool:
  return (implementation != 'xla' and rhs.shape[0] * rhs.shape[1] > 1
          and min(rhs.shape[2], rhs.shape[3]) >= MIN_CHANNELS
          and weight_grad_chunk(lhs.shape, lhs.dtype.itemsize) < lhs.shape[0])


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, precision=None, *,
                         implementation: str = 'auto', **kwargs):
  """lax.conv_general_dilated, by oneDNN or with the chunked kernel gradient
  where `implementation` (IMPLEMENTATIONS) and the shapes say so."""
  args = (lhs, rhs, window_strides, padding)
  options = dict(lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                 dimension_numbers=dimension_numbers,
                 feature_group_count=feature_group_count, precision=precision, **kwargs)
  pads = _cpu_pads(*args, **options)
  if pads is not None and _use_onednn(lhs, rhs, implementation):
    return onednn_conv.conv2d(lhs, rhs, pads)
  if pads is not None and _wants_chunks(lhs, rhs, implementation):
    return _chunked_conv(lhs, rhs, pads, weight_grad_chunk(lhs.shape, lhs.dtype.itemsize))
  return lax.conv_general_dilated(*args, **options)


def _conv_function(implementation: str):
  """`conv_general_dilated` with `implementation`: one object per name, so that
  models built with it compare equal."""
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f'unknown convolution implementation {implementation!r}; valid: '
                     f'{list(IMPLEMENTATIONS)}')
  if implementation == 'onednn' and not onednn_conv.available():
    raise RuntimeError('oneDNN convolutions unavailable: '
                       f'{onednn_conv.unavailable_reason()}')
  return _CONV_FUNCTIONS[implementation]


_CONV_FUNCTIONS = {name: functools.partial(conv_general_dilated, implementation=name)
                   for name in IMPLEMENTATIONS}
_CONV_FACTORIES = {name: functools.partial(nn.Conv, conv_general_dilated=f)
                   for name, f in _CONV_FUNCTIONS.items()}


def conv_factory(implementation: str = 'auto'):
  """nn.Conv computed by `conv_general_dilated(..., implementation=...)`."""
  _conv_function(implementation)
  return nn.Conv if implementation == 'xla' else _CONV_FACTORIES[implementation]


def factories(implementation: str = 'auto', subpixel: bool = True) -> dict:
  """The models' `conv` and `conv_transpose` fields (jaxsr.models.backend);
  subpixel=False keeps nn.ConvTranspose (XLA's transposed convolution)."""
  conv = _conv_function(implementation)
  return {'conv': conv_factory(implementation),
          'conv_transpose': (conv_transpose.conv_transpose_factory(conv) if subpixel
                             else nn.ConvTranspose)}
