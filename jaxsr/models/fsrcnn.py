"""FSRCNN (Dong, Loy & Tang): SRCNN in LR space with a final deconvolution."""

from __future__ import annotations

import jax.numpy as jnp

from jaxsr.models import layers
from jaxsr.models import sizing


class FSRCNN(sizing.LearnedUpsamplingModel):
  """FSRCNN(d, s, m): 5×5 feature extraction to d, 1×1 shrink to s, m 3×3
  mapping layers, 1×1 expand to d, deconvolution to the output.

  Defaults d=56, s=12, m=4 and the 9×9 deconvolution are the paper's.
  PReLU after every conv but the last, one slope per channel (the paper's
  PReLU; per-channel is Caffe's default). The deconvolution's padding gives
  exactly scale× output with each kernel centred on its LR pixel
  (`layers.transposed_conv_padding`); the paper does not specify it.
  """
  d: int = 56
  s: int = 12
  m: int = 4
  deconv_kernel_size: int = 9

  def network(self, x: jnp.ndarray) -> jnp.ndarray:
    layout = [(self.d, 5, 'extract'), (self.s, 1, 'shrink')]
    layout += [(self.s, 3, f'map{i}') for i in range(self.m)]
    layout += [(self.d, 1, 'expand')]
    for width, k, name in layout:
      x = self.conv(width, (k, k), dtype=self.dtype, name=name)(x)
      x = layers.PReLU(dtype=self.dtype, name=f'{name}_prelu')(x)
    factor, k = self.factor, self.deconv_kernel_size
    pad = layers.transposed_conv_padding(k, factor)
    return self.conv_transpose(self.channels, (k, k), strides=(factor, factor),
                               padding=(pad, pad), dtype=self.dtype, name='deconv')(x)
