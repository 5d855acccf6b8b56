"""Bicubic interpolation baseline (MATLAB `imresize`), no parameters."""

from __future__ import annotations

import jax.numpy as jnp

from jaxsr.models import sizing


class Bicubic(sizing.BicubicInputModel):
  """MATLAB-compatible bicubic upsampling of the LR input.

  Any real scale; output_size overrides the default (round(s·h), round(s·w)).
  dtype is accepted for a uniform interface; the resize runs in the input's
  dtype.
  """

  def network(self, upsampled: jnp.ndarray) -> jnp.ndarray:
    return upsampled
