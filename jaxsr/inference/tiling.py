"""Tiled SR inference: any image size, bounded memory, bounded compilations.

How an image is cut, per side, in LR pixels:
* Tiles of `tile_size` core pixels, each run with `overlap` more pixels of
  context on every side; only the SR pixels of the core are kept. The last
  tile of a row or column is shifted back to end at the image border, so the
  image itself is never padded to a multiple of the tile size.
* Context beyond the image border is the image mirrored, ... 1 0 | 0 1 ...
  n-1 | n-1 ..., MATLAB imresize's symmetric extension. Tiles are read by
  mirrored indices, so no padded copy of the image is ever made.
* A side shorter than a tile is rounded up to a multiple of 64 (the extra
  pixels are mirrored too), so tile shapes come from a small set: at most
  (tile_size / 64)² shapes are compiled, whatever the sizes of the images.

Whole-image inference is the same computation with a single tile. Since all
tiles read the same mirrored image, tiled and whole-image outputs agree to
float rounding whenever `overlap` covers the model's receptive radius, the
distance in LR pixels over which an input pixel can change an output pixel
(`measure_receptive_radius`). `default_overlap` is 16 LR pixels, which covers
every model of the zoo at x2-x4 with its registry settings (EEDS: 10, VDSR:
12 at x2) except the deep EDSRs, which get their measured radius, and
csc_decomp, whose FFT decomposition is global (tiles then differ from the
whole image by a small, decaying amount near their borders).
"""

from __future__ import annotations

import fractions
import math
from typing import Any, Callable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsr.protocol.imresize import imresize

DEFAULT_TILE_SIZE = 256
DEFAULT_OVERLAP = 16
BUCKET = 64

# measure_receptive_radius at x2, x3 and x4 with the registry's settings
# (max over scales), for the models whose radius exceeds DEFAULT_OVERLAP;
# edsr measured with res_scale=1 (0.1³² underflows the probe's gradient).
# A deeper model (e.g. more edsr num_blocks) needs a larger --tile_overlap.
_WIDE_RECEPTIVE_FIELDS = {'edsr_baseline': 36, 'edsr': 68, 'csc_decomp': 32}


def default_overlap(model_name: str) -> int:
  """A conservative overlap (LR pixels) for a registered model."""
  return max(DEFAULT_OVERLAP, _WIDE_RECEPTIVE_FIELDS.get(model_name, 0))


def measure_receptive_radius(model, variables, *, limit: int = 48) -> int:
  """Largest LR distance at which an input pixel changes an output pixel.

  Structural: every weight is set to 1/fan_in and every bias (and slope) to
  1, and the input to ones, so no ReLU is inactive and no path cancels; the
  gradient of one LR pixel's SR block is then non-zero exactly on its
  receptive field. Returns `limit` when the field reaches the probe's border
  (a global model such as csc_decomp).
  """
  def positive(p):
    fan_in = p.size // p.shape[-1] if p.ndim > 1 else 1
    return jnp.full_like(p, 1.0 / fan_in)

  probe = jax.tree.map(positive, variables)
  size, centre = 2 * limit + 1, limit
  scale = float(model.scale)
  lo, hi = math.floor(scale * centre), math.ceil(scale * (centre + 1))

  def block_sum(x):
    return model.apply(probe, x)[0, lo:hi, lo:hi].sum()

  x = jnp.ones((1, size, size, model.channels), jnp.float32)
  grad = np.asarray(jax.grad(block_sum)(x))[0]
  if not np.all(np.isfinite(grad)):
    raise ValueError('measure_receptive_radius: non-finite gradient')
  support = np.argwhere(np.any(grad != 0, axis=-1))
  return int(np.abs(support - centre).max())


def mirror_indices(start: int, stop: int, n: int) -> np.ndarray:
  """Indices start..stop-1 mirrored into [0, n): ... 1 0 | 0 1 ... n-1 | n-1 ..."""
  period = np.concatenate([np.arange(n), np.arange(n)[::-1]])
  return period[np.arange(start, stop) % (2 * n)]


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def lr_step(scale: float) -> int:
  """The smallest number of LR pixels that maps to a whole number of SR pixels.

  For a scale p/q, tiles start at multiples of q so that each covers whole SR
  pixels; bicubic-input models then resize each tile by exactly p/q, MATLAB's
  imresize(img, scale) convention.
  """
  ratio = fractions.Fraction(float(scale)).limit_denominator(BUCKET)
  if abs(float(ratio) - float(scale)) > 1e-9:
    raise ValueError(f'tiling needs a scale p/q with q <= {BUCKET}, got {scale}')
  return ratio.denominator


class Tile(NamedTuple):
  """A tile's core in LR pixels; it may extend past the image (mirrored)."""
  y: int
  x: int
  h: int
  w: int


class Upscaler:
  """A model, its weights and a jitted forward pass, run tile by tile.

  The model sees the first `model.channels` channels of the image; any
  channels after them (chroma for a Y model, alpha) are upscaled with MATLAB
  bicubic (`imresize`, float64) on the same tiles. `compilations` counts the
  shapes compiled so far.
  """

  def __init__(self, model, params: Any, *, tile_size: int = DEFAULT_TILE_SIZE,
               overlap: int = DEFAULT_OVERLAP, self_ensemble: bool = False):
    if tile_size < 1 or overlap < 0:
      raise ValueError(f'need tile_size >= 1 and overlap >= 0, got '
                       f'{tile_size} and {overlap}')
    self.model = model
    self.params = params
    self.scale = float(model.scale)
    self.step = lr_step(self.scale)
    self.tile_size = _round_up(tile_size, self.step)
    self.overlap = _round_up(overlap, self.step)
    self.bucket = math.lcm(BUCKET, self.step)
    self.self_ensemble = self_ensemble
    self.compilations = 0
    self._forward = jax.jit(self._traced_forward)

  def sr_length(self, n: int) -> int:
    return int(round(self.scale * n))

  def _traced_forward(self, params, x: jnp.ndarray) -> jnp.ndarray:
    self.compilations += 1  # Python runs here once per traced shape.

    def run(batch):
      size = tuple(self.sr_length(n) for n in batch.shape[1:3])
      return self.model.apply(params, batch, output_size=size)

    if not self.self_ensemble:
      return run(x)

    def flips(v):  # (1, H, W, C) -> its four flips as a batch.
      return jnp.concatenate([v, v[:, ::-1], v[:, :, ::-1], v[:, ::-1, ::-1]])

    def unflip_sum(y):  # Undoes each flip and sums: (4, H, W, C) -> (H, W, C).
      return y[0] + y[1, ::-1] + y[2, :, ::-1] + y[3, ::-1, ::-1]

    # The eight symmetries of the square: four flips, with and without a
    # transpose (which together give the rotations).
    total = unflip_sum(run(flips(x)))
    total += jnp.swapaxes(unflip_sum(run(flips(jnp.swapaxes(x, 1, 2)))), 0, 1)
    return (total / 8)[None]

  def upscale_tile(self, tile: np.ndarray) -> np.ndarray:
    """SR of one float (H, W, C >= model channels) array, borders included."""
    c = self.model.channels
    if tile.ndim != 3 or tile.shape[-1] < c:
      raise ValueError(f'expected (H, W, {c} or more channels), got {tile.shape}')
    sr = np.asarray(self._forward(self.params, jnp.asarray(tile[None, ..., :c],
                                                           jnp.float32)))[0]
    if tile.shape[-1] == c:
      return sr
    side = imresize(np.asarray(tile[..., c:], np.float64),
                    output_size=sr.shape[:2])
    return np.concatenate([sr, side.astype(np.float32)], axis=-1)

  def _core_length(self, n: int) -> int:
    return min(_round_up(n, self.bucket), self.tile_size)

  def _starts(self, n: int, core: int) -> list[int]:
    last = _round_up(max(n - core, 0), self.step)
    return list(range(0, n - core, core)) + [last]

  def tiles(self, h: int, w: int) -> list[Tile]:
    """The tiles covering an (h, w) LR image, row by row."""
    ch, cw = self._core_length(h), self._core_length(w)
    return [Tile(y, x, ch, cw) for y in self._starts(h, ch)
            for x in self._starts(w, cw)]

  def upscale(self, image: np.ndarray, *,
              prepare: Callable[[np.ndarray], np.ndarray] | None = None,
              finish: Callable[[np.ndarray], np.ndarray] | None = None,
              progress: Callable[[Iterator[Tile], int], Iterator[Tile]] | None = None
              ) -> np.ndarray:
    """SR of an (h, w, C) image, tile by tile.

    Args:
      image: any dtype; only one tile of it is converted at a time.
      prepare: maps a tile of `image` to the float (H, W, C) input in [0, 1]
        (model channels first, then bicubic ones); default: the tile itself.
      finish: maps the SR core of a tile (float32) to the output's pixels,
        e.g. uint8 RGB; default: the float32 SR itself.
      progress: wraps the tile iterator (given it and the tile count), e.g.
        a progress bar.
    Returns:
      (round(s·h), round(s·w), C') in finish's dtype.
    """
    h, w = image.shape[:2]
    out_h, out_w = self.sr_length(h), self.sr_length(w)
    m, s = self.overlap, self.scale
    tiles = self.tiles(h, w)
    out = None
    for tile in (progress(iter(tiles), len(tiles)) if progress else tiles):
      rows = mirror_indices(tile.y - m, tile.y + tile.h + m, h)
      cols = mirror_indices(tile.x - m, tile.x + tile.w + m, w)
      lr = image[rows[:, None], cols[None, :]]
      sr = self.upscale_tile(prepare(lr) if prepare else lr)
      top, left = round(s * tile.y), round(s * tile.x)
      border = round(s * m)
      core = sr[border:border + min(round(s * tile.h), out_h - top),
                border:border + min(round(s * tile.w), out_w - left)]
      core = finish(core) if finish else core
      if out is None:
        out = np.empty((out_h, out_w) + core.shape[2:], core.dtype)
      out[top:top + core.shape[0], left:left + core.shape[1]] = core
    return out
