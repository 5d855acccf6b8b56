"""FSRCNN (Dong, Loy & Tang): SRCNN in LR space with a final deconvolution."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxsr.models import layers
from jaxsr.models import sizing


class FSRCNN(nn.Module):
  """FSRCNN(d, s, m): 5×5 feature extraction to d, 1×1 shrink to s, m 3×3
  mapping layers, 1×1 expand to d, deconvolution to the output.

  Defaults d=56, s=12, m=4 and the 9×9 deconvolution are the paper's.
  PReLU after every conv but the last, one slope per channel (the paper's
  PReLU; per-channel is Caffe's default). The deconvolution's padding gives
  exactly scale× output with each kernel centred on its LR pixel
  (`layers.transposed_conv_padding`); the paper does not specify it.
  """
  scale: float = 2.0
  channels: int = 1
  d: int = 56
  s: int = 12
  m: int = 4
  deconv_kernel_size: int = 9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, lr: jnp.ndarray,
               output_size: Sequence[int] | None = None) -> jnp.ndarray:
    sizing.check_channels(lr, self.channels, 'fsrcnn')
    factor = sizing.integer_scale(self.scale, lr.shape[1:3], output_size,
                                  'fsrcnn')
    x = lr.astype(self.dtype)
    layout = [(self.d, 5, 'extract'), (self.s, 1, 'shrink')]
    layout += [(self.s, 3, f'map{i}') for i in range(self.m)]
    layout += [(self.d, 1, 'expand')]
    for width, k, name in layout:
      x = layers.Conv(width, (k, k), padding='SAME', dtype=self.dtype,
                  name=name)(x)
      x = layers.PReLU(dtype=self.dtype, name=f'{name}_prelu')(x)
    pad = layers.transposed_conv_padding(self.deconv_kernel_size, factor)
    k = self.deconv_kernel_size
    x = nn.ConvTranspose(self.channels, (k, k), strides=(factor, factor),
                         padding=(pad, pad), dtype=self.dtype,
                         name='deconv')(x)
    return x.astype(lr.dtype)
