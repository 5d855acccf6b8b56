"""Building blocks shared by several model families.

Upsampling operators (pixel shuffle, unpooling, transposed convolution with
exact s× output), a per-channel PReLU, a plain conv chain, the residual unit
and the multi-scale reconstruction block of EEDS.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxsr.models.conv import Conv, conv_general_dilated  # faster on the CPU

Dtype = Any

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


def conv_act(x: jnp.ndarray, features: int, kernel_size: Sequence[int],
             activation: str, **conv_kwargs) -> jnp.ndarray:
  """activation(Conv(...)(x)), the ReLU fused into the convolution.

  Call inside a compact method; conv_kwargs (name=... included) go to Conv.
  """
  act = get_activation(activation)
  relu = activation == 'relu'
  y = Conv(features, kernel_size, relu=relu, **conv_kwargs)(x)
  return y if relu else act(y)


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


def subpixel_kernel(kernel: jnp.ndarray, stride: int, pad_lo: int
                    ) -> tuple[jnp.ndarray, tuple[int, int]]:
  """A transposed conv's kernel as an LR conv kernel for a pixel shuffle.

  A transposed conv (stride s, kernel (k, k, cin, cout) correlated with the
  s-dilated input padded by pad_lo in front, Flax's transpose_kernel=False)
  computes SR pixel s·q + r (per axis) as sum_m x[q + m] · K[s·m + pad_lo - r].
  So it equals a stride-1 conv on the LR input with kernel
  K_lr[m, cout·s² + ry·s + rx] = K[s·m + pad_lo - r] (zero outside K),
  m in [m_lo, m_hi], padded (-m_lo, m_hi), followed by `pixel_shuffle`:
  no multiplications by the dilation's zeros. Returns
  (K_lr (M, M, cin, cout·s²), (-m_lo, m_hi)).
  """
  k, s = kernel.shape[0], int(stride)
  r = np.arange(s)
  m_lo = min(-((pad_lo - i) // s) for i in r)          # ceil((r - lo) / s)
  m_hi = max((k - 1 - pad_lo + i) // s for i in r)
  m = np.arange(m_lo, m_hi + 1)
  taps = s * m[:, None] + pad_lo - r[None, :]           # (M, s)
  taps = np.where((taps >= 0) & (taps < k), taps, k)    # k: the zero row below
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  lr = padded[taps[:, :, None, None], taps[None, None, :, :]]  # (M, s, M, s, ci, co)
  lr = lr.transpose(0, 2, 4, 5, 1, 3)                  # (M, M, ci, co, ry, rx)
  n = len(m)
  return lr.reshape(n, n, kernel.shape[2], kernel.shape[3] * s * s), (-m_lo, m_hi)


class SubPixelConvTranspose(nn.Module):
  """nn.ConvTranspose(features, (k, k), strides=(s, s), padding=(pad, pad))
  with exactly s× output, computed as an LR conv + pixel shuffle
  (`subpixel_kernel`).

  The same parameters ('kernel' (k, k, cin, cout), 'bias'), initialisers and
  function as nn.ConvTranspose, so checkpoints are interchangeable. XLA:CPU
  runs EEDS inference 1.25-1.5× faster this way (benchmarks/RESULTS.md).
  """
  features: int
  kernel_size: int
  stride: int
  padding: tuple[int, int]
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    k, s = self.kernel_size, self.stride
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,),
                      jnp.float32)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    lr_kernel, pad = subpixel_kernel(kernel, s, self.padding[0])
    y = conv_general_dilated(
        x, lr_kernel, (1, 1), (pad, pad),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return pixel_shuffle(y, s) + bias


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

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    k = self.kernel_size
    if self.method == 'deconv':
      pad = transposed_conv_padding(k, self.stride)
      return SubPixelConvTranspose(self.features, k, self.stride, pad,
                                   dtype=self.dtype, name='deconv')(x)
    if self.method == 'unpool':
      x = unpool(x, self.stride)
      return Conv(self.features, (k, k), padding='SAME', dtype=self.dtype,
                  name='conv')(x)
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

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if len(self.kernel_sizes) != len(self.features) + 1:
      raise ValueError(f'ConvChain: need len(features) + 1 kernel sizes, got '
                       f'features={tuple(self.features)}, '
                       f'kernel_sizes={tuple(self.kernel_sizes)}')
    get_activation(self.activation)
    widths = list(self.features) + [self.out_features]
    for i, (width, k) in enumerate(zip(widths, self.kernel_sizes)):
      options = dict(padding='SAME', kernel_init=self.kernel_init, dtype=self.dtype,
                     name=f'conv{i}')
      x = (conv_act(x, width, (k, k), self.activation, **options)
           if i < len(widths) - 1 else Conv(width, (k, k), **options)(x))
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

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    act = get_activation(self.activation)
    k = (self.kernel_size, self.kernel_size)
    y = conv_act(x, self.features, k, self.activation, padding='SAME',
                 dtype=self.dtype, name='conv0')
    y = Conv(self.features, k, padding='SAME', dtype=self.dtype, name='conv1')(y)
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

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    x = conv_act(x, self.branch_features, (1, 1), self.activation,
                 dtype=self.dtype, name='shrink')
    branches = [
        conv_act(x, self.branch_features, (k, k), self.activation, padding='SAME',
                 dtype=self.dtype, name=f'branch{k}x{k}')
        for k in self.kernel_sizes
    ]
    x = jnp.concatenate(branches, axis=-1)
    return Conv(self.out_features, (1, 1), dtype=self.dtype,
                name='output')(x)
