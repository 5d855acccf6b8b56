"""Benchmark evaluation: full images, the standard protocol, any model.

The evaluator of `config.eval` kind 'benchmark' (see `jaxsr.evaluators`).
"""

from __future__ import annotations

import collections
import functools
import math
from typing import Callable, Iterable, Sequence

import numpy as np

from jaxsr import datasets
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
    self.image_set = datasets.get_dataset(dataset, data_dir)
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
    plan = self.padded_shapes(scale) if getattr(predict, 'paddable', False) else {}
    rows = []
    for pair in self.pairs[scale]:
      size = pair.target.shape[:2]
      padded = plan.get(pair.lr.shape[:2])
      sr = predict_padded(predict, pair.lr[None], size, padded, int(scale))[0]
      rows.append({'image': pair.name, **degradation.score(sr, pair)})
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
  from jaxsr.inference import tiling
  h, w = lr.shape[1:3]
  size = tuple(int(v) for v in output_size)
  if padded is None or tuple(padded) == (h, w) or size != (scale * h, scale * w):
    return np.asarray(predict(lr, size))
  rows = tiling.mirror_indices(0, padded[0], h)
  cols = tiling.mirror_indices(0, padded[1], w)
  out = predict(np.asarray(lr)[:, rows[:, None], cols[None, :]],
                (scale * padded[0], scale * padded[1]))
  return np.asarray(out)[:, :size[0], :size[1]]


@functools.lru_cache(maxsize=64)
def _jitted_apply(model):
  """One jitted forward per model (params an argument): compiled once per
  shape for the life of the process, not once per `model_predict`."""
  import jax

  @functools.partial(jax.jit, static_argnums=2)
  def apply(params, lr, output_size):
    return model.apply(params, lr, output_size=output_size)
  return apply


def model_predict(model, params) -> Predict:
  """A predict function from a Flax model and its variables (jit per shape).

  Marked `paddable`: evaluators may run it on padded images (see
  BenchmarkEvaluator).
  """
  apply = _jitted_apply(model)

  def predict(lr, output_size):
    return np.asarray(apply(params, lr, tuple(int(v) for v in output_size)))
  predict.paddable = True
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
