"""The model zoo's SR contract: LR (B, h, w, C) -> SR (B, H, W, C).

Every model's default output size is (round(scale·h), round(scale·w)), and
every model is one of two families:

* `BicubicInputModel`: works on the MATLAB-bicubic upsampled input, so any
  real scale and any requested output size;
* `LearnedUpsamplingModel`: upsamples inside the network by an integer
  factor, so exactly (scale·h, scale·w).

Their base, `SRModel`, holds the fields every model has (scale, channels,
dtype, and the conv / conv_transpose factories that jaxsr.models.backend
fills) and the one input check; each family's compact `__call__` checks and
prepares the input and hands it to the model's `network`. get_model has
already validated the scale (a positive float; an integral one for learned
upsampling).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxsr.protocol.imresize import imresize_jax

ModuleDef = Any


def default_output_size(scale: float, lr_hw: Sequence[int]) -> tuple[int, int]:
  """(round(scale·h), round(scale·w)), Python's round as in the contract."""
  return tuple(int(round(scale * n)) for n in lr_hw)


def bicubic_upsample(lr: jnp.ndarray, scale: float,
                     output_size: Sequence[int] | None) -> jnp.ndarray:
  """MATLAB bicubic resize of lr to output_size (default from scale)."""
  if output_size is None:
    output_size = default_output_size(scale, lr.shape[1:3])
  output_size = tuple(int(n) for n in output_size)
  if output_size == tuple(lr.shape[1:3]):
    return lr
  return imresize_jax(lr, output_size=output_size)


class SRModel(nn.Module):
  """Fields and input check shared by every model of the zoo."""
  scale: float = 2.0
  channels: int = 1
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  conv_transpose: ModuleDef = nn.ConvTranspose

  @property
  def model_name(self) -> str:
    """The name in error messages."""
    return type(self).__name__.lower()

  def check_input(self, lr: jnp.ndarray) -> None:
    """Raises a ValueError unless lr is (B, h, w, channels)."""
    if lr.ndim != 4:
      raise ValueError(f'{self.model_name}: expected lr of shape (B, h, w, C), '
                       f'got {lr.shape}')
    if lr.shape[-1] != self.channels:
      raise ValueError(f'{self.model_name}: built for channels={self.channels}, got an '
                       f'input with {lr.shape[-1]} channels {lr.shape}; build the '
                       f'model with channels={lr.shape[-1]} (1 or 3)')


class BicubicInputModel(SRModel):
  """A model on the bicubic-upsampled input: any real scale and output size.

  Subclasses define `network`, called from this compact method (so it may
  create submodules) with the checked input upsampled to output_size
  (default (round(scale·h), round(scale·w))), in the input's dtype.
  """

  @nn.compact
  def __call__(self, lr: jnp.ndarray,
               output_size: Sequence[int] | None = None) -> jnp.ndarray:
    self.check_input(lr)
    return self.network(bicubic_upsample(lr, self.scale, output_size)).astype(lr.dtype)

  def network(self, upsampled: jnp.ndarray) -> jnp.ndarray:
    raise NotImplementedError


class LearnedUpsamplingModel(SRModel):
  """A model with learned upsampling by the integer factor `scale`.

  Subclasses define `network`, called from this compact method with the
  checked LR input in the model's dtype; output_size, if given, must be
  (scale·h, scale·w).
  """

  @property
  def factor(self) -> int:
    if not (self.scale >= 1 and float(self.scale).is_integer()):
      raise ValueError(f'{self.model_name}: learned upsampling needs an integer scale '
                       f'such as 2, 3 or 4, got {self.scale}')
    return int(self.scale)

  @nn.compact
  def __call__(self, lr: jnp.ndarray,
               output_size: Sequence[int] | None = None) -> jnp.ndarray:
    self.check_input(lr)
    s, lr_hw = self.factor, tuple(lr.shape[1:3])
    expected = (s * lr_hw[0], s * lr_hw[1])
    if output_size is not None and tuple(int(n) for n in output_size) != expected:
      raise ValueError(f'{self.model_name}: fixed-scale model (×{s}) only produces '
                       f'output_size={expected} from a {lr_hw} input, got '
                       f'{tuple(output_size)}; use a model on the bicubic input '
                       f'for other sizes')
    return self.network(lr.astype(self.dtype)).astype(lr.dtype)

  def network(self, x: jnp.ndarray) -> jnp.ndarray:
    raise NotImplementedError
