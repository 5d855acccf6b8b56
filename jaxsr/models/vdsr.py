"""VDSR (Kim et al.): 20 3×3 convolutions learning the bicubic residual."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxsr.models import layers
from jaxsr.models import sizing


class VDSR(nn.Module):
  """depth conv layers of 3×3×features, ReLU between, plus the input.

  He-normal weights and zero biases, as in the paper (665,921 parameters on
  Y). The paper's gradient clipping belongs to the training setup, not here.
  """
  scale: float = 2.0
  channels: int = 1
  depth: int = 20
  features: int = 64
  kernel_size: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, lr: jnp.ndarray,
               output_size: Sequence[int] | None = None) -> jnp.ndarray:
    sizing.check_channels(lr, self.channels, 'vdsr')
    if self.depth < 2:
      raise ValueError(f'vdsr: depth must be at least 2, got {self.depth}')
    x = sizing.bicubic_upsample(lr, self.scale, output_size)
    residual = layers.ConvChain(
        (self.features,) * (self.depth - 1), (self.kernel_size,) * self.depth,
        self.channels, activation='relu', kernel_init=layers.he_normal,
        dtype=self.dtype, name='body')(x.astype(self.dtype))
    return x + residual.astype(lr.dtype)
