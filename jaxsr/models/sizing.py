"""The model zoo's size contract: LR (B, h, w, C) -> SR (B, H, W, C).

Every model's default output size is (round(scale·h), round(scale·w)).
Models on the bicubic-upsampled input resize to any requested size; models
with learned upsampling only produce exactly (scale·h, scale·w) for an
integer scale.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from jaxsr.protocol.imresize import imresize_jax


def default_output_size(scale: float, lr_hw: Sequence[int]) -> tuple[int, int]:
  """(round(scale·h), round(scale·w)), Python's round as in the contract."""
  return tuple(int(round(float(scale) * n)) for n in lr_hw)


def check_channels(lr: jnp.ndarray, channels: int, model: str) -> None:
  """Raises a ValueError unless lr is (B, h, w, channels)."""
  if lr.ndim != 4:
    raise ValueError(f'{model}: expected lr of shape (B, h, w, C), '
                     f'got {lr.shape}')
  if lr.shape[-1] != channels:
    raise ValueError(f'{model}: built for channels={channels}, got an input '
                     f'with {lr.shape[-1]} channels {lr.shape}; build the '
                     f'model with channels={lr.shape[-1]} (1 or 3)')


def bicubic_upsample(lr: jnp.ndarray, scale: float,
                     output_size: Sequence[int] | None) -> jnp.ndarray:
  """MATLAB bicubic resize of lr to output_size (default from scale)."""
  if output_size is None:
    output_size = default_output_size(scale, lr.shape[1:3])
  output_size = tuple(int(n) for n in output_size)
  if output_size == tuple(lr.shape[1:3]):
    return lr
  return imresize_jax(lr, output_size=output_size)


def integer_scale(scale: float, lr_hw: Sequence[int],
                  output_size: Sequence[int] | None, model: str) -> int:
  """The scale as an int, for models with learned (fixed-factor) upsampling.

  Raises a ValueError when scale is not an integer or when output_size is
  given and differs from (scale·h, scale·w).
  """
  if float(scale) != int(scale) or int(scale) < 1:
    raise ValueError(f'{model}: learned upsampling needs an integer scale '
                     f'such as 2, 3 or 4, got {scale}')
  s = int(scale)
  expected = (s * lr_hw[0], s * lr_hw[1])
  if output_size is not None and tuple(int(n) for n in output_size) != expected:
    raise ValueError(f'{model}: fixed-scale model (×{s}) only produces '
                     f'output_size={expected} from a {tuple(lr_hw)} input, got '
                     f'{tuple(output_size)}; use a model on the bicubic input '
                     f'for other sizes')
  return s
