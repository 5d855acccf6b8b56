"""Benchmark evaluation: full images, the standard protocol, any model.

The evaluator of `config.eval` kind 'benchmark' (see `jaxsr.evaluators`).
"""

from __future__ import annotations

import collections
import functools
import math
from typing import Callable, Iterable, Sequence

import numpy as np

from jaxsr.datasets import sources
from jaxsr.evaluators.results import scale_key
from jaxsr.protocol import degradation

Predict = Callable[[np.ndarray, tuple[int, int]], np.ndarray]

# At most this many compiled LR shapes per set and scale when a model is
# evaluated: images are padded to the shapes of `plan_buckets`.
EVAL_MAX_SHAPES = 3


class BenchmarkEvaluator:
  """PSNR/SSIM (Y) of a model on one image set at several scales.

  max_shapes > 0: a predict function marked `paddable` (model_predict's) sees
  each LR image padded at its bottom and right, by MATLAB's symmetric
  extension, to one of at most `max_shapes` shapes per scale
  (`plan_buckets`), and its SR is cropped back, so a set compiles at most
  that many times. The pixels near the bottom and right borders (within the
  model's receptive field) of a padded image then see the mirrored image
  instead of the convolutions' zero padding, which moves PSNR very little
  (measured in benchmarks/RESULTS.md, section 4). bicubic_predict is never
  padded, and 0 runs every shape as it is.

  The images are read and degraded when the evaluator is built, so a set
  that cannot be scored (an image too small for a scale, an unreadable file)
  fails before any model runs.
  """

  def __init__(self, dataset: str, scales: Sequence[float], channels: int = 1,
               data_dir: str | None = None, max_images: int | None = None,
               max_shapes: int = EVAL_MAX_SHAPES):
    self.image_set = sources.image_set(dataset, data_dir)  # tfds when prepared
    self.name = self.image_set.name
    self.scales = tuple(float(s) for s in scales)
    self.channels = channels
    self.max_images = max_images
    self.max_shapes = max_shapes
    self.pairs = self._make_pairs()

  def _make_pairs(self) -> dict[float, list[degradation.SRPair]]:
    n = len(self.image_set)
    if self.max_images:
      n = min(n, self.max_images)
    pairs = {s: [] for s in self.scales}
    for i in range(n):
      name, img = self.image_set.image_names[i], self.image_set.load(i)
      # Errors name the file of a folder set, else <set>/<image>.
      where = (str(self.image_set.paths[i]) if self.image_set.paths
               else f'{self.name}/{name}')
      for s in self.scales:
        degradation.check_scorable(img.shape, s, where)
        pairs[s].append(degradation.make_pair(img, s, self.channels, name))
    return pairs

  def padded_shapes(self, scale: float) -> dict[tuple[int, int], tuple[int, int]]:
    """LR shape -> the shape it is padded to at `scale` ({} when not padding)."""
    if not self.max_shapes or not float(scale).is_integer():
      return {}
    return plan_buckets([pair.lr.shape[:2] for pair in self.pairs[scale]],
                        self.max_shapes)

  def per_image(self, predict: Predict, scale: float) -> list[dict]:
    """One row per image, in the set's order. The images of one padded shape
    go to `predict` together, `predict.batch_size` at a time (default 1)."""
    plan = self.padded_shapes(scale) if getattr(predict, 'paddable', False) else {}
    pairs = self.pairs[scale]
    groups = collections.defaultdict(list)
    for i, pair in enumerate(pairs):
      groups[_model_input(pair.lr.shape[:2], pair.target.shape[:2], plan, int(scale))
             ].append(i)
    batch = max(1, getattr(predict, 'batch_size', 1))
    rows = [None] * len(pairs)
    for (shape, output_size), members in groups.items():
      for start in range(0, len(members), batch):
        chunk = members[start:start + batch]
        srs = predict_bucket(predict, [pairs[i].lr for i in chunk], shape, output_size,
                             [pairs[i].target.shape[:2] for i in chunk])
        for i, sr in zip(chunk, srs):
          rows[i] = {'image': pairs[i].name, **degradation.score(sr, pairs[i])}
    return rows

  def run_scale(self, predict: Predict, scale: float) -> dict[str, float]:
    """{'psnr_y', 'ssim_y', 'n'} at one of the scales, averaged over images."""
    rows = self.per_image(predict, float(scale))
    return {'psnr_y': float(np.mean([r['psnr_y'] for r in rows])),
            'ssim_y': float(np.mean([r['ssim_y'] for r in rows])),
            'n': len(rows)}

  def run(self, predict: Predict) -> dict[str, dict[str, float]]:
    """{'x2': {'psnr_y', 'ssim_y', 'n'}, ...} averaged over images."""
    return {scale_key(s): self.run_scale(predict, s) for s in self.scales}

  @functools.cache
  def bicubic(self) -> dict[str, dict[str, float]]:
    """The bicubic figure for the same images (computed once, NumPy)."""
    return self.run(bicubic_predict)


def bicubic_predict(lr: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
  """MATLAB bicubic upscaling of a float batch, NumPy float64."""
  from jaxsr.protocol.imresize import imresize
  return np.stack([imresize(x, output_size=output_size) for x in lr])


def plan_buckets(shapes: Iterable[tuple[int, int]], max_shapes: int
                 ) -> dict[tuple[int, int], tuple[int, int]]:
  """Maps every (h, w) to a shape (H >= h, W >= w) shared by at most `max_shapes`.

  Greedy: one bucket per distinct shape, then the two buckets whose union
  (their element-wise largest shape) adds the fewest padded pixels over the
  images in them are merged, until at most `max_shapes` remain.
  """
  counts = collections.Counter(tuple(int(v) for v in s) for s in shapes)
  distinct = sorted(counts)
  members = [[s] for s in distinct]
  size = np.array(distinct, dtype=np.int64).reshape(-1, 2)
  weight = np.array([counts[s] for s in distinct], dtype=np.int64)
  while len(members) > max(1, max_shapes):
    union = np.maximum(size[:, None], size[None])
    cost = (union.prod(-1) * (weight[:, None] + weight[None])
            - (size.prod(-1) * weight)[:, None] - (size.prod(-1) * weight)[None])
    np.fill_diagonal(cost, np.iinfo(np.int64).max)
    i, j = sorted(np.unravel_index(np.argmin(cost), cost.shape))
    size[i], weight[i] = union[i, j], weight[i] + weight[j]
    members[i] += members.pop(j)
    size, weight = np.delete(size, j, 0), np.delete(weight, j)
  return {s: (int(h), int(w)) for group, (h, w) in zip(members, size) for s in group}


def predict_padded(predict: Predict, lr: np.ndarray, output_size: tuple[int, int],
                   padded: tuple[int, int] | None, scale: int) -> np.ndarray:
  """predict(lr), run on lr mirror-padded to `padded` and cropped back.

  Unpadded when `padded` is None or the LR's own shape, or when the output
  is not exactly scale × the LR size.
  """
  h, w = lr.shape[1:3]
  size = tuple(int(v) for v in output_size)
  shape, out_size = _model_input((h, w), size, {(h, w): padded} if padded else {}, scale)
  return np.stack(predict_bucket(predict, list(lr), shape, out_size, [size] * len(lr)))


def predict_bucket(predict: Predict, images: Sequence[np.ndarray], shape: tuple[int, int],
                   output_size: tuple[int, int], crops: Sequence[tuple[int, int]]
                   ) -> list[np.ndarray]:
  """predict on `images` (h ≤ H, w ≤ W) mirror-padded at the bottom and right
  to `shape` (H, W), as one batch; each output cropped to its `crops` size."""
  from jaxsr.inference import tiling

  def pad(image):
    if image.shape[:2] == tuple(shape):
      return image
    return np.asarray(image)[tiling.mirror_indices(0, shape[0], image.shape[0])[:, None],
                             tiling.mirror_indices(0, shape[1], image.shape[1])[None, :]]
  out = np.asarray(predict(np.stack([pad(im) for im in images]), tuple(output_size)))
  return [sr[:c[0], :c[1]] for sr, c in zip(out, crops)]


def _model_input(lr_hw: tuple[int, int], size: tuple[int, int],
                 plan: dict[tuple[int, int], tuple[int, int]], scale: int
                 ) -> tuple[tuple[int, int], tuple[int, int]]:
  """(the LR shape the model sees, its output size) for one image: its bucket
  of `plan` when its output is exactly scale × its LR, else its own shape."""
  lr_hw, size = tuple(int(v) for v in lr_hw), tuple(int(v) for v in size)
  padded = plan.get(lr_hw)
  if padded is None or size != (scale * lr_hw[0], scale * lr_hw[1]):
    return lr_hw, size
  return tuple(padded), (scale * padded[0], scale * padded[1])


@functools.cache
def one_device_mesh():
  """The first device as a mesh: model_predict's default."""
  import jax
  from jax.sharding import Mesh
  return Mesh(np.asarray(jax.devices()[:1]), ('data',))


def local_mesh():
  """This process's devices as a mesh (jaxsr.evaluate)."""
  import jax
  from jax.sharding import Mesh
  return Mesh(np.asarray(jax.local_devices()), ('data',))


@functools.lru_cache(maxsize=64)
def _jitted_apply(model, mesh):
  """One jitted forward per model and mesh (params an argument): compiled once
  per shape for the life of the process, not once per `model_predict`. The
  output is replicated, so that every process reads all of it."""
  import jax
  from jax.sharding import NamedSharding, PartitionSpec as P

  @functools.partial(jax.jit, static_argnums=2, out_shardings=NamedSharding(mesh, P()))
  def apply(params, lr, output_size):
    return model.apply(params, lr, output_size=output_size)
  return apply


def model_predict(model, params, mesh=None) -> Predict:
  """A predict function from a Flax model and its variables (jit per shape).

  `mesh`: a device Mesh with a 'data' axis (training's, or `local_mesh()`);
  default `one_device_mesh()`. A batch is split over its devices, padded to a
  multiple of their number with repeats of its last image (dropped after);
  the parameters are placed replicated on the mesh, which costs nothing when
  they already are (training's state). On a mesh spanning several processes,
  every process calls it with the same images and gets the whole output.

  Marked `paddable`: evaluators may run it on padded images, and
  `batch_size` (the mesh's device count) images at a time (see
  BenchmarkEvaluator).
  """
  import jax
  from jax.sharding import NamedSharding, PartitionSpec as P
  mesh = mesh or one_device_mesh()
  devices = mesh.devices.size
  apply = _jitted_apply(model, mesh)
  params = jax.device_put(params, NamedSharding(mesh, P()))
  split = NamedSharding(mesh, P('data'))

  def predict(lr, output_size):
    lr = np.asarray(lr)
    n = lr.shape[0]
    if n % devices:
      lr = np.concatenate([lr, np.repeat(lr[-1:], devices - n % devices, axis=0)])
    batch = jax.make_array_from_callback(lr.shape, split, lambda index: lr[index])
    out = apply(params, batch, tuple(int(v) for v in output_size))
    return np.asarray(out.addressable_data(0))[:n]
  predict.paddable = True
  predict.batch_size = devices
  return predict


def parse_scales(text: str | Iterable) -> list[float]:
  items = text.split(',') if isinstance(text, str) else text
  try:
    scales = [float(s) for s in items if str(s).strip()]
  except ValueError:
    raise ValueError(f'scales must be numbers separated by commas, got {text!r}')
  if not scales or any(not math.isfinite(s) or s <= 1 for s in scales):
    raise ValueError(f'scales must be > 1, got {text!r}')
  return scales
