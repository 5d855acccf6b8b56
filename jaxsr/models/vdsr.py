"""VDSR (Kim et al.): 20 3×3 convolutions learning the bicubic residual."""

from __future__ import annotations

import jax.numpy as jnp

from jaxsr.models import layers
from jaxsr.models import sizing


class VDSR(sizing.BicubicInputModel):
  """depth conv layers of 3×3×features, ReLU between, plus the input.

  He-normal weights and zero biases, as in the paper (665,921 parameters on
  Y). The paper's gradient clipping belongs to the training setup, not here.
  """
  depth: int = 20
  features: int = 64
  kernel_size: int = 3

  def network(self, upsampled: jnp.ndarray) -> jnp.ndarray:
    if self.depth < 2:
      raise ValueError(f'vdsr: depth must be at least 2, got {self.depth}')
    residual = layers.ConvChain(
        (self.features,) * (self.depth - 1), (self.kernel_size,) * self.depth,
        self.channels, activation='relu', kernel_init=layers.he_normal,
        dtype=self.dtype, conv=self.conv, name='body')(upsampled.astype(self.dtype))
    return upsampled + residual.astype(upsampled.dtype)
