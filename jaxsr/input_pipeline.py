"""Random paired training patches, deterministic in (seed, step, process).

Patches are cut as the papers cut them, from whole-image degradations:

* models with learned upsampling get an LR p×p patch at (i, j) of the
  whole LR image and the HR s·p×s·p patch at (s·i, s·j);
* models on the bicubic input get the patch of the WHOLE-IMAGE bicubic
  upsampling (imresize(imresize(hr, 1/s), hr size)) and the HR patch at the
  same place, both exactly hr_patch_size. Upsampling a crop of the LR instead
  gives a border band that evaluation never shows the model. The model
  skips its own upsampling for an input that already has the output size
  (`models.sizing.bicubic_upsample`), and because every scale then has the
  one HR-sized shape, a batch mixes scales (VDSR's multi-scale training).

An image too small for a scale's patch is dropped for that scale only.

The draws of step k (scale, image, corner, flip/rotation of every patch of
the global batch) depend only on (seed, k), so a resumed run sees exactly
the batches an uninterrupted one would, on any number of devices or hosts;
each process cuts only its slice.

The images are held in a window (`config.data.window_images`; 0: the whole
set when it fits `POOL_MAX_BYTES`, else a window of about `WINDOW_MAX_BYTES`):
window w serves steps [w·N, (w+1)·N) (N = `config.data.window_steps`), its
images drawn from (seed, w), and the next window is loaded on a thread while
the current one trains, so resident memory does not grow with the set. A
window's pixels lie in flat pools (`patch_pools`), on the accelerator
(`DeviceCutter`: one jitted gather per step; the host sends 9 integers per
patch) or in host memory (`HostCutter`: the same gather in NumPy); both give
the same batches.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Iterator, Sequence

import numpy as np

from jaxsr import config_checks
from jaxsr import patch_pools
from jaxsr.datasets import training_source
from jaxsr.datasets.training_source import DegradedImage, TrainingSource

# window_images=0 holds the whole set up to this size, and the 'auto'
# sampler keeps a pool on the accelerator up to it.
POOL_MAX_BYTES = 4 << 30
# window_images=0 on a larger set: windows of about this size.
WINDOW_MAX_BYTES = 256 << 20
# Window draws use their own stream: default_rng([seed, window, WINDOW_STREAM]).
WINDOW_STREAM = 0x77696E


def lr_patch_size(scale: float, patch_size: int | None,
                  hr_patch_size: int | None) -> int:
  """LR patch side: given directly, or from an HR side (VDSR's 41×41)."""
  if patch_size:
    return int(patch_size)
  if hr_patch_size:
    return max(1, int(round(hr_patch_size / scale)))
  raise config_checks.ConfigError('config.data: set patch_size (LR pixels) or hr_patch_size')


def input_patch_size(scale: float, patch_size: int | None, hr_patch_size: int | None,
                     on_bicubic: bool) -> int:
  """The side of a model-input patch; for models on the bicubic input the HR
  side, hr_patch_size exactly (or s·patch_size when that is set)."""
  if not on_bicubic:
    return lr_patch_size(scale, patch_size, hr_patch_size)
  if patch_size:
    return int(patch_size) * int(scale)
  return int(hr_patch_size)


def degrade_all(images: Sequence[np.ndarray], scales: Sequence[float], channels: int,
                patch_sizes: dict[float, int], on_bicubic: bool = False
                ) -> dict[float, list[DegradedImage]]:
  """Degrade every image at every scale, dropping per scale the images too
  small for that scale's patch (`patch_sizes`: input side per scale)."""
  targets = [training_source.hr_target(img, channels) for img in images]
  out = {}
  for scale in scales:
    out[scale] = [training_source.degrade(img, scale, channels, on_bicubic, hr)
                  for img, hr in zip(images, targets)
                  if training_source.fits(img.shape[:2], scale, patch_sizes[scale], on_bicubic)]
    _check_pool(out[scale], scale, patch_sizes[scale], on_bicubic)
  return out


def _check_pool(pool, scale, side, on_bicubic):
  if not pool:
    raise config_checks.ConfigError(
        f'config.data: no training image is large enough for '
        f'{"HR" if on_bicubic else "LR"} patches of {side} pixels at x{int(scale)}')


def load_pools(source: TrainingSource, scales: Sequence[float], patch_sizes: dict[float, int],
               on_bicubic: bool) -> dict[float, list[DegradedImage]]:
  """Every image of `source` at every scale, as degrade_all (image by image,
  so that a FolderSource decodes each once and its scales share the target)."""
  out = {scale: [] for scale in scales}
  for index in range(len(source)):
    shape = source.hr_shape(index)
    for scale in scales:
      if training_source.fits(shape, scale, patch_sizes[scale], on_bicubic):
        out[scale].append(source.load(index, scale))
  for scale in scales:
    _check_pool(out[scale], scale, patch_sizes[scale], on_bicubic)
  return out


def training_sampler(c, source: TrainingSource, sharding, *, process_index: int = 0,
                     process_count: int = 1) -> 'PatchSampler':
  """The sampler of a training config (`config.data`) over `source`'s images
  (`datasets.sources.open_training_source`)."""
  from jaxsr import models
  scales = config_checks.train_scales(c)
  on_bicubic = models.model_info(c.model.name).works_on_bicubic
  patch_sizes = {s: input_patch_size(s, c.data.patch_size, c.data.hr_patch_size, on_bicubic)
                 for s in scales}
  table = patch_pools.ImageTable(source, scales, patch_sizes, on_bicubic)
  images = window_size(table, c.data.get('window_images', 0), c.model.channels)
  kind = c.data.get('sampler', 'auto')
  on_device = kind == 'device' or (
      kind == 'auto' and table.pool_bytes(images, c.model.channels) <= POOL_MAX_BYTES)
  return PatchSampler(source, table=table, patch_sizes=patch_sizes,
                      global_batch_size=c.train.batch_size, seed=c.train.seed,
                      augment=c.data.augment, window_images=images,
                      window_steps=c.data.get('window_steps', 1000),
                      process_index=process_index, process_count=process_count,
                      sharding=sharding, on_device=on_device)


def window_size(table: patch_pools.ImageTable, window_images: int, channels: int) -> int:
  """Images per window: `window_images`, or 0: the whole set if it fits
  POOL_MAX_BYTES, else as many of the largest images as fit WINDOW_MAX_BYTES."""
  usable = len(table.usable)
  if window_images:
    return min(window_images, usable)
  if table.pool_bytes(usable, channels) <= POOL_MAX_BYTES:
    return usable
  return max(1, min(usable, WINDOW_MAX_BYTES // table.pool_bytes(1, channels)))


@dataclasses.dataclass(frozen=True)
class Draws:
  """The random choices of one step's global batch, one row per patch."""
  window: int
  entry: np.ndarray    # index into the window's Layout
  top: np.ndarray      # input-patch corner
  left: np.ndarray
  flip: np.ndarray     # 0..7, see patch_pools.dihedral
  image: np.ndarray    # source index
  scale: np.ndarray


class _Loading:
  """A window loading on a daemon thread (an executor's thread would hold
  the interpreter at exit until its load ends)."""

  def __init__(self, fn):
    self._done = threading.Event()
    self._result = self._error = None
    threading.Thread(target=self._run, args=(fn,), daemon=True).start()

  def _run(self, fn):
    try:
      self._result = fn()
    except BaseException as e:  # re-raised by result()
      self._error = e
    finally:
      self._done.set()

  def result(self):
    self._done.wait()
    if self._error is not None:
      raise self._error
    return self._result


class PatchSampler:
  """Samples this process's share of the global batch of a given step.

  `source`: a TrainingSource; `patch_sizes`: scale -> input-patch side, one
  side for all scales (a batch mixes them); `table`: the source's
  patch_pools.ImageTable, built here when None (then `scales` and
  `on_bicubic` are needed). `window_images`: images per window, 0 for all.
  `sharding`: the batch's sharding over the devices; with `on_device`, the
  patches are cut on the accelerator and each batch is already the global
  array.
  """

  def __init__(self, source: TrainingSource, *, patch_sizes: dict[float, int],
               global_batch_size: int, seed: int, table: patch_pools.ImageTable | None = None,
               scales: Sequence[float] = (), on_bicubic: bool = False, augment: bool = True,
               window_images: int = 0, window_steps: int = 1000, process_index: int = 0,
               process_count: int = 1, sharding=None, on_device: bool = False):
    if global_batch_size % process_count:
      raise config_checks.ConfigError(f'batch size {global_batch_size} is not divisible by the '
                                      f'{process_count} processes')
    sides = sorted({patch_sizes[s] for s in (table.scales if table else scales)})
    if len(sides) > 1:
      raise config_checks.ConfigError(
          f'config.data: patches of {sides} pixels for scales {sorted(patch_sizes)}: a batch '
          f'mixing scales needs one patch size (set hr_patch_size)')
    self.source = source
    self.table = table or patch_pools.ImageTable(source, scales, patch_sizes, on_bicubic)
    self.scales = self.table.scales
    if len(set(self.table.hr_steps)) > 1:
      raise ValueError('PatchSampler: a batch cannot mix LR inputs of several scales')
    self.side = sides[0]
    self.hr_side = self.side * self.table.hr_steps[0]
    usable = len(self.table.usable)
    self.window_images = min(window_images or usable, usable)
    self.window_steps = int(window_steps)
    self.windowed = self.window_images < usable
    self.capacity = self.table.capacity(self.window_images)
    if max(self.capacity) >= 2**31:  # the device gather indexes rows in int32
      raise config_checks.ConfigError(
          f'config.data.window_images={window_images}: {self.window_images} images hold '
          f'{max(self.capacity):,} pixels, over 2**31; set a smaller window')
    self.global_batch_size = global_batch_size
    self.seed = seed
    self.augment = augment
    per_process = global_batch_size // process_count
    self.local = slice(process_index * per_process, (process_index + 1) * per_process)
    if on_device and sharding is None:
      raise ValueError('PatchSampler: on_device needs the batch sharding')
    sides = (self.side, self.hr_side)
    self.cutter = DeviceCutter(sharding, sides) if on_device else HostCutter(sharding, sides)
    self._layouts: dict[int, patch_pools.Layout] = {}
    self._held: dict[int, patch_pools.Pool] = {}
    self._next: tuple[int, _Loading] | None = None
    if not self.windowed:
      self._pool(0)  # the whole set, up front

  def window_of(self, step: int) -> int:
    return step // self.window_steps if self.windowed else 0

  def layout(self, window: int) -> patch_pools.Layout:
    if window not in self._layouts:
      images = self.table.usable
      if self.windowed:
        rng = np.random.default_rng([self.seed, window, WINDOW_STREAM])
        images = np.sort(rng.choice(images, self.window_images, replace=False))
      if len(self._layouts) > 4:
        self._layouts.pop(next(iter(self._layouts)))
      self._layouts[window] = self.table.layout(images)
    return self._layouts[window]

  def draws(self, step: int) -> Draws:
    window = self.window_of(step)
    lay = self.layout(window)
    rng = np.random.default_rng([self.seed, step])
    n = self.global_batch_size
    present = np.flatnonzero(lay.counts)  # a window may lack a scale's images
    u = rng.random((5, n))  # one call: each call costs more than its numbers
    which = present[(u[0] * len(present)).astype(np.int64)]
    entry = lay.first[which] + (u[1] * lay.counts[which]).astype(np.int64)
    top = (u[2] * (lay.height[entry] - self.side + 1)).astype(np.int64)
    left = (u[3] * (lay.width[entry] - self.side + 1)).astype(np.int64)
    flip = (u[4] * 8).astype(np.int64) if self.augment else np.zeros(n, np.int64)
    return Draws(window=window, entry=entry, top=top, left=left, flip=flip,
                 image=lay.entry_image[entry], scale=np.asarray(self.scales)[which])

  def batch(self, step: int) -> dict:
    """{'lr': model inputs, 'hr': targets} of this process's slice of step `step`."""
    d = self.draws(step)
    lay = self.layout(d.window)
    e, st = d.entry, lay.hr_step[d.entry]
    index = np.stack([lay.input_off[e], lay.width[e], d.top, d.left, lay.target_off[e],
                      lay.target_width[e], st * d.top, st * d.left, d.flip], axis=1)
    return self.cutter.cut(self._pool(d.window), index, self.local)

  def to_device(self, batch: dict):
    return self.cutter.to_device(batch)

  @property
  def resident_bytes(self) -> int:
    """Bytes of the windows held now (the current one, and the next once loaded)."""
    held = list(self._held.values())
    if self._next is not None and self._next[1]._done.is_set() and not self._next[1]._error:
      held.append(self._next[1].result())
    return sum(p.nbytes for p in held)

  def _load(self, layout: patch_pools.Layout) -> patch_pools.Pool:
    pool = patch_pools.load_pool(self.source, self.scales, layout, self.capacity)
    return self.cutter.place(pool)

  def _pool(self, window: int) -> patch_pools.Pool:
    if window in self._held:
      return self._held[window]
    if self._next is not None and self._next[0] == window:
      pool = self._next[1].result()
    else:
      if self._next is not None:  # a jump: the source serves one load at a time
        try:
          self._next[1].result()
        except Exception:  # a window no longer needed
          pass
      pool = self._load(self.layout(window))
    self._held, self._next = {window: pool}, None
    if self.windowed:
      following = self.layout(window + 1)  # here: the loading thread touches no state
      self._next = (window + 1, _Loading(lambda: self._load(following)))
    return pool


class HostCutter:
  """Patches cut in NumPy from pools in host memory; batches go to the devices after."""

  def __init__(self, sharding, sides: tuple[int, int]):
    self.sharding = sharding
    self.sides = sides

  def place(self, pool: patch_pools.Pool) -> patch_pools.Pool:
    return pool

  def cut(self, pool: patch_pools.Pool, index: np.ndarray, local: slice) -> dict:
    return patch_pools.cut_on_host(pool, index[local], self.sides)

  def to_device(self, batch):
    import jax
    if self.sharding is None:
      return batch
    return {k: jax.make_array_from_process_local_data(self.sharding, v)
            for k, v in batch.items()}


class DeviceCutter:
  """Patches cut on the accelerator from pools replicated in its memory:
  each step sends the index rows and one jitted gather cuts the global batch
  straight into its sharding, so the host does no per-pixel work."""

  def __init__(self, sharding, sides: tuple[int, int]):
    import functools
    import jax
    from jax.sharding import NamedSharding, PartitionSpec
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    self._put = lambda a: jax.make_array_from_callback(a.shape, replicated, lambda i: a[i])
    self._gather = jax.jit(functools.partial(patch_pools.cut_on_device, sides=sides),
                           out_shardings=(sharding, sharding))

  def place(self, pool: patch_pools.Pool) -> patch_pools.Pool:
    return patch_pools.Pool(self._put(pool.inputs), self._put(pool.targets))

  def cut(self, pool: patch_pools.Pool, index: np.ndarray, local: slice) -> dict:
    lr, hr = self._gather(pool.inputs, pool.targets, index.astype(np.int32))
    return {'lr': lr, 'hr': hr}

  def to_device(self, batch):
    return batch


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
