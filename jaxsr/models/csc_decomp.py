"""The decomposition model: smooth part by bicubic, residual part by a CNN.

The LR image is split as Y = S + R (the decomposition of Gu et al.'s CSC-SR),
with S = f∗Z and

  Z = argmin ‖Y − f∗Z‖² + Φ‖h∗Z‖² + φ‖v∗Z‖²,

f the 3×3 mean filter, h = [1, −1] (horizontal) and v = [−1, 1]ᵀ (vertical).
With circular convolutions the normal equations are diagonal in the Fourier
domain: Ẑ = conj(f̂)·Ŷ / (|f̂|² + Φ|ĥ|² + φ|v̂|²).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxsr.models import layers
from jaxsr.models import sizing

MEAN_FILTER = np.full((3, 3), 1 / 9)
HORIZONTAL_DIFF = np.array([[1.0, -1.0]])
VERTICAL_DIFF = np.array([[-1.0], [1.0]])


def circular_kernel(kernel: np.ndarray, hw: Sequence[int]) -> np.ndarray:
  """kernel on an (H, W) torus with its centre tap ((k−1)//2) at the origin."""
  out = np.zeros(tuple(hw), np.float64)
  ky, kx = kernel.shape
  rows = (np.arange(ky) - (ky - 1) // 2) % hw[0]
  cols = (np.arange(kx) - (kx - 1) // 2) % hw[1]
  np.add.at(out, (rows[:, None], cols[None, :]), kernel)
  return out


def transfer_functions(hw: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
  """rfft2 of f, and the regulariser's |ĥ|², |v̂|² (float64, static)."""
  f_hat = np.fft.rfft2(circular_kernel(MEAN_FILTER, hw))
  h_pow = np.abs(np.fft.rfft2(circular_kernel(HORIZONTAL_DIFF, hw)))**2
  v_pow = np.abs(np.fft.rfft2(circular_kernel(VERTICAL_DIFF, hw)))**2
  return f_hat, np.stack([h_pow, v_pow])


def _check_weights(phi_h: float, phi_v: float) -> None:
  # With either weight zero the system is singular where f̂ vanishes.
  if not (phi_h > 0 and phi_v > 0):
    raise ValueError(f'csc_decomp: phi_h and phi_v must be positive, got '
                     f'{phi_h}, {phi_v}')


def solve_smooth_code(y: jnp.ndarray, phi_h: float,
                      phi_v: float) -> jnp.ndarray:
  """The minimiser Z for each image and channel of y (B, H, W, C)."""
  _check_weights(phi_h, phi_v)
  hw = y.shape[1:3]
  f_hat, (h_pow, v_pow) = transfer_functions(hw)
  gain = np.conj(f_hat) / (np.abs(f_hat)**2 + phi_h * h_pow + phi_v * v_pow)
  y_hat = jnp.fft.rfft2(y.astype(jnp.float32), axes=(1, 2))
  z_hat = y_hat * jnp.asarray(gain, jnp.complex64)[None, :, :, None]
  return jnp.fft.irfft2(z_hat, s=hw, axes=(1, 2))


def decompose(y: jnp.ndarray, phi_h: float,
              phi_v: float) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(S, R) with S = f∗Z the smooth part and R = Y − S, in float32."""
  _check_weights(phi_h, phi_v)
  hw = y.shape[1:3]
  f_hat, (h_pow, v_pow) = transfer_functions(hw)
  f_pow = np.abs(f_hat)**2
  # S = f∗Z in one step: Ŝ = |f̂|²·Ŷ / (|f̂|² + Φ|ĥ|² + φ|v̂|²).
  gain = f_pow / (f_pow + phi_h * h_pow + phi_v * v_pow)
  y = y.astype(jnp.float32)
  y_hat = jnp.fft.rfft2(y, axes=(1, 2))
  smooth = jnp.fft.irfft2(
      y_hat * jnp.asarray(gain, jnp.float32)[None, :, :, None], s=hw,
      axes=(1, 2))
  return smooth, y - smooth


class CSCDecomp(sizing.BicubicInputModel):
  """S is bicubic-upscaled, R is bicubic-upscaled then refined by an SRCNN.

  Works on the bicubic input, so any real scale. Choices (this project's,
  the CSC-SR paper upscales R by convolutional sparse coding instead):
  the residual CNN is SRCNN 9-1-5 with 64/32 filters (`features`,
  `kernel_sizes`) predicting the HR residual directly; phi_h (Φ) = phi_v (φ)
  = 10 are unverified against the paper. Convolutions in the decomposition
  are circular (FFT); R absorbs the boundary effects since S + R = Y exactly.
  """
  phi_h: float = 10.0
  phi_v: float = 10.0
  features: Sequence[int] = (64, 32)
  kernel_sizes: Sequence[int] = (9, 1, 5)
  activation: str = 'relu'

  @property
  def model_name(self) -> str:
    return 'csc_decomp'

  @nn.compact
  def __call__(self, lr: jnp.ndarray,
               output_size: Sequence[int] | None = None) -> jnp.ndarray:
    self.check_input(lr)
    smooth, residual = decompose(lr, self.phi_h, self.phi_v)
    smooth = sizing.bicubic_upsample(smooth, self.scale, output_size)
    residual = sizing.bicubic_upsample(residual, self.scale, output_size)
    detail = layers.ConvChain(self.features, self.kernel_sizes, self.channels,
                              activation=self.activation, dtype=self.dtype,
                              conv=self.conv, name='residual_net')(residual.astype(self.dtype))
    return (smooth + detail.astype(jnp.float32)).astype(lr.dtype)
