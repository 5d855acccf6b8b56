"""The bicubic degradation of the SR benchmark protocol: HR -> (LR, target).

The convention, and why:

* HR is cropped to a multiple of the scale (`modcrop`), so HR = scale · LR
  exactly and the SR output aligns pixel for pixel.
* Y-channel models (channels=1, the SRCNN/VDSR/EEDS setting): Y comes from
  MATLAB's rgb2ycbcr on the uint8 RGB image, which returns Y rounded to uint8
  levels; a grayscale image is its own Y (`color.y_channel` says why). LR = imresize(Y/255, 1/s)
  in float64 with no rounding, as the SRCNN and VDSR MATLAB test scripts do
  (they call im2double on the Y channel, then imresize). This is the pipeline
  that reproduces the published bicubic tables (the test
  `test_bicubic_reproduces_the_published_table` in tests/test_evaluate.py);
  rounding the LR to uint8 as well moves them (benchmarks/RESULTS.md,
  section 5), which is why we don't.
* RGB models (channels=3, the EDSR/DIV2K setting): LR = imresize(HR uint8,
  1/s) with MATLAB's uint8 rounding after each 1-D pass, i.e. exactly the
  PNG files of the DIV2K / benchmark LR releases.
* The SR output is rounded to uint8 levels before metrics (`metrics`).
* An image is scored only if, after modcrop and shaving, SSIM's window fits
  (`check_scorable`). A smaller one is an error naming the image rather than
  a silent skip, so a set's mean is always over all of its images.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jaxsr.protocol import color
from jaxsr.protocol import metrics
from jaxsr.protocol.imresize import imresize


class ImageTooSmallError(ValueError):
  """An image too small to degrade or score at a scale; the message names it."""


def modcrop(img: np.ndarray, scale: float) -> np.ndarray:
  """Crop the bottom/right so both sides are multiples of an integer scale.

  For a non-integer scale nothing is cropped: the LR size is then
  ceil(scale_down · HR size) and the reconstruction is asked for the HR size.
  """
  if float(scale).is_integer():
    s = int(scale)
    h, w = img.shape[:2]
    return img[:h - h % s, :w - w % s]
  return img


def hr_target(hr: np.ndarray, channels: int) -> np.ndarray:
  """The uint8-level HR image a model with `channels` is scored against.

  channels=1: Y in [0, 255] on uint8 levels (H, W, 1) float64.
  channels=3: RGB (H, W, 3) uint8 (grayscale replicated).
  """
  if channels == 1:
    return np.round(color.y_channel(hr))[..., None]
  if channels == 3:
    return color.to_rgb(hr)
  raise ValueError(f'channels must be 1 (Y) or 3 (RGB), got {channels}')


@dataclasses.dataclass(frozen=True)
class SRPair:
  """One benchmark example. `lr` is the model input in [0, 1], (h, w, C)."""
  name: str
  lr: np.ndarray
  target: np.ndarray
  scale: float

  @property
  def crop_border(self) -> int:
    return int(math.ceil(self.scale))


def make_lr(hr: np.ndarray, scale: float, channels: int) -> np.ndarray:
  """LR model input in [0, 1] float32 from an already modcropped HR image."""
  target = hr_target(hr, channels)
  if channels == 1:
    lr = imresize(target / 255.0, 1 / scale)
  else:
    lr = imresize(target, 1 / scale) / 255.0
  return lr.astype(np.float32)


def min_scored_side(scale: float) -> int:
  """The smallest HR side scored at `scale`.

  After modcrop (to a multiple of an integer scale) and ceil(scale) pixels
  shaved from each border, at least SSIM's window must remain.
  """
  side = 2 * math.ceil(scale) + metrics.SSIM_WINDOW
  if float(scale).is_integer():
    side = math.ceil(side / scale) * int(scale)
  return side


def check_scorable(shape: tuple[int, ...], scale: float, name: str) -> None:
  """Raises ImageTooSmallError, naming the image, if it cannot be scored at `scale`."""
  h, w = shape[:2]
  side = min_scored_side(scale)
  if min(h, w) < side:
    raise ImageTooSmallError(
        f'{name}: {w}x{h} is too small to score at x{scale:.4g}: the protocol needs '
        f'at least {side}x{side} pixels ({math.ceil(scale)} pixels shaved from each border, '
        f'then SSIM\'s {metrics.SSIM_WINDOW}x{metrics.SSIM_WINDOW} window)')


def make_pair(hr: np.ndarray, scale: float, channels: int, name: str = '') -> SRPair:
  h, w = hr.shape[:2]
  hr = modcrop(hr, scale)
  if not hr.size:
    raise ImageTooSmallError(f'{name or "image"}: {w}x{h} is smaller than the scale '
                             f'x{scale:.4g}')
  return SRPair(name=name, lr=make_lr(hr, scale, channels),
                target=hr_target(hr, channels), scale=scale)


def score(sr: np.ndarray, pair: SRPair) -> dict[str, float]:
  """Protocol metrics of a model output `sr` (H, W, C) in [0, 1] for `pair`."""
  sr = np.asarray(sr, np.float64)
  if sr.shape != pair.target.shape:
    raise ValueError(f'{pair.name}: SR shape {sr.shape} != target shape '
                     f'{pair.target.shape}')
  if pair.target.shape[-1] == 1:
    return metrics.evaluate_y_pair(sr[..., 0] * 255.0, pair.target[..., 0],
                                   pair.crop_border)
  return metrics.evaluate_pair(sr, pair.target, pair.crop_border)
