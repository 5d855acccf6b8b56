"""Benchmark evaluation: full images, the standard protocol, any model.

Evaluators are built by name from a config (`build_evaluator`), as in
big_vision; each one scores a `predict(lr_batch, output_size) -> sr_batch`
function, so the same code serves `jaxsr.evaluate`, training and reports.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Iterable, Sequence

import numpy as np

from jaxsr import datasets
from jaxsr import degradation

Predict = Callable[[np.ndarray, tuple[int, int]], np.ndarray]


def scale_key(scale: float) -> str:
  """'x2' for 2, 'x3.333' for 1/0.3: the key used in result dictionaries."""
  return f'x{int(scale)}' if float(scale).is_integer() else f'x{scale:.4g}'


class BenchmarkEvaluator:
  """PSNR/SSIM (Y) of a model on one image set at several scales."""

  def __init__(self, dataset: str, scales: Sequence[float], channels: int = 1,
               data_dir: str | None = None, max_images: int | None = None):
    self.image_set = datasets.get_dataset(dataset, data_dir)
    self.name = self.image_set.name
    self.scales = tuple(float(s) for s in scales)
    self.channels = channels
    self.max_images = max_images

  @functools.cached_property
  def pairs(self) -> dict[float, list[degradation.SRPair]]:
    n = len(self.image_set)
    if self.max_images:
      n = min(n, self.max_images)
    images = [(self.image_set.image_names[i], self.image_set.load(i))
              for i in range(n)]
    return {s: [degradation.make_pair(img, s, self.channels, name)
                for name, img in images] for s in self.scales}

  def per_image(self, predict: Predict, scale: float) -> list[dict]:
    rows = []
    for pair in self.pairs[scale]:
      size = pair.target.shape[:2]
      sr = np.asarray(predict(pair.lr[None], size))[0]
      rows.append({'image': pair.name, **degradation.score(sr, pair)})
    return rows

  def run(self, predict: Predict) -> dict[str, dict[str, float]]:
    """{'x2': {'psnr_y', 'ssim_y', 'n'}, ...} averaged over images."""
    out = {}
    for scale in self.scales:
      rows = self.per_image(predict, scale)
      out[scale_key(scale)] = {
          'psnr_y': float(np.mean([r['psnr_y'] for r in rows])),
          'ssim_y': float(np.mean([r['ssim_y'] for r in rows])),
          'n': len(rows)}
    return out

  @functools.cache
  def bicubic(self) -> dict[str, dict[str, float]]:
    """The bicubic figure for the same images (computed once, NumPy)."""
    return self.run(bicubic_predict)


def bicubic_predict(lr: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
  """MATLAB bicubic upscaling of a float batch, NumPy float64."""
  from jaxsr.imresize import imresize
  return np.stack([imresize(x, output_size=output_size) for x in lr])


# model_predict's default `bucket`: 0, every LR shape as it is. Measured on
# the 2-core CPU (benchmarks/RESULTS.md): bucket=128 compiles Set5 in 3, 2, 1
# shapes at x2, x3, x4 instead of 5, but the padded pixels cost more time
# than the compilations save for VDSR and EEDS (compiled once a process), and
# move PSNR by up to +0.007 dB (trained EEDS, Set14).
EVAL_BUCKET = 0


@functools.lru_cache(maxsize=64)
def _jitted_apply(model):
  """One jitted forward per model (params an argument): compiled once per
  shape for the life of the process, not once per `model_predict`."""
  import jax

  @functools.partial(jax.jit, static_argnums=2)
  def apply(params, lr, output_size):
    return model.apply(params, lr, output_size=output_size)
  return apply


def model_predict(model, params, *, bucket: int = EVAL_BUCKET) -> Predict:
  """A predict function from a Flax model and its variables (jit per shape).

  bucket > 0: an LR image is padded at its bottom and right, by MATLAB's
  symmetric extension (`tiling.mirror_indices`, as the tiled upscaler), to
  sides that are multiples of `bucket`, run, and the SR cropped back, so
  images of similar sizes share one compilation. Only when the requested
  size is exactly scale × the LR size (any integer scale; else unpadded).
  The pixels near the bottom and right borders (within the model's receptive
  field) then see the mirrored image instead of the convolutions' zero
  padding: a small change (measured in benchmarks/RESULTS.md); bicubic is
  unchanged. bucket=0 runs every shape as it is.
  """
  from jaxsr import tiling
  apply = _jitted_apply(model)
  scale = float(model.scale)

  def predict(lr, output_size):
    size = tuple(int(v) for v in output_size)
    h, w = lr.shape[1:3]
    padded = tuple(tiling._round_up(n, bucket) for n in (h, w)) if bucket else (h, w)
    if (padded != (h, w) and size == (scale * h, scale * w)
        and all(float(scale * n).is_integer() for n in padded)):
      rows = tiling.mirror_indices(0, padded[0], h)
      cols = tiling.mirror_indices(0, padded[1], w)
      lr = np.asarray(lr)[:, rows[:, None], cols[None, :]]
      out = apply(params, lr, tuple(int(scale * n) for n in padded))
      return np.asarray(out)[:, :size[0], :size[1]]
    return np.asarray(apply(params, lr, size))
  return predict


EVALUATORS = {'benchmark': BenchmarkEvaluator}


def build_evaluator(kind: str, **kwargs):
  if kind not in EVALUATORS:
    raise ValueError(f'unknown evaluator {kind!r}; valid: {sorted(EVALUATORS)}')
  return EVALUATORS[kind](**kwargs)


def format_table(results: dict, title: str = '') -> str:
  """Markdown table: one row per set, PSNR/SSIM per scale."""
  scales = sorted({k for r in results.values() for k in r},
                  key=lambda k: float(k[1:]))
  head = '| set | ' + ' | '.join(f'{k} PSNR / SSIM' for k in scales) + ' |'
  lines = ([f'### {title}'] if title else []) + [
      head, '|---' * (len(scales) + 1) + '|']
  for name, by_scale in results.items():
    cells = [f"{by_scale[k]['psnr_y']:.2f} / {by_scale[k]['ssim_y']:.4f}"
             if k in by_scale else '' for k in scales]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def parse_scales(text: str | Iterable) -> list[float]:
  items = text.split(',') if isinstance(text, str) else text
  try:
    scales = [float(s) for s in items if str(s).strip()]
  except ValueError:
    raise ValueError(f'scales must be numbers separated by commas, got {text!r}')
  if not scales or any(not math.isfinite(s) or s <= 1 for s in scales):
    raise ValueError(f'scales must be > 1, got {text!r}')
  return scales
