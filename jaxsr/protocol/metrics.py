"""PSNR and SSIM as the SR literature computes them.

Protocol: both images are uint8 (SR outputs are rounded and clipped first), the
Y channel of BT.601 YCbCr is taken (`color.y_channel`), `crop_border` pixels
(= the scale) are shaved from every side, then PSNR uses a peak of 255 and SSIM
is Wang et al.'s with an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03,
'valid' filtering and the mean of the SSIM map.

An exact reconstruction has MSE 0; its PSNR is that of `MSE_FLOOR` (see
`psnr`), not infinity, so that set means and result files stay finite.
"""

from __future__ import annotations

import numpy as np

from jaxsr.protocol import color


def to_uint8(img: np.ndarray) -> np.ndarray:
  """Float image in [0, 1] -> uint8, rounding half to even like np.round."""
  img = np.asarray(img)
  if img.dtype == np.uint8:
    return img
  return np.clip(np.round(np.asarray(img, np.float64) * 255.0), 0, 255).astype(np.uint8)


def shave(img: np.ndarray, crop_border: int) -> np.ndarray:
  if crop_border <= 0:
    return img
  if min(img.shape[:2]) <= 2 * crop_border:
    raise ValueError(f'image of shape {img.shape} is too small to shave '
                     f'{crop_border} pixels from each border')
  return img[crop_border:-crop_border, crop_border:-crop_border]


def _check_pair(sr: np.ndarray, hr: np.ndarray) -> None:
  if sr.shape != hr.shape:
    raise ValueError(f'SR shape {sr.shape} differs from HR shape {hr.shape}')


# The smallest MSE `psnr` uses, in squared units of the image values.
MSE_FLOOR = 1e-10
# The side of SSIM's Gaussian window: the smallest image SSIM scores.
SSIM_WINDOW = 11


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
  """10 log10(peak² / max(MSE, MSE_FLOOR)).

  The floor, common in SR and image-coding code, gives an exact
  reconstruction (a flat image rebuilt by bicubic) a finite PSNR, about
  148.1 dB at peak 255, instead of infinity, which would make a set's mean
  infinite and its JSON invalid. It changes no other result and keeps the
  ranking: on uint8 levels the smallest non-zero MSE of an image of N pixels
  is 1/N (one pixel one level off), far above the floor for any real N.
  """
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64))**2)
  return float(10 * np.log10(peak**2 / max(float(mse), MSE_FLOOR)))


def _gaussian_window(size: int = SSIM_WINDOW, sigma: float = 1.5) -> np.ndarray:
  """The 1-D factor of MATLAB's fspecial('gaussian', size, sigma): the 2-D window is its outer product."""
  ax = np.arange(size) - (size - 1) / 2
  g = np.exp(-ax**2 / (2 * sigma**2))
  return g / g.sum()


def _filter_valid(images: np.ndarray, g: np.ndarray) -> np.ndarray:
  """2-D 'valid' correlation of (..., H, W) with the window outer(g, g), as two 1-D passes
  (the window is symmetric, so also convolution; 11× fewer operations than in 2-D)."""
  k = g.shape[0]
  rows = np.einsum('...ijk,k->...ij', np.lib.stride_tricks.sliding_window_view(images, k, -1), g)
  return np.einsum('...ijk,k->...ij', np.lib.stride_tricks.sliding_window_view(rows, k, -2), g)


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
  """SSIM of two single-channel images in [0, peak], at least SSIM_WINDOW a side."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if min(a.shape[:2]) < SSIM_WINDOW:
    raise ValueError(f'image of shape {a.shape} is smaller than the SSIM window '
                     f'({SSIM_WINDOW}×{SSIM_WINDOW})')
  c1, c2 = (0.01 * peak)**2, (0.03 * peak)**2
  a2, b2 = a.reshape(a.shape[:2]), b.reshape(b.shape[:2])
  mu_a, mu_b, aa, bb, ab = _filter_valid(np.stack([a2, b2, a2 * a2, b2 * b2, a2 * b2]),
                                         _gaussian_window())
  var_a = aa - mu_a**2
  var_b = bb - mu_b**2
  cov = ab - mu_a * mu_b
  ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
      (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
  return float(ssim_map.mean())


def evaluate_pair(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> dict[str, float]:
  """All protocol metrics of one SR image against its HR image.

  Args:
    sr: (H, W, C) float in [0, 1] or uint8; C = 1 (Y or gray) or 3 (RGB).
    hr: (H, W, C) uint8, the same shape.
    crop_border: pixels shaved from each side (the scale, rounded up).
  Returns:
    psnr_y, ssim_y and, for RGB images, psnr_rgb.
  """
  sr, hr = to_uint8(sr), np.asarray(hr)
  _check_pair(sr, hr)
  sr_y = shave(color.y_channel(sr), crop_border)
  hr_y = shave(color.y_channel(hr), crop_border)
  out = {'psnr_y': psnr(sr_y, hr_y), 'ssim_y': ssim(sr_y, hr_y)}
  if hr.shape[-1] == 3:
    out['psnr_rgb'] = psnr(shave(sr, crop_border), shave(hr, crop_border))
  return out


def evaluate_y_pair(sr_y: np.ndarray, hr_y: np.ndarray, crop_border: int) -> dict[str, float]:
  """Metrics of Y-channel images given in [0, 255] float (rounded here to uint8 levels)."""
  sr_y = np.clip(np.round(np.asarray(sr_y, np.float64)), 0, 255)
  hr_y = np.asarray(hr_y, np.float64)
  _check_pair(sr_y, hr_y)
  sr_y, hr_y = shave(sr_y, crop_border), shave(hr_y, crop_border)
  return {'psnr_y': psnr(sr_y, hr_y), 'ssim_y': ssim(sr_y, hr_y)}
