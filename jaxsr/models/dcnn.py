"""DCNN and DSCNN: the seed's second ablation, EEDS's ideas on the bicubic
input instead of learned upsampling.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxsr.models import layers
from jaxsr.models import sizing


class DeepHRNet(nn.Module):
  """EED's deep network without its upsampling stage, run at HR size."""
  channels: int
  features: int
  num_residual_units: int
  activation: str
  residual_post_activation: bool
  dtype: Any
  conv: layers.ModuleDef

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    act = layers.get_activation(self.activation)
    x = act(self.conv(self.features, (3, 3), dtype=self.dtype, name='extract')(x))
    for i in range(self.num_residual_units):
      x = layers.ResidualUnit(
          self.features, 3, activation=self.activation,
          post_activation=self.residual_post_activation, dtype=self.dtype,
          conv=self.conv, name=f'unit{i}')(x)
    return layers.MultiScaleReconstruction(
        self.channels, activation=self.activation, dtype=self.dtype, conv=self.conv,
        name='reconstruct')(x)


class DCNN(sizing.BicubicInputModel):
  """Deep CNN on the bicubic-upsampled input; with_shallow adds a 3-layer
  SRCNN-like network whose output is summed (DSCNN, trained jointly).

  Our design (the seed names the ablation, not the layers). Two deep nets
  (`deep`):
  * 'residual' (dcnn, dscnn), so that they differ from eed/eeds only in
    bicubic vs learned upsampling: conv 3×3 to `features` (64),
    `num_residual_units` (3: EED's one LR unit plus its R = 2 HR units)
    residual units, EEDS's multi-scale reconstruction; ReLU; linear output.
  * 'plain' (dcnn_plain, dscnn_plain), the seed's "deep CNN comparable to
    SRCNN": SRCNN's kind of network made deep, `num_layers` (8) plain 3×3
    convolutions of `features` (32) with ReLU between them, linear output.
    It sees SRCNN 9-5-5's 17×17 window with about its parameters (56,097
    vs 57,281), so depth is what differs.
  * shallow: SRCNN 9-1-5 with 64/32 filters (`shallow_features`,
    `shallow_kernel_sizes`), ReLU, linear output.
  global_residual adds the bicubic input to the output (VDSR's residual
  learning); off by default, like SRCNN and EEDS. Works on the bicubic
  input, so any real scale.
  """
  with_shallow: bool = False
  deep: str = 'residual'
  features: int = 64
  num_layers: int = 8
  num_residual_units: int = 3
  activation: str = 'relu'
  residual_post_activation: bool = True
  shallow_features: Sequence[int] = (64, 32)
  shallow_kernel_sizes: Sequence[int] = (9, 1, 5)
  global_residual: bool = False

  @property
  def model_name(self) -> str:
    return ('dscnn' if self.with_shallow else 'dcnn') + (
        '_plain' if self.deep == 'plain' else '')

  def network(self, upsampled: jnp.ndarray) -> jnp.ndarray:
    x = upsampled.astype(self.dtype)
    if self.deep == 'residual':
      out = DeepHRNet(self.channels, self.features, self.num_residual_units,
                      self.activation, self.residual_post_activation,
                      self.dtype, self.conv, name='deep')(x)
    elif self.deep == 'plain':
      if self.num_layers < 2:
        raise ValueError(f'{self.model_name}: num_layers must be >= 2, got '
                         f'{self.num_layers}')
      out = layers.ConvChain(
          (self.features,) * (self.num_layers - 1), (3,) * self.num_layers,
          self.channels, activation=self.activation, dtype=self.dtype,
          conv=self.conv, name='deep')(x)
    else:
      raise ValueError(f"{self.model_name}: unknown deep {self.deep!r}; valid: "
                       "['residual', 'plain']")
    if self.with_shallow:
      out = out + layers.ConvChain(
          self.shallow_features, self.shallow_kernel_sizes, self.channels,
          activation=self.activation, dtype=self.dtype, conv=self.conv,
          name='shallow')(x)
    if self.global_residual:
      out = out + x
    return out
