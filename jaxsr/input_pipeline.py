"""Random paired training patches, deterministic in (seed, step, process).

Every HR image is modcropped and degraded once per training scale
(`degradation`), then each step samples aligned patches: LR p×p at (i, j) and
HR s·p×s·p at (s·i, s·j), with a random flip/90° rotation. The global batch of
step k depends only on (seed, k), so a resumed run sees exactly the batches
an uninterrupted run would, on any number of devices or hosts. One scale per step (drawn at random when
several are configured) keeps shapes static per scale: at most one compilation
per scale.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Iterator, Sequence

import numpy as np

from jaxsr import config_checks
from jaxsr import datasets
from jaxsr.protocol import degradation


@dataclasses.dataclass(frozen=True)
class DegradedImage:
  lr: np.ndarray      # (h, w, C) float32 in [0, 1]
  hr: np.ndarray      # (s·h, s·w, C) float32 in [0, 1]


def lr_patch_size(scale: float, patch_size: int | None,
                  hr_patch_size: int | None) -> int:
  """LR patch side: given directly, or from an HR side (VDSR's 41×41)."""
  if patch_size:
    return int(patch_size)
  if hr_patch_size:
    return max(1, int(round(hr_patch_size / scale)))
  raise config_checks.ConfigError('config.data: set patch_size (LR pixels) or hr_patch_size')


def load_training_images(names: Sequence[str], data_dir: str | None,
                         max_images: int | None = None) -> list[np.ndarray]:
  images = []
  for name in names:
    image_set = datasets.get_dataset(name, data_dir)
    n = len(image_set) if not max_images else min(len(image_set), max_images)
    images += [image_set.load(i) for i in range(n)]
  return images


def degrade_all(images: Sequence[np.ndarray], scales: Sequence[float],
                channels: int, min_lr_side: int) -> dict[float, list[DegradedImage]]:
  """Degrade every image at every scale, dropping images too small to crop."""
  out = {}
  for scale in scales:
    s = int(scale)
    pool = []
    for img in images:
      pair = degradation.make_pair(img, s, channels)
      if min(pair.lr.shape[:2]) < min_lr_side:
        continue
      hr = np.asarray(pair.target, np.float32) / 255.0
      pool.append(DegradedImage(lr=pair.lr, hr=hr))
    if not pool:
      raise config_checks.ConfigError(
          f'config.data.patch_size: no training image is large enough for LR '
          f'patches of {min_lr_side} pixels at x{s}')
    out[scale] = pool
  return out


def _dihedral(x: np.ndarray, k: int) -> np.ndarray:
  """One of the 8 flips/rotations of an (..., H, W, C) array."""
  if k >= 4:
    x = x[..., ::-1, :]
  return np.rot90(x, k % 4, axes=(-3, -2))


class PatchSampler:
  """Samples this process's share of the global batch of a given step.

  All random choices are drawn for the whole global batch from (seed, step),
  and each process crops only its slice, so the batches do not depend on how
  many processes or devices there are.
  """

  def __init__(self, pools: dict[float, list[DegradedImage]], *,
               global_batch_size: int, patch_sizes: dict[float, int], seed: int,
               augment: bool = True, process_index: int = 0, process_count: int = 1):
    if global_batch_size % process_count:
      raise config_checks.ConfigError(f'batch size {global_batch_size} is not divisible by the '
                       f'{process_count} processes')
    self.pools = pools
    self.scales = sorted(pools)
    self.global_batch_size = global_batch_size
    self.patch_sizes = patch_sizes
    self.seed = seed
    self.augment = augment
    per_process = global_batch_size // process_count
    self.local = slice(process_index * per_process, (process_index + 1) * per_process)

  def batch(self, step: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([self.seed, step])
    scale = self.scales[rng.integers(len(self.scales))]
    s, p = int(scale), self.patch_sizes[scale]
    pool = self.pools[scale]
    n = self.global_batch_size
    images = rng.integers(len(pool), size=n)
    corners = rng.random((n, 2))
    flips = rng.integers(8, size=n) if self.augment else np.zeros(n, int)
    lr_batch, hr_batch = [], []
    for b in range(n)[self.local]:
      img = pool[images[b]]
      h, w = img.lr.shape[:2]
      i = int(corners[b, 0] * (h - p + 1))
      j = int(corners[b, 1] * (w - p + 1))
      lr = _dihedral(img.lr[i:i + p, j:j + p], flips[b])
      hr = _dihedral(img.hr[s * i:s * (i + p), s * j:s * (j + p)], flips[b])
      lr_batch.append(lr)
      hr_batch.append(hr)
    return {'lr': np.ascontiguousarray(np.stack(lr_batch)),
            'hr': np.ascontiguousarray(np.stack(hr_batch))}


def prefetch(batch_fn, steps: range, to_device, depth: int = 2) -> Iterator:
  """Yields to_device(batch_fn(step)) for steps, produced `depth` ahead on a thread."""
  q: queue.Queue = queue.Queue(maxsize=depth)
  stop = threading.Event()

  def produce():
    try:
      for step in steps:
        if stop.is_set():
          return
        q.put((step, to_device(batch_fn(step))))
    except BaseException as e:  # surfaced in the consumer
      q.put((None, e))
      return
    q.put((None, None))

  thread = threading.Thread(target=produce, daemon=True)
  thread.start()
  try:
    while True:
      step, item = q.get()
      if step is None:
        if item is not None:
          raise item
        return
      yield step, item
  finally:
    stop.set()
    while thread.is_alive():
      try:
        q.get_nowait()
      except queue.Empty:
        thread.join(timeout=0.05)
