"""ESPCN (Shi et al.): convolutions in LR space and a sub-pixel output."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxsr.models import layers
from jaxsr.models import sizing


class ESPCN(nn.Module):
  """(f1, n1) = (5, 64), (f2, n2) = (3, 32), f3 = 3 to C·r², pixel shuffle.

  tanh between layers as in the paper; the output layer is linear (the paper
  does not apply a final non-linearity before the periodic shuffling).
  """
  scale: float = 2.0
  channels: int = 1
  features: Sequence[int] = (64, 32)
  kernel_sizes: Sequence[int] = (5, 3, 3)
  activation: str = 'tanh'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, lr: jnp.ndarray,
               output_size: Sequence[int] | None = None) -> jnp.ndarray:
    sizing.check_channels(lr, self.channels, 'espcn')
    factor = sizing.integer_scale(self.scale, lr.shape[1:3], output_size,
                                  'espcn')
    x = layers.ConvChain(self.features, self.kernel_sizes,
                         self.channels * factor * factor,
                         activation=self.activation, dtype=self.dtype,
                         name='body')(lr.astype(self.dtype))
    return layers.pixel_shuffle(x, factor).astype(lr.dtype)
