"""Colour conversions of the SR evaluation protocol (ITU-R BT.601, MATLAB's rgb2ycbcr)."""

from __future__ import annotations

import numpy as np

# MATLAB rgb2ycbcr: studio-swing YCbCr from RGB in [0, 1], output in [0, 255].
_RGB_TO_YCBCR = np.array([[65.481, 128.553, 24.966],
                          [-37.797, -74.203, 112.0],
                          [112.0, -93.786, -18.214]])
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
  """RGB in [0, 1] (..., 3) -> YCbCr in [0, 255] float64, as MATLAB's rgb2ycbcr."""
  rgb = np.asarray(rgb, np.float64)
  return rgb @ _RGB_TO_YCBCR.T + _YCBCR_OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
  """Inverse of rgb_to_ycbcr: YCbCr in [0, 255] -> RGB in [0, 1] (unclipped)."""
  ycbcr = np.asarray(ycbcr, np.float64)
  return (ycbcr - _YCBCR_OFFSET) @ np.linalg.inv(_RGB_TO_YCBCR).T


def y_channel(img: np.ndarray) -> np.ndarray:
  """The Y channel in [0, 255] float64 of a uint8 image (H, W, 3) or (H, W, 1).

  A single-channel image (Set14 `bridge`) is its own Y, full range, with no
  conversion: the SRCNN/VDSR MATLAB evaluation scripts call rgb2ycbcr only on
  3-channel images, and the published Set14 tables depend on it (treating
  `bridge` as R = G = B instead compresses its range to [16, 235] and moves
  Set14's bicubic PSNR off the published one: benchmarks/RESULTS.md, section 5).
  """
  img = np.asarray(img)
  if img.dtype != np.uint8:
    raise TypeError(f'y_channel expects uint8, got {img.dtype}')
  if img.ndim == 2:
    img = img[..., None]
  if img.shape[-1] == 1:
    return img[..., 0].astype(np.float64)
  if img.shape[-1] != 3:
    raise ValueError(f'y_channel expects 1 or 3 channels, got shape {img.shape}')
  return rgb_to_ycbcr(img / 255.0)[..., 0]


def to_rgb(img: np.ndarray) -> np.ndarray:
  """(H, W, 1) or (H, W) grayscale -> (H, W, 3); RGB passes through."""
  img = np.asarray(img)
  if img.ndim == 2:
    img = img[..., None]
  return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img
