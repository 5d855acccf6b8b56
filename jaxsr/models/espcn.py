"""ESPCN (Shi et al.): convolutions in LR space and a sub-pixel output."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from jaxsr.models import layers
from jaxsr.models import sizing


class ESPCN(sizing.LearnedUpsamplingModel):
  """(f1, n1) = (5, 64), (f2, n2) = (3, 32), f3 = 3 to C·r², pixel shuffle.

  tanh between layers as in the paper; the output layer is linear (the paper
  does not apply a final non-linearity before the periodic shuffling).
  """
  features: Sequence[int] = (64, 32)
  kernel_sizes: Sequence[int] = (5, 3, 3)
  activation: str = 'tanh'

  def network(self, x: jnp.ndarray) -> jnp.ndarray:
    x = layers.ConvChain(self.features, self.kernel_sizes,
                         self.channels * self.factor**2,
                         activation=self.activation, dtype=self.dtype, conv=self.conv,
                         name='body')(x)
    return layers.pixel_shuffle(x, self.factor)
