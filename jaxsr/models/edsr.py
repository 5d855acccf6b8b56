"""EDSR (Lim et al.): residual blocks without batch norm, pixel-shuffle tail."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxsr.models import layers
from jaxsr.models import sizing

# DIV2K RGB mean used by the reference implementation, and its Y (BT.601,
# [16, 235] range scaled to [0, 1]) for the single-channel setting.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
DIV2K_Y_MEAN = (16 + 65.481 * 0.4488 + 128.553 * 0.4371
                + 24.966 * 0.4040) / 255


class EDSR(nn.Module):
  """Head conv, num_blocks residual blocks + conv with a long skip,
  upsampler (conv to 4·F and ×2 shuffle, twice for ×4; conv to 9·F and ×3
  shuffle for ×3), tail conv.

  Registered as `edsr_baseline` (16 blocks, 64 features, res_scale 1) and
  `edsr` (32 blocks, 256 features, res_scale 0.1), the paper's two models.
  subtract_mean removes the DIV2K mean at the input and adds it back at the
  output (the reference code's MeanShift; no parameters).
  """
  scale: float = 2.0
  channels: int = 1
  num_blocks: int = 16
  features: int = 64
  res_scale: float = 1.0
  kernel_size: int = 3
  subtract_mean: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, lr: jnp.ndarray,
               output_size: Sequence[int] | None = None) -> jnp.ndarray:
    sizing.check_channels(lr, self.channels, 'edsr')
    factor = sizing.integer_scale(self.scale, lr.shape[1:3], output_size,
                                  'edsr')
    if factor & (factor - 1) == 0:
      steps = [2] * (factor.bit_length() - 1)
    elif factor == 3:
      steps = [3]
    else:
      raise ValueError(f'edsr: scale must be a power of 2 or 3, got {factor}')
    mean = jnp.asarray(DIV2K_RGB_MEAN if self.channels == 3
                       else (DIV2K_Y_MEAN,) * self.channels, self.dtype)
    if not self.subtract_mean:
      mean = jnp.zeros_like(mean)
    k = (self.kernel_size, self.kernel_size)
    x = layers.Conv(self.features, k, padding='SAME', dtype=self.dtype,
                    name='head')(lr.astype(self.dtype) - mean)
    y = x
    for i in range(self.num_blocks):
      y = layers.ResidualUnit(self.features, self.kernel_size,
                              res_scale=self.res_scale, dtype=self.dtype,
                              name=f'block{i}')(y)
    y = layers.Conv(self.features, k, padding='SAME', dtype=self.dtype,
                    name='body_end')(y)
    x = x + y
    for i, r in enumerate(steps):
      x = layers.Conv(self.features * r * r, k, padding='SAME', dtype=self.dtype,
                      name=f'upsample{i}')(x)
      x = layers.pixel_shuffle(x, r)
    x = layers.Conv(self.channels, k, padding='SAME', dtype=self.dtype,
                    name='tail')(x)
    return (x + mean).astype(lr.dtype)
