"""EEDS family (Wang et al. 2017): deep and shallow networks with learned
upsampling, "End-to-End Image Super-Resolution via Deep and Shallow
Convolutional Networks" (arXiv:1607.07680).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxsr.models import layers
from jaxsr.models import sizing


class DeepBranch(nn.Module):
  """EED: LR features, learned ×s upsampling, mapping, multi-scale output."""
  factor: int
  channels: int
  upsampling: str
  upsampling_kernel: int
  num_residual_units: int
  features: int
  upsampling_features: int
  activation: str
  residual_post_activation: bool
  dtype: Any

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    act = layers.get_activation(self.activation)

    def residual_unit(name):
      return layers.ResidualUnit(
          self.features, 3, activation=self.activation,
          post_activation=self.residual_post_activation, dtype=self.dtype,
          name=name)

    # Feature extraction in LR space.
    x = layers.conv_act(x, self.features, (3, 3), self.activation, padding='SAME',
                        dtype=self.dtype, name='extract')
    x = residual_unit('extract_residual')(x)
    # Upsampling: 1×1 shrink, learned ×s, 1×1 expand.
    x = layers.conv_act(x, self.upsampling_features, (1, 1), self.activation,
                        dtype=self.dtype, name='shrink')
    x = act(layers.LearnedUpsampling(
        self.upsampling_features, self.factor, self.upsampling_kernel,
        self.upsampling, dtype=self.dtype, name='upsample')(x))
    x = layers.conv_act(x, self.features, (1, 1), self.activation, dtype=self.dtype,
                        name='expand')
    # Mapping in HR space.
    for i in range(self.num_residual_units):
      x = residual_unit(f'map{i}')(x)
    return layers.MultiScaleReconstruction(
        self.channels, activation=self.activation, dtype=self.dtype,
        name='reconstruct')(x)


class ShallowBranch(nn.Module):
  """EES: conv 3×3 to 4, learned ×s upsampling to 8, conv 5×5 to C."""
  factor: int
  channels: int
  upsampling: str
  upsampling_kernel: int
  features: Sequence[int]
  activation: str
  dtype: Any

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    act = layers.get_activation(self.activation)
    x = layers.conv_act(x, self.features[0], (3, 3), self.activation, padding='SAME',
                        dtype=self.dtype, name='extract')
    x = act(layers.LearnedUpsampling(
        self.features[1], self.factor, self.upsampling_kernel,
        self.upsampling, dtype=self.dtype, name='upsample')(x))
    return layers.Conv(self.channels, (5, 5), padding='SAME', dtype=self.dtype,
                       name='reconstruct')(x)


class EEDS(nn.Module):
  """Deep (EED), shallow (EES) or both summed (EEDS), trained jointly.

  Registered as `eed` (use_shallow=False), `ees` (use_deep=False) and `eeds`.
  Uncertain details, each a field:
  * upsampling: 'deconv' (transposed conv) or 'unpool' (value at the top-left
    of an s×s block of zeros, then a conv of the same kernel size).
  * upsampling_kernel: None means scale + 12 (14/15/16 for ×2/×3/×4, our
    reading of the paper); the deconv padding gives exactly s× output with
    kernels centred on their LR pixel (`layers.transposed_conv_padding`).
  * num_residual_units: R = 2 mapping units after upsampling (the paper's
    figure); the LR feature extraction always has one unit.
  * activation: ReLU after every hidden conv (the paper's figures do not
    settle ReLU vs PReLU); the output layers are linear.
  * residual_post_activation: True is the original ResNet unit
    (ReLU after the sum, He et al. 2016), which the paper cites.
  * shallow_features: (4, 8) widths of the shallow branch, from the paper.
  """
  scale: float = 2.0
  channels: int = 1
  use_deep: bool = True
  use_shallow: bool = True
  upsampling: str = 'deconv'
  upsampling_kernel: int | None = None
  num_residual_units: int = 2
  features: int = 64
  upsampling_features: int = 4
  shallow_features: Sequence[int] = (4, 8)
  activation: str = 'relu'
  residual_post_activation: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, lr: jnp.ndarray,
               output_size: Sequence[int] | None = None) -> jnp.ndarray:
    name = {(True, True): 'eeds', (True, False): 'eed',
            (False, True): 'ees'}.get((self.use_deep, self.use_shallow))
    if name is None:
      raise ValueError('eeds: at least one of use_deep and use_shallow must '
                       'be True')
    sizing.check_channels(lr, self.channels, name)
    factor = sizing.integer_scale(self.scale, lr.shape[1:3], output_size,
                                  name)
    if self.upsampling not in ('deconv', 'unpool'):
      raise ValueError(f"{name}: unknown upsampling {self.upsampling!r}; "
                       f"valid: ['deconv', 'unpool']")
    kernel = (self.upsampling_kernel if self.upsampling_kernel is not None
              else factor + 12)
    x = lr.astype(self.dtype)
    out = 0.0
    if self.use_deep:
      out = out + DeepBranch(
          factor, self.channels, self.upsampling, kernel,
          self.num_residual_units, self.features, self.upsampling_features,
          self.activation, self.residual_post_activation, self.dtype,
          name='deep')(x)
    if self.use_shallow:
      out = out + ShallowBranch(
          factor, self.channels, self.upsampling, kernel,
          self.shallow_features, self.activation, self.dtype,
          name='shallow')(x)
    return out.astype(lr.dtype)
