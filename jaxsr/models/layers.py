"""Building blocks shared by several model families.

Upsampling operators (pixel shuffle, unpooling, transposed convolution with
exact s× output), a per-channel PReLU, a plain conv chain, the residual unit
and the multi-scale reconstruction block of EEDS.

Blocks build their convolutions with a `conv` (and `conv_transpose`) factory
field, nn.Conv (nn.ConvTranspose) by default, as Flax's ResNet example
does: the model passes its own down, which is where jaxsr.models.backend's
choice of implementation arrives.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any
ModuleDef = Any

ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    'relu': nn.relu,
    'tanh': jnp.tanh,
    'leaky_relu': nn.leaky_relu,
    'identity': lambda x: x,
}

# He et al. 2015: N(0, 2/fan_in), the initialisation VDSR prescribes.
he_normal = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')


def get_activation(name: str) -> Callable[[jnp.ndarray], jnp.ndarray]:
  if name not in ACTIVATIONS:
    raise ValueError(f'unknown activation {name!r}; valid: '
                     f'{sorted(ACTIVATIONS)}')
  return ACTIVATIONS[name]


def pixel_shuffle(x: jnp.ndarray, factor: int) -> jnp.ndarray:
  """Sub-pixel rearrangement (B, h, w, C·r²) -> (B, r·h, r·w, C).

  Input channel c·r² + i·r + j goes to output pixel (r·y + i, r·x + j),
  channel c: PyTorch's `PixelShuffle` order, so converted checkpoints of the
  reference implementations keep their meaning.
  """
  b, h, w, depth = x.shape
  r = int(factor)
  if depth % (r * r):
    raise ValueError(f'pixel_shuffle: {depth} channels not divisible by '
                     f'{r}² = {r * r}')
  c = depth // (r * r)
  x = x.reshape(b, h, w, c, r, r)
  x = x.transpose(0, 1, 4, 2, 5, 3)  # (b, h, i, w, j, c)
  return x.reshape(b, h * r, w * r, c)


def unpool(x: jnp.ndarray, factor: int) -> jnp.ndarray:
  """Each value at the top-left corner of an r×r block of zeros."""
  b, h, w, c = x.shape
  r = int(factor)
  out = jnp.zeros((b, h, r, w, r, c), x.dtype)
  out = out.at[:, :, 0, :, 0, :].set(x)
  return out.reshape(b, h * r, w * r, c)


def transposed_conv_padding(kernel_size: int, stride: int) -> tuple[int, int]:
  """Padding of the stride-dilated input giving exactly stride× output.

  Total padding kernel + stride - 2 makes the output stride·n long; splitting
  it evenly centres each kernel on its LR pixel's footprint (pixel centres
  aligned as in MATLAB's imresize). An odd total puts the extra row after.
  """
  if kernel_size < stride:
    raise ValueError(f'transposed conv: kernel_size {kernel_size} must be at '
                     f'least the stride {stride}')
  total = kernel_size + stride - 2
  return total // 2, total - total // 2


class PReLU(nn.Module):
  """Parametric ReLU with one learned slope per channel (He et al. 2015)."""
  init_slope: float = 0.25
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    slope = self.param('slope', nn.initializers.constant(self.init_slope),
                       (x.shape[-1],), jnp.float32)
    return jnp.where(x >= 0, x, slope.astype(self.dtype) * x)


class LearnedUpsampling(nn.Module):
  """×stride upsampling by a transposed conv or by unpooling + a conv."""
  features: int
  stride: int
  kernel_size: int
  method: str = 'deconv'
  dtype: Dtype = jnp.float32
  conv: ModuleDef = nn.Conv
  conv_transpose: ModuleDef = nn.ConvTranspose

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    k = self.kernel_size
    if self.method == 'deconv':
      pad = transposed_conv_padding(k, self.stride)
      return self.conv_transpose(self.features, (k, k), strides=(self.stride, self.stride),
                                 padding=(pad, pad), dtype=self.dtype, name='deconv')(x)
    if self.method == 'unpool':
      x = unpool(x, self.stride)
      return self.conv(self.features, (k, k), dtype=self.dtype, name='conv')(x)
    raise ValueError(f"unknown upsampling {self.method!r}; valid: "
                     f"['deconv', 'unpool']")


class ConvChain(nn.Module):
  """Convolutions with an activation between them; the last one is linear.

  features lists the hidden widths; the last conv maps to out_features.
  """
  features: Sequence[int]
  kernel_sizes: Sequence[int]
  out_features: int
  activation: str = 'relu'
  kernel_init: Callable[..., Any] = nn.initializers.lecun_normal()
  dtype: Dtype = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if len(self.kernel_sizes) != len(self.features) + 1:
      raise ValueError(f'ConvChain: need len(features) + 1 kernel sizes, got '
                       f'features={tuple(self.features)}, '
                       f'kernel_sizes={tuple(self.kernel_sizes)}')
    act = get_activation(self.activation)
    conv = functools.partial(self.conv, kernel_init=self.kernel_init, dtype=self.dtype)
    widths = list(self.features) + [self.out_features]
    for i, (width, k) in enumerate(zip(widths, self.kernel_sizes)):
      x = conv(width, (k, k), name=f'conv{i}')(x)
      if i < len(widths) - 1:
        x = act(x)
    return x


class ResidualUnit(nn.Module):
  """x + res_scale · conv(act(conv(x))), optionally followed by act.

  post_activation=True is the original ResNet unit (He et al. 2016);
  False is EDSR's block, which drops the activation after the sum.
  """
  features: int
  kernel_size: int = 3
  activation: str = 'relu'
  res_scale: float = 1.0
  post_activation: bool = False
  dtype: Dtype = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    act = get_activation(self.activation)
    conv = functools.partial(self.conv, self.features, (self.kernel_size,) * 2,
                             dtype=self.dtype)
    y = act(conv(name='conv0')(x))
    y = conv(name='conv1')(y)
    if self.res_scale != 1.0:
      y = y * self.res_scale
    x = x + y
    return act(x) if self.post_activation else x


class MultiScaleReconstruction(nn.Module):
  """EEDS reconstruction: 1×1 shrink, parallel k×k convs, concat, 1×1 out."""
  out_features: int
  branch_features: int = 16
  kernel_sizes: Sequence[int] = (1, 3, 5, 7)
  activation: str = 'relu'
  dtype: Dtype = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    act = get_activation(self.activation)
    conv = functools.partial(self.conv, dtype=self.dtype)
    x = act(conv(self.branch_features, (1, 1), name='shrink')(x))
    branches = [act(conv(self.branch_features, (k, k), name=f'branch{k}x{k}')(x))
                for k in self.kernel_sizes]
    x = jnp.concatenate(branches, axis=-1)
    return conv(self.out_features, (1, 1), name='output')(x)
