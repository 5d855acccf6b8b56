"""nn.ConvTranspose with exactly stride× output, as an LR conv + pixel shuffle.

A transposed convolution multiplies the stride-dilated input's zeros too; the
same function is a stride-1 convolution on the LR input with stride² as many
output channels, then a pixel shuffle (`subpixel_kernel`). On the CPU that
is faster (EEDS's upsampling layers), and its convolution goes through
jaxsr.cpu.conv like the others. Same parameters ('kernel' (k, k, cin, cout),
'bias'), initialisers and function as nn.ConvTranspose with
transpose_kernel=False, so checkpoints are interchangeable.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
from jax import lax
import jax.numpy as jnp
import numpy as np


def subpixel_kernel(kernel: jnp.ndarray, stride: int, pad_lo: int
                    ) -> tuple[jnp.ndarray, tuple[int, int]]:
  """A transposed conv's kernel as an LR conv kernel for a pixel shuffle.

  A transposed conv (stride s, kernel (k, k, cin, cout) correlated with the
  s-dilated input padded by pad_lo in front, Flax's transpose_kernel=False)
  computes SR pixel s·q + r (per axis) as sum_m x[q + m] · K[s·m + pad_lo - r].
  So it equals a stride-1 conv on the LR input with kernel
  K_lr[m, cout·s² + ry·s + rx] = K[s·m + pad_lo - r] (zero outside K),
  m in [m_lo, m_hi], padded (-m_lo, m_hi), followed by a pixel shuffle:
  no multiplications by the dilation's zeros. Returns
  (K_lr (M, M, cin, cout·s²), (-m_lo, m_hi)).
  """
  k, s = kernel.shape[0], int(stride)
  r = np.arange(s)
  m_lo = min(-((pad_lo - i) // s) for i in r)          # ceil((r - lo) / s)
  m_hi = max((k - 1 - pad_lo + i) // s for i in r)
  m = np.arange(m_lo, m_hi + 1)
  taps = s * m[:, None] + pad_lo - r[None, :]           # (M, s)
  taps = np.where((taps >= 0) & (taps < k), taps, k)    # k: the zero row below
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  lr = padded[taps[:, :, None, None], taps[None, None, :, :]]  # (M, s, M, s, ci, co)
  lr = lr.transpose(0, 2, 4, 5, 1, 3)                  # (M, M, ci, co, ry, rx)
  n = len(m)
  return lr.reshape(n, n, kernel.shape[2], kernel.shape[3] * s * s), (-m_lo, m_hi)


class SubPixelConvTranspose(nn.Module):
  """nn.ConvTranspose(features, (k, k), strides=(s, s), padding=((lo, hi),) * 2)
  for square kernels and strides with k ≥ s and lo + hi = k + s - 2 (exactly
  s× output), computed as `subpixel_kernel` describes."""
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int]
  padding: Sequence[tuple[int, int]]
  dtype: Any = None
  kernel_init: Callable[..., Any] = nn.initializers.lecun_normal()
  bias_init: Callable[..., Any] = nn.initializers.zeros_init()
  conv_general_dilated: Callable[..., Any] = lax.conv_general_dilated

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    k, s, (lo, hi) = self.kernel_size[0], self.strides[0], self.padding[0]
    if (tuple(self.kernel_size) != (k, k) or tuple(self.strides) != (s, s)
        or tuple(map(tuple, self.padding)) != ((lo, hi),) * 2 or lo + hi != k + s - 2
        or k < s):
      raise ValueError('SubPixelConvTranspose: square kernel and strides, and the '
                       f'padding of an exact s× output only; got {self.kernel_size}, '
                       f'{self.strides}, {self.padding}')
    kernel = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param('bias', self.bias_init, (self.features,), jnp.float32)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    lr_kernel, pad = subpixel_kernel(kernel, s, lo)
    y = self.conv_general_dilated(x, lr_kernel, (1, 1), (pad, pad),
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    b, h, w, _ = y.shape  # pixel shuffle, PyTorch's channel order
    y = y.reshape(b, h, w, self.features, s, s).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(b, h * s, w * s, self.features) + bias


@functools.cache
def conv_transpose_factory(conv_general_dilated):
  """SubPixelConvTranspose computing its convolution by `conv_general_dilated`."""
  return functools.partial(SubPixelConvTranspose, conv_general_dilated=conv_general_dilated)
