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
each process cuts only its slice. The cutting is done on the host
(`HostPatches`, a loop over patches) or on the accelerator from a pool
resident in its memory (`DevicePatches`, one jitted gather); both give the
same batches.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Iterator, Sequence

import numpy as np

from jaxsr import config_checks
from jaxsr import datasets
from jaxsr.datasets import training_source
from jaxsr.datasets.training_source import DegradedImage, TrainingSource

# The 'auto' sampler keeps the pool on the accelerator up to this size.
DEVICE_POOL_MAX_BYTES = 4 << 30


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


def load_training_images(names: Sequence[str], data_dir: str | None,
                         max_images: int | None = None) -> list[np.ndarray]:
  images = []
  for name in names:
    image_set = datasets.get_dataset(name, data_dir)
    n = len(image_set) if not max_images else min(len(image_set), max_images)
    images += [image_set.load(i) for i in range(n)]
  return images


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
  (`training_source.open_training_source`)."""
  from jaxsr import models
  scales = config_checks.train_scales(c)
  on_bicubic = models.model_info(c.model.name).works_on_bicubic
  patch_sizes = {s: input_patch_size(s, c.data.patch_size, c.data.hr_patch_size, on_bicubic)
                 for s in scales}
  pools = load_pools(source, scales, patch_sizes, on_bicubic)
  kind = c.data.get('sampler', 'auto')
  on_device = kind == 'device' or (
      kind == 'auto' and device_pool_bytes(pools) <= DEVICE_POOL_MAX_BYTES)
  return PatchSampler(pools, global_batch_size=c.train.batch_size, patch_sizes=patch_sizes,
                      seed=c.train.seed, augment=c.data.augment,
                      process_index=process_index, process_count=process_count,
                      sharding=sharding, on_device=on_device)


def _dihedral(x: np.ndarray, k: int) -> np.ndarray:
  """One of the 8 flips/rotations of an (..., H, W, C) array."""
  if k >= 4:
    x = x[..., ::-1, :]
  return np.rot90(x, k % 4, axes=(-3, -2))


@dataclasses.dataclass(frozen=True)
class Draws:
  """The random choices of one step's global batch, one row per patch."""
  entry: np.ndarray    # index into PatchSampler.entries
  top: np.ndarray      # input-patch corner
  left: np.ndarray
  flip: np.ndarray     # 0..7, see _dihedral


class PatchSampler:
  """Samples this process's share of the global batch of a given step.

  `pools`: scale -> its images; `patch_sizes`: scale -> input-patch side,
  which must be one side for all scales when the inputs are HR-sized.
  `sharding`: the batch's sharding over the devices; with `on_device`, the
  patches are cut on the accelerator (DevicePatches) rather than on the host
  (HostPatches), and each batch is already the global array.
  """

  def __init__(self, pools: dict[float, list[DegradedImage]], *,
               global_batch_size: int, patch_sizes: dict[float, int], seed: int,
               augment: bool = True, process_index: int = 0, process_count: int = 1,
               sharding=None, on_device: bool = False):
    if global_batch_size % process_count:
      raise config_checks.ConfigError(f'batch size {global_batch_size} is not divisible by the '
                       f'{process_count} processes')
    self.scales = sorted(pools)
    if len({patch_sizes[s] for s in self.scales}) > 1:
      raise config_checks.ConfigError(
          f'config.data: patches of {sorted(set(patch_sizes.values()))} pixels for scales '
          f'{self.scales}: a batch mixing scales needs one patch size (set hr_patch_size)')
    self.entries = [img for s in self.scales for img in pools[s]]
    self.side = patch_sizes[self.scales[0]]
    steps = {img.step for img in self.entries}
    if len(steps) > 1:
      raise ValueError('PatchSampler: a batch cannot mix LR and HR-sized inputs')
    self.hr_side = self.side * steps.pop()
    counts = np.array([len(pools[s]) for s in self.scales])
    self._first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    self._counts = counts
    self._heights = np.array([img.lr.shape[0] for img in self.entries])
    self._widths = np.array([img.lr.shape[1] for img in self.entries])
    self._hr_steps = np.array([img.step for img in self.entries])
    self.global_batch_size = global_batch_size
    self.seed = seed
    self.augment = augment
    per_process = global_batch_size // process_count
    self.local = slice(process_index * per_process, (process_index + 1) * per_process)
    if on_device and sharding is None:
      raise ValueError('PatchSampler: on_device needs the batch sharding')
    self.cutter = DevicePatches(self, sharding) if on_device else HostPatches(self, sharding)

  def draws(self, step: int) -> Draws:
    rng = np.random.default_rng([self.seed, step])
    n = self.global_batch_size
    which = rng.integers(len(self.scales), size=n)
    u = rng.random((n, 3))
    entry = self._first[which] + (u[:, 0] * self._counts[which]).astype(np.int64)
    top = (u[:, 1] * (self._heights[entry] - self.side + 1)).astype(np.int64)
    left = (u[:, 2] * (self._widths[entry] - self.side + 1)).astype(np.int64)
    flip = rng.integers(8, size=n) if self.augment else np.zeros(n, np.int64)
    return Draws(entry=entry, top=top, left=left, flip=flip)

  def batch(self, step: int) -> dict:
    """{'lr': model inputs, 'hr': targets} of this process's slice of step `step`."""
    return self.cutter.cut(self.draws(step))

  def to_device(self, batch: dict):
    return self.cutter.to_device(batch)


class HostPatches:
  """Cuts patches in NumPy, one at a time; batches go to the devices after."""

  def __init__(self, sampler: PatchSampler, sharding=None):
    self.s = sampler
    self.sharding = sharding

  def cut(self, d: Draws) -> dict[str, np.ndarray]:
    s = self.s
    lr_batch, hr_batch = [], []
    for b in range(s.global_batch_size)[s.local]:
      img = s.entries[d.entry[b]]
      i, j, st = d.top[b], d.left[b], img.step
      lr = img.lr[i:i + s.side, j:j + s.side]
      hr = img.hr[st * i:st * i + s.hr_side, st * j:st * j + s.hr_side]
      lr_batch.append(_dihedral(lr, d.flip[b]))
      hr_batch.append(_dihedral(hr, d.flip[b]))
    return {'lr': np.ascontiguousarray(np.stack(lr_batch)),
            'hr': np.ascontiguousarray(np.stack(hr_batch))}

  def to_device(self, batch):
    import jax
    if self.sharding is None:
      return batch
    return {k: jax.make_array_from_process_local_data(self.sharding, v)
            for k, v in batch.items()}


def padded_pool(arrays: Sequence[np.ndarray]) -> np.ndarray:
  """(N, max H, max W, C) float32, each array in its top-left corner."""
  h = max(a.shape[0] for a in arrays)
  w = max(a.shape[1] for a in arrays)
  out = np.zeros((len(arrays), h, w, arrays[0].shape[-1]), np.float32)
  for n, a in enumerate(arrays):
    out[n, :a.shape[0], :a.shape[1]] = a
  return out


def device_pool_bytes(pools: dict[float, list[DegradedImage]]) -> int:
  """What DevicePatches would hold on each device."""
  entries = [img for s in pools for img in pools[s]]
  targets = {id(img.hr): img.hr for img in entries}.values()
  size = lambda arrays: (len(arrays) * max(a.shape[0] for a in arrays) *
                         max(a.shape[1] for a in arrays) * arrays[0].shape[-1] * 4)
  return size([img.lr for img in entries]) + size(list(targets))


class DevicePatches:
  """Cuts patches on the accelerator from a pool held in its memory.

  The inputs and the targets (one per image, shared by its scales) are padded
  into two arrays replicated on every device; each step sends only the draws
  (a few integers per patch) and one jitted gather cuts the global batch
  straight into its sharding, so the host does no per-pixel work.
  """

  def __init__(self, sampler: PatchSampler, sharding):
    import jax
    from jax.sharding import NamedSharding, PartitionSpec
    self.s = sampler
    self.sharding = sharding
    target_ids = {}
    for img in sampler.entries:
      target_ids.setdefault(id(img.hr), (len(target_ids), img.hr))
    self._target = np.array([target_ids[id(img.hr)][0] for img in sampler.entries])
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    put = lambda a: jax.make_array_from_callback(a.shape, replicated, lambda idx: a[idx])
    self.inputs = put(padded_pool([img.lr for img in sampler.entries]))
    self.targets = put(padded_pool([hr for _, hr in target_ids.values()]))
    self._gather = jax.jit(
        _gather_patches, static_argnames=('side', 'hr_side'),
        out_shardings=(sharding, sharding))

  def cut(self, d: Draws) -> dict:
    s = self.s
    st = s._hr_steps[d.entry]
    index = np.stack([d.entry, self._target[d.entry], d.top, d.left, st * d.top,
                      st * d.left, d.flip], axis=1).astype(np.int32)
    lr, hr = self._gather(self.inputs, self.targets, index, side=s.side, hr_side=s.hr_side)
    return {'lr': lr, 'hr': hr}

  def to_device(self, batch):
    return batch


def _dihedral_jax(x, k):
  import jax.numpy as jnp
  x = jnp.where(k >= 4, jnp.flip(x, axis=-2), x)
  return jnp.stack([jnp.rot90(x, r, axes=(0, 1)) for r in range(4)])[k % 4]


def _gather_patches(inputs, targets, index, *, side: int, hr_side: int):
  """Global batch of (input, target) patches; `index` rows as DevicePatches.cut."""
  import jax
  from jax import lax
  c = inputs.shape[-1]

  def one(row):
    e, t, i, j, hi, hj, k = (row[n] for n in range(7))
    x = lax.dynamic_slice(inputs, (e, i, j, 0), (1, side, side, c))[0]
    y = lax.dynamic_slice(targets, (t, hi, hj, 0), (1, hr_side, hr_side, c))[0]
    return _dihedral_jax(x, k), _dihedral_jax(y, k)
  return jax.vmap(one)(index)


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
