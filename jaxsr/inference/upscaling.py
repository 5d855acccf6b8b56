"""Upscaling one image file with a model: weights, reading, colour, writing.

Colour: a Y model (channels=1, the papers' setting) upscales BT.601 Y and the
chroma Cb/Cr by bicubic; an RGB model upscales RGB. Grayscale stays
grayscale (a Y model takes it as its own Y), alpha is upscaled by bicubic,
and palette, 16-bit, float, CMYK and EXIF orientation are normalised by
`image_io`. Outputs are written to a temporary name and renamed, so no
partial file is ever left, and an output never replaces its input.
"""

from __future__ import annotations

import math
import os
import pathlib
from typing import Callable

import numpy as np

from jaxsr import image_io
from jaxsr.inference import batch
from jaxsr.inference import tiling
from jaxsr.protocol import color

_ALPHA_MODES = ('RGBA', 'LA', 'PA', 'RGBa', 'La')
_NO_ALPHA_SUFFIXES = ('.jpg', '.jpeg')
DEFAULT_SCALE = 2.0


def read_image_with_alpha(path: str | os.PathLike) -> np.ndarray:
  """uint8 (H, W, C): C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.

  `image_io` does the reading, its checks and the conversion of the pixels;
  the alpha channel, if the file has one, is taken from the same decoded
  (and EXIF-oriented) image.
  """
  im = image_io.open_image(path)
  image = image_io.to_array(im)
  if im.mode not in _ALPHA_MODES and 'transparency' not in im.info:
    return image
  try:
    alpha = np.asarray(im.convert('RGBA'))[..., 3:]
  except (OSError, ValueError) as e:
    raise image_io.ImageReadError(f'{path}: cannot read its alpha channel: {e}') from None
  return np.concatenate([image, alpha], axis=-1)


def _to_uint8(x: np.ndarray) -> np.ndarray:
  return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def colour_pipeline(image_channels: int, model_channels: int
                    ) -> tuple[Callable[[np.ndarray], np.ndarray],
                               Callable[[np.ndarray], np.ndarray]]:
  """(prepare, finish) for `Upscaler.upscale`: uint8 tiles <-> model space.

  The model input in [0, 1] is, for a Y model (model_channels=1), BT.601 Y of
  a colour image followed by its Cb, Cr (which bicubic upscales), or a gray
  image itself (its own Y, as `color.y_channel` takes it); for an RGB model,
  RGB, gray being R = G = B and averaged back. Alpha comes last (bicubic).
  """
  if image_channels not in (1, 2, 3, 4) or model_channels not in (1, 3):
    raise ValueError(f'cannot upscale {image_channels} channels with a '
                     f'{model_channels}-channel model')
  is_colour = image_channels >= 3
  has_alpha = image_channels in (2, 4)
  pixels = 3 if is_colour else 1
  ycbcr = model_channels == 1 and is_colour
  main = 3 if is_colour or model_channels == 3 else 1  # SR channels before alpha

  def prepare(tile: np.ndarray) -> np.ndarray:
    x = tile[..., :pixels] / 255.0
    if ycbcr:
      x = color.rgb_to_ycbcr(x) / 255.0
    elif model_channels == 3:
      x = color.to_rgb(x)
    if has_alpha:
      x = np.concatenate([x, tile[..., -1:] / 255.0], axis=-1)
    return x.astype(np.float32)

  def finish(sr: np.ndarray) -> np.ndarray:
    x = np.asarray(sr[..., :main], np.float64)
    if ycbcr:
      x = color.ycbcr_to_rgb(x * 255.0)
    elif not is_colour and main == 3:
      x = x.mean(axis=-1, keepdims=True)
    if has_alpha:
      x = np.concatenate([x, sr[..., -1:]], axis=-1)
    return _to_uint8(x)

  return prepare, finish


def check_scale(scale: float | None) -> None:
  """Raises ValueError unless `scale` is None (the default) or a factor above 1."""
  if scale is not None and not (math.isfinite(scale) and scale > 1):
    raise ValueError(f'--scale={scale:g}: the upscaling factor must be a number '
                     'above 1, e.g. 2, 3 or 4')


def load_model(*, model: str | None = None, workdir: str | None = None,
               checkpoint: str | None = None, scale: float | None = None,
               channels: int | None = None):
  """(description, model name, model, variables) from a run, a checkpoint,
  shipped weights (`jaxsr.pretrained`) or bicubic; default the shipped EEDS."""
  from jaxsr import models
  from jaxsr import pretrained
  check_scale(scale)
  if workdir or checkpoint:
    from jaxsr import runs
    if checkpoint and not model:
      raise ValueError('--checkpoint needs --model (the registered model name)')
    name, sr_model, params, _ = runs.load_trained(
        workdir, model, checkpoint, scale, channels or (None if workdir else 1))
    if scale:
      sr_model = models.at_scale(name, sr_model, scale)
    return f'{name} from {workdir or checkpoint}', name, sr_model, params
  name, scale = model or 'eeds', scale or DEFAULT_SCALE
  if name == 'bicubic':
    return 'bicubic', name, models.get_model(name, scale=scale,
                                             channels=channels or 3), {}
  sr_model, params = pretrained.load(name, scale)
  return f'pretrained {pretrained.file_stem(name, scale)}', name, sr_model, params


def upscale_file(source: pathlib.Path, dest: pathlib.Path,
                 upscaler: tiling.Upscaler, overwrite: bool = False,
                 progress=None) -> tuple[int, ...]:
  """Reads, upscales and writes one image; returns the output shape.

  `progress` wraps the tiles as in `Upscaler.upscale`.
  """
  batch.check_output(dest, overwrite, source)
  image = read_image_with_alpha(source)
  if image.shape[-1] in (2, 4) and dest.suffix.lower() in _NO_ALPHA_SUFFIXES:
    raise ValueError(f'has an alpha channel, which {dest.suffix} cannot '
                     'store: pick --format=png')
  prepare, finish = colour_pipeline(image.shape[-1], upscaler.model.channels)
  sr = upscaler.upscale(image, prepare=prepare, finish=finish, progress=progress)
  del image  # Encoding copies sr (Pillow keeps 4 bytes a pixel): free what we can.
  image_io.write_image(dest, sr, overwrite=overwrite)
  return sr.shape
