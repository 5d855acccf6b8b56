"""The bicubic degradation of the SR benchmark protocol: HR -> (LR, target).

The convention, and why:

* HR is cropped to a multiple of the scale (`modcrop`), so HR = scale · LR
  exactly and the SR output aligns pixel for pixel.
* Y-channel models (channels=1, the SRCNN/VDSR/EEDS setting): Y comes from
  MATLAB's rgb2ycbcr on the uint8 RGB image, which returns Y rounded to uint8
  levels; a grayscale image is its own Y (`color.y_channel` says why). LR = imresize(Y/255, 1/s)
  in float64 with no rounding, as the SRCNN and VDSR MATLAB test scripts do
  (they call im2double on the Y channel, then imresize). This is the pipeline
  that produces the published bicubic tables: with it, bicubic Set5 x2/x3/x4
  reproduces 33.66/30.39/28.42 dB (tests/test_bicubic_table.py). Rounding the
  LR to uint8 as well moves Set5 x2 by -0.01 dB, which is why we don't.
* RGB models (channels=3, the EDSR/DIV2K setting): LR = imresize(HR uint8,
  1/s) with MATLAB's uint8 rounding after each 1-D pass, i.e. exactly the
  PNG files of the DIV2K / benchmark LR releases.
* The SR output is rounded to uint8 levels before metrics (`metrics`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jaxsr.protocol import color
from jaxsr.protocol.imresize import imresize


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


def make_pair(hr: np.ndarray, scale: float, channels: int, name: str = '') -> SRPair:
  hr = modcrop(hr, scale)
  return SRPair(name=name, lr=make_lr(hr, scale, channels),
                target=hr_target(hr, channels), scale=scale)


def score(sr: np.ndarray, pair: SRPair) -> dict[str, float]:
  """Protocol metrics of a model output `sr` (H, W, C) in [0, 1] for `pair`."""
  from jaxsr.protocol import metrics
  sr = np.asarray(sr, np.float64)
  if sr.shape != pair.target.shape:
    raise ValueError(f'{pair.name}: SR shape {sr.shape} != target shape '
                     f'{pair.target.shape}')
  if pair.target.shape[-1] == 1:
    return metrics.evaluate_y_pair(sr[..., 0] * 255.0, pair.target[..., 0],
                                   pair.crop_border)
  return metrics.evaluate_pair(sr, pair.target, pair.crop_border)
