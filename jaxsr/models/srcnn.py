"""SRCNN (Dong et al.): three convolutions on the bicubic-upsampled input."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from jaxsr.models import layers
from jaxsr.models import sizing


class SRCNN(sizing.BicubicInputModel):
  """Patch extraction, non-linear mapping, reconstruction.

  kernel_sizes=(9, 1, 5) is the ECCV 2014 network (8,129 parameters on Y),
  (9, 5, 5) the better TPAMI 2016 one; features=(64, 32) in both (n1, n2).
  ReLU after the first two layers, linear output, as in the paper. Padding is
  'SAME' so the output has the input's size (the paper trains with 'VALID'
  convolutions and crops the target instead). Weights use Flax's default
  LeCun-normal init rather than the paper's N(0, 0.001²), which was tuned for
  plain SGD.
  """
  features: Sequence[int] = (64, 32)
  kernel_sizes: Sequence[int] = (9, 1, 5)
  activation: str = 'relu'

  def network(self, upsampled: jnp.ndarray) -> jnp.ndarray:
    return layers.ConvChain(self.features, self.kernel_sizes, self.channels,
                            activation=self.activation, dtype=self.dtype, conv=self.conv,
                            name='body')(upsampled.astype(self.dtype))
