"""Bicubic interpolation baseline (MATLAB `imresize`), no parameters."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxsr.models import sizing


class Bicubic(nn.Module):
  """MATLAB-compatible bicubic upsampling of the LR input.

  Any real scale; output_size overrides the default (round(s·h), round(s·w)).
  dtype is accepted for a uniform interface; the resize runs in the input's
  dtype.
  """
  scale: float = 2.0
  channels: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, lr: jnp.ndarray,
               output_size: Sequence[int] | None = None) -> jnp.ndarray:
    sizing.check_channels(lr, self.channels, 'bicubic')
    return sizing.bicubic_upsample(lr, self.scale, output_size)
