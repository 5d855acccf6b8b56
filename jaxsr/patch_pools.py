"""Flat pools of training images, and the patches cut from them in one gather.

A window (a set of a source's images, all scales) is laid out from the
images' shapes alone (`ImageTable`, `Layout`): every model input and every
HR target is flattened into rows of one (rows, C) array, inputs in one,
targets (one per image, shared by its scales) in the other, with no padding.
A patch is then a gather of `side` runs of rows, run y starting at
`offset + (top + y)·width + left`, and its flip/rotation is applied by
selects (`DIHEDRAL_STEPS`). The same index arithmetic runs in NumPy
(`cut_on_host`) and in a jitted gather on the accelerator (`cut_on_device`),
so both give the same batches.

A pool is stored as uint8 when the source's values are on uint8 levels (the
HR targets are), else float32 (the protocol's LR is not rounded), and
converted to float32 when cut as k·float32(1/255), within 1 ulp of k / 255.
Arrays of a window are sized for the largest window of its size, so every
window has the same shapes and the gather compiles once.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from jaxsr import config_checks
from jaxsr.datasets import training_source

# float32(k / 255) for each uint8 level k, as the sources compute targets.
LEVELS = (np.arange(256) / 255.0).astype(np.float32)


def on_uint8_levels(a: np.ndarray) -> bool:
  """Whether every value of `a` is float32(k / 255) for an integer k."""
  scaled = np.asarray(a, np.float32) * np.float32(255)
  return bool(np.array_equal(LEVELS[np.clip(np.rint(scaled), 0, 255).astype(np.uint8)], a))


def dihedral(x: np.ndarray, k: int) -> np.ndarray:
  """One of the 8 flips/rotations of an (..., H, W, C) array."""
  if k >= 4:
    x = x[..., ::-1, :]
  return np.rot90(x, k % 4, axes=(-3, -2))


# dihedral(x, k) as (transpose, flip rows, flip columns), applied in that order.
DIHEDRAL_STEPS = np.array([[0, 0, 0], [1, 1, 0], [0, 1, 1], [1, 0, 1],
                           [0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 1]], bool)


class ImageTable:
  """What a source's images are at each scale, from `hr_shape` alone."""

  def __init__(self, source, scales: Sequence[float], patch_sizes: dict[float, int],
               on_bicubic: bool):
    self.scales = sorted(scales)
    self.shapes = np.array([source.hr_shape(i) for i in range(len(source))],
                           np.int64).reshape(-1, 2)
    self.fits = np.array([[training_source.fits(tuple(hw), s, patch_sizes[s], on_bicubic)
                           for hw in self.shapes] for s in self.scales], bool).reshape(
                               len(self.scales), -1)
    # (scale, image, 2): the model input's (h, w), as the source makes it.
    self.input_hw = np.stack([(self.shapes - self.shapes % int(s)) //
                              (1 if on_bicubic else int(s)) for s in self.scales])
    self.hr_steps = [1 if on_bicubic else int(s) for s in self.scales]
    for n, s in enumerate(self.scales):
      if not self.fits[n].any():
        raise config_checks.ConfigError(
            f'config.data: no training image is large enough for '
            f'{"HR" if on_bicubic else "LR"} patches of {patch_sizes[s]} pixels at x{int(s)}')
    self.usable = np.flatnonzero(self.fits.any(axis=0))
    self.input_rows = (np.prod(self.input_hw, axis=-1) * self.fits).sum(axis=0)
    self.target_rows = np.prod(self.shapes, axis=-1) * self.fits.any(axis=0)

  def capacity(self, images: int) -> tuple[int, int]:
    """(input rows, target rows) that hold any `images` usable images."""
    biggest = lambda rows: int(np.sort(rows[self.usable])[::-1][:images].sum())
    return biggest(self.input_rows), biggest(self.target_rows)

  def pool_bytes(self, images: int, channels: int) -> int:
    """Estimated bytes of a window: float32 inputs, uint8 targets."""
    inputs, targets = self.capacity(images)
    return (4 * inputs + targets) * channels

  def layout(self, images: np.ndarray) -> 'Layout':
    """Where `images` (sorted source indices) lie in a window's pools."""
    entry_scale, entry_image = [], []
    for n in range(len(self.scales)):
      kept = images[self.fits[n, images]]
      entry_scale += [n] * len(kept)
      entry_image += list(kept)
    entry_scale, entry_image = np.array(entry_scale, np.int64), np.array(entry_image, np.int64)
    hw = self.input_hw[entry_scale, entry_image]
    target_off = np.concatenate([[0], np.cumsum(self.target_rows[images])[:-1]])
    slot = {int(i): n for n, i in enumerate(images)}
    return Layout(
        images=images, entry_scale=entry_scale, entry_image=entry_image,
        counts=np.bincount(entry_scale, minlength=len(self.scales)),
        height=hw[:, 0], width=hw[:, 1],
        input_off=np.concatenate([[0], np.cumsum(hw[:, 0] * hw[:, 1])[:-1]]).astype(np.int64),
        target_off=target_off[[slot[int(i)] for i in entry_image]].astype(np.int64),
        target_width=self.shapes[entry_image, 1],
        hr_step=np.array(self.hr_steps, np.int64)[entry_scale])


@dataclasses.dataclass(frozen=True)
class Layout:
  """A window's entries (one per image and scale it fits), ordered by scale
  then image, and where each lies in the flat pools."""
  images: np.ndarray        # source indices, sorted
  entry_scale: np.ndarray   # index into ImageTable.scales
  entry_image: np.ndarray   # source index
  counts: np.ndarray        # entries per scale
  height: np.ndarray        # model input (h, w)
  width: np.ndarray
  input_off: np.ndarray     # first row in the inputs pool
  target_off: np.ndarray    # first row of the image's target
  target_width: np.ndarray
  hr_step: np.ndarray

  @property
  def first(self) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)


@dataclasses.dataclass
class Pool:
  """A window's pixels: inputs and targets as (rows, C), uint8 or float32."""
  inputs: object
  targets: object

  @property
  def nbytes(self) -> int:
    return int(self.inputs.nbytes + self.targets.nbytes)


class _Rows:
  """A (rows, C) array kept as uint8 until a value off the uint8 levels comes."""

  def __init__(self, rows: int, channels: int):
    self.array = np.zeros((rows, channels), np.uint8)

  def put(self, offset: int, a: np.ndarray):
    if self.array.dtype == np.uint8:
      if on_uint8_levels(a):
        a = np.rint(a * np.float32(255))
      else:
        self.array = _as_float(np, self.array)
    self.array[offset:offset + a.shape[0] * a.shape[1]] = a.reshape(-1, a.shape[-1])


def load_pool(source, scales: Sequence[float], layout: Layout,
              capacity: tuple[int, int]) -> Pool:
  """The pixels of `layout`'s entries, in (rows, C) arrays of `capacity` rows."""
  inputs = targets = None
  stored = set()
  for order in np.argsort(layout.entry_image, kind='stable'):  # image by image
    index, scale = int(layout.entry_image[order]), scales[layout.entry_scale[order]]
    d = source.load(index, scale)
    want = (int(layout.height[order]), int(layout.width[order]))
    if d.lr.shape[:2] != want or d.hr.shape[1] != layout.target_width[order]:
      raise ValueError(f'training image {index} at x{scale:g}: the source gave an input of '
                       f'{d.lr.shape[:2]}, but its hr_shape makes it {want}')
    if inputs is None:
      inputs, targets = _Rows(capacity[0], d.lr.shape[-1]), _Rows(capacity[1], d.lr.shape[-1])
    inputs.put(int(layout.input_off[order]), d.lr)
    if index not in stored:  # one target per image, shared by its scales
      stored.add(index)
      targets.put(int(layout.target_off[order]), d.hr)
  return Pool(inputs.array, targets.array)


def _orient(xp, x, flip):
  """dihedral(x[b], flip[b]) for a (B, side, side, C) batch, by selects."""
  steps = xp.asarray(DIHEDRAL_STEPS)[flip][:, None, None, None, :]
  x = xp.where(steps[..., 0], xp.swapaxes(x, 1, 2), x)
  x = xp.where(steps[..., 1], x[:, ::-1], x)
  return xp.where(steps[..., 2], x[:, :, ::-1], x)


def _as_float(xp, x):
  # k·float32(1/255): one IEEE multiply, so the same bits on every backend
  # (XLA turns a division into this multiply anyway); within 1 ulp of k/255.
  return x.astype(xp.float32) * np.float32(1 / 255) if x.dtype == xp.uint8 else x


def _starts(xp, off, width, top, left, side):
  """(B, side): the pool row where each row of each patch begins."""
  return (off[:, None] + (top[:, None] + xp.arange(side)) * width[:, None] + left[:, None])


def cut_on_host(pool: Pool, index: np.ndarray, sides: tuple[int, int]) -> dict[str, np.ndarray]:
  """`index` rows: (input_off, width, top, left, target_off, target_width,
  hr_top, hr_left, flip), one per patch; `sides`: (input, target) patch sides."""
  in_off, w, top, left, t_off, t_w, h_top, h_left, flip = index.T

  def runs(a, starts, side):  # (B, side, side, C)
    windows = np.lib.stride_tricks.sliding_window_view(a, side, axis=0)
    return windows[starts].transpose(0, 1, 3, 2)
  lr = runs(pool.inputs, _starts(np, in_off, w, top, left, sides[0]), sides[0])
  hr = runs(pool.targets, _starts(np, t_off, t_w, h_top, h_left, sides[1]), sides[1])
  return {'lr': np.ascontiguousarray(_as_float(np, _orient(np, lr, flip))),
          'hr': np.ascontiguousarray(_as_float(np, _orient(np, hr, flip)))}


def cut_on_device(inputs, targets, index, *, sides: tuple[int, int]):
  """As cut_on_host, jitted, from pools on the device: each patch row is one
  contiguous run of the pool, so the gather copies runs, not pixels."""
  import jax
  import jax.numpy as jnp
  from jax import lax
  in_off, w, top, left, t_off, t_w, h_top, h_left, flip = index.T

  def runs(a, starts, side):
    c = a.shape[-1]
    out = jax.vmap(lambda s: lax.dynamic_slice(a, (s, 0), (side, c)))(starts.reshape(-1))
    return out.reshape(starts.shape[0], side, side, c)
  lr = runs(inputs, _starts(jnp, in_off, w, top, left, sides[0]), sides[0])
  hr = runs(targets, _starts(jnp, t_off, t_w, h_top, h_left, sides[1]), sides[1])
  # Oriented before the conversion: on uint8 pools the selects move a quarter of the bytes.
  return _as_float(jnp, _orient(jnp, lr, flip)), _as_float(jnp, _orient(jnp, hr, flip))
