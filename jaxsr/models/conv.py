"""nn.Conv with faster convolutions on the CPU.

On the CPU backend `conv_general_dilated` runs 2-D stride-1 undilated
float32 NHWC convolutions by oneDNN, forward pass and gradients
(jaxsr.cpu.onednn_conv: the library PyTorch's CPU convolutions use,
about twice XLA:CPU's speed on SR training shapes), when it is available,
the run uses one device and the conv is not tiny (ONEDNN_MIN_*). Otherwise
it keeps XLA's convolutions, except
for the kernel gradient of wide ones: XLA computes it as one more
convolution, of the layer input (batch as features) with the output
gradient as an H×W "kernel", which XLA:CPU (YNNPACK, jaxlib 0.10) runs at a
fraction of the forward pass's speed for a batch of 64-channel maps
(16×40×40×64: 5-10× slower, see benchmarks/RESULTS.md), while the same sum
over small groups of images is fast. So the kernel gradient is summed over
groups of `weight_grad_chunk` images (each group's maps ~256 KB) for k > 1
and at least 32 input and output channels (where it measured faster). GPUs'
and TPUs' libraries have fast convolutions: there everything is XLA's.

`Conv` is nn.Conv's parameters and function on top, with an optional ReLU
that oneDNN fuses. `implementation(name)` overrides the choice for what is traced inside it
(benchmarks and tests compare them).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxsr.cpu import onednn_conv

_NHWC = ('NHWC', 'HWIO', 'NHWC')
# Bytes of one group's input maps for the kernel gradient (measured on a
# 2-core AMD EPYC: 16×40×40×64 fastest per image, 16×20×20×64 by pairs).
CHUNK_BYTES = 256 * 1024
MIN_CHANNELS = 32
# Convolutions measured faster in XLA, in a training step on the 2-core CPU
# (benchmarks/RESULTS.md): narrow outputs (VDSR's and ESPCN's last convs) and
# small ones (ESPCN's first, 20 MFLOP: its step 1.34× faster in XLA).
ONEDNN_MIN_OUT_CHANNELS = 8
ONEDNN_MIN_FLOPS = 50e6  # forward pass of one call
IMPLEMENTATIONS = ('auto', 'onednn', 'chunked', 'xla')
_forced: list[str] = []


@contextlib.contextmanager
def implementation(name: str):
  """CPU convolutions traced inside: 'auto' (the default choice), 'onednn',
  'chunked' (XLA's, kernel gradient summed over image groups) or 'xla'."""
  if name not in IMPLEMENTATIONS:
    raise ValueError(f'unknown convolution implementation {name!r}; valid: '
                     f'{list(IMPLEMENTATIONS)}')
  if name == 'onednn' and not onednn_conv.available():
    raise RuntimeError('oneDNN convolutions unavailable: '
                       f'{onednn_conv.unavailable_reason()}')
  _forced.append(name)
  try:
    yield
  finally:
    _forced.pop()


def current_implementation() -> str:
  return _forced[-1] if _forced else 'auto'


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


def _use_onednn(lhs, rhs, impl: str) -> bool:
  if lhs.dtype != jnp.float32 or rhs.dtype != jnp.float32 or impl in ('chunked', 'xla'):
    return False
  forward_flops = 2 * lhs.size * rhs.shape[0] * rhs.shape[1] * rhs.shape[3]  # about
  if impl == 'auto' and (rhs.shape[3] < ONEDNN_MIN_OUT_CHANNELS
                         or forward_flops < ONEDNN_MIN_FLOPS):
    return False
  # 'auto': one device only, as XLA cannot partition the custom call over a
  # batch sharded across devices (it would gather it).
  return (impl == 'onednn' or jax.device_count() == 1) and onednn_conv.available()


def _cpu_pads(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
              dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
  """((top, bottom), (left, right)) when the CPU paths here can run the conv."""
  if (jax.default_backend() != 'cpu' or lhs.ndim != 4 or kwargs
      or precision is not None or feature_group_count != 1
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


def _xla_conv(args, options, pads, impl):
  """XLA's convolution, with the chunked kernel gradient where it helps."""
  lhs, rhs = args[:2]
  if (pads is None or impl == 'xla' or rhs.shape[0] * rhs.shape[1] == 1
      or min(rhs.shape[2], rhs.shape[3]) < MIN_CHANNELS):
    return lax.conv_general_dilated(*args, **options)
  chunk = weight_grad_chunk(lhs.shape, lhs.dtype.itemsize)
  if chunk >= lhs.shape[0]:
    return lax.conv_general_dilated(*args, **options)
  return _chunked_conv(lhs, rhs, pads, chunk)


def _cpu_conv(args, options, bias=None, relu=False):
  """lax.conv_general_dilated(*args, **options) (+ bias, + ReLU), by oneDNN
  or with the chunked kernel gradient where that helps."""
  lhs, rhs = args[:2]
  pads = _cpu_pads(*args, **options)
  impl = current_implementation()
  if pads is not None and _use_onednn(lhs, rhs, impl):
    bias = jnp.zeros(rhs.shape[-1], rhs.dtype) if bias is None else bias
    return onednn_conv.conv2d(lhs, rhs, bias, pads, relu)
  y = _xla_conv(args, options, pads, impl)
  y = y if bias is None else y + bias
  return nn.relu(y) if relu else y


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, precision=None, **kwargs):
  """lax.conv_general_dilated, by oneDNN or with the chunked kernel gradient
  where that helps."""
  return _cpu_conv((lhs, rhs, window_strides, padding),
                   dict(lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                        dimension_numbers=dimension_numbers,
                        feature_group_count=feature_group_count, precision=precision,
                        **kwargs))


class Conv(nn.Module):
  """nn.Conv (2-D, stride 1): the same parameters, initialisers and function,
  computed as `conv_general_dilated` is; relu=True applies a ReLU, fused into
  oneDNN's convolution where that runs it (saving a pass over the output)."""
  features: int
  kernel_size: Sequence[int]
  padding: Any = 'SAME'
  relu: bool = False
  kernel_init: Callable[..., Any] = nn.initializers.lecun_normal()
  bias_init: Callable[..., Any] = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    shape = (*self.kernel_size, x.shape[-1], self.features)
    kernel = self.param('kernel', self.kernel_init, shape, self.param_dtype)
    bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    dn = lax.conv_dimension_numbers(x.shape, kernel.shape, _NHWC)
    return _cpu_conv((x, kernel, (1, 1), self.padding), {'dimension_numbers': dn},
                     bias, self.relu)
