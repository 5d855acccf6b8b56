"""EDSR (Lim et al.): residual blocks without batch norm, pixel-shuffle tail."""

from __future__ import annotations

import functools

import jax.numpy as jnp

from jaxsr.models import layers
from jaxsr.models import sizing

# DIV2K RGB mean used by the reference implementation, and its Y (BT.601,
# [16, 235] range scaled to [0, 1]) for the single-channel setting.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
DIV2K_Y_MEAN = (16 + 65.481 * 0.4488 + 128.553 * 0.4371
                + 24.966 * 0.4040) / 255


class EDSR(sizing.LearnedUpsamplingModel):
  """Head conv, num_blocks residual blocks + conv with a long skip,
  upsampler (conv to 4·F and ×2 shuffle, twice for ×4; conv to 9·F and ×3
  shuffle for ×3), tail conv.

  Registered as `edsr_baseline` (16 blocks, 64 features, res_scale 1) and
  `edsr` (32 blocks, 256 features, res_scale 0.1), the paper's two models.
  subtract_mean removes the DIV2K mean at the input and adds it back at the
  output (the reference code's MeanShift; no parameters).
  """
  num_blocks: int = 16
  features: int = 64
  res_scale: float = 1.0
  kernel_size: int = 3
  subtract_mean: bool = True

  def network(self, x: jnp.ndarray) -> jnp.ndarray:
    factor = self.factor
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
    conv = functools.partial(self.conv, kernel_size=k, dtype=self.dtype)
    x = conv(self.features, name='head')(x - mean)
    y = x
    for i in range(self.num_blocks):
      y = layers.ResidualUnit(self.features, self.kernel_size,
                              res_scale=self.res_scale, dtype=self.dtype,
                              conv=self.conv, name=f'block{i}')(y)
    y = conv(self.features, name='body_end')(y)
    x = x + y
    for i, r in enumerate(steps):
      x = conv(self.features * r * r, name=f'upsample{i}')(x)
      x = layers.pixel_shuffle(x, r)
    x = conv(self.channels, name='tail')(x)
    return x + mean
