"""The figures of `jaxsr.report`: convergence curves and visual comparisons."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxsr import color  # noqa: E402
from jaxsr import datasets  # noqa: E402
from jaxsr import degradation  # noqa: E402
from jaxsr import evaluation  # noqa: E402
from jaxsr.imresize import imresize  # noqa: E402


def convergence_plot(runs: Sequence[dict], path: pathlib.Path) -> None:
  """Eval PSNR of the first evaluated set against wall-clock time and step."""
  fig, (ax_time, ax_step) = plt.subplots(1, 2, figsize=(11, 4))
  key = None
  for run in runs:
    rows = [r for r in run['rows'] if any(k.endswith('/psnr_y') for k in r)]
    if not rows:
      continue
    key = key or next(k for k in rows[0] if k.startswith('eval/') and k.count('/') == 2
                      and k.endswith('/psnr_y'))
    rows = [r for r in rows if key in r]
    minutes = [r.get('train/elapsed_s', 0.0) / 60 for r in rows]
    ax_time.plot(minutes, [r[key] for r in rows], marker='o', label=run['label'])
    ax_step.plot([r['step'] for r in rows], [r[key] for r in rows], marker='o',
                 label=run['label'])
    bicubic = rows[-1].get(key.replace('/psnr_y', '/bicubic_psnr_y'))
  if key is None:
    plt.close(fig)
    raise ValueError('no run has evaluation rows in metrics.jsonl')
  for ax, xlabel in ((ax_time, 'training time (min)'), (ax_step, 'step')):
    if bicubic is not None:
      ax.axhline(bicubic, color='gray', linestyle='--', label='bicubic')
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f'PSNR (Y, dB) on {key.split("/")[1]}')
    ax.grid(alpha=0.3)
  ax_step.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _default_image(sets: Sequence[str], data_dir: str | None) -> tuple[str, np.ndarray]:
  for name in sets:
    if datasets.has_dataset(name, data_dir):
      image_set = datasets.get_dataset(name, data_dir)
      names = list(image_set.image_names)
      i = names.index('butterfly') if 'butterfly' in names else 0
      return names[i], image_set.load(i)
  image_set = datasets.get_dataset('embedded_test')
  return image_set.image_names[0], image_set.load(0)


def _load_image(image: str | None, sets, data_dir) -> tuple[str, np.ndarray]:
  if image:
    from jaxsr import image_io
    return pathlib.Path(image).stem, image_io.read_image(image)
  return _default_image(sets, data_dir)


def _colourise(sr: np.ndarray, chroma_from: np.ndarray) -> np.ndarray:
  """A Y-channel result (H, W, 1) in [0, 1] with the Cb/Cr of an RGB uint8 image."""
  if sr.shape[-1] == 3:
    return evaluation_uint8(sr)
  ycbcr = color.rgb_to_ycbcr(color.to_rgb(chroma_from) / 255.0)
  ycbcr[..., 0] = np.clip(np.round(sr[..., 0] * 255), 0, 255)
  return evaluation_uint8(np.clip(color.ycbcr_to_rgb(ycbcr), 0, 1))


def evaluation_uint8(img: np.ndarray) -> np.ndarray:
  return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def _texture_crop(img: np.ndarray, frac: float = 0.3) -> tuple[int, int, int]:
  """(top, left, side) of the square with the most gradient energy."""
  y = color.y_channel(color.to_rgb(img))
  energy = np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1]
  side = max(8, int(min(img.shape[:2]) * frac))
  integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
  sums = (integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side]
          + integral[:-side, :-side])
  top, left = np.unravel_index(np.argmax(sums), sums.shape)
  return int(top), int(left), side


def _panel_figure(panels: list[tuple[str, np.ndarray]], path: pathlib.Path,
                  crop: tuple[int, int, int]) -> None:
  top, left, side = crop
  fig, axes = plt.subplots(2, len(panels), figsize=(3.2 * len(panels), 6.6), squeeze=False)
  for col, (caption, img) in enumerate(panels):
    axes[0, col].imshow(img, cmap='gray' if img.shape[-1] == 1 else None)
    axes[0, col].add_patch(plt.Rectangle((left, top), side, side, fill=False,
                                         edgecolor='red', linewidth=1.5))
    axes[1, col].imshow(img[top:top + side, left:left + side],
                        interpolation='nearest')
    axes[0, col].set_title(caption, fontsize=9)
    for ax in axes[:, col]:
      ax.set_xticks([])
      ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def comparison_figure(runs: Sequence[dict], path: pathlib.Path, *, image: str | None,
                      sets: Sequence[str], data_dir: str | None) -> None:
  """HR | bicubic | each run, with a zoomed crop and each image's PSNR (Y)."""
  from jaxsr import evaluate
  name, hr = _load_image(image, sets, data_dir)
  scale = runs[0]['config']['model']['scale']
  hr = color.to_rgb(degradation.modcrop(hr, scale))
  lr_rgb = imresize(hr, 1 / scale)
  bicubic_rgb = imresize(lr_rgb, output_size=hr.shape[:2])
  y_pair = degradation.make_pair(hr, scale, 1, name)
  bicubic_score = degradation.score(
      evaluation.bicubic_predict(y_pair.lr[None], hr.shape[:2])[0], y_pair)
  panels = [(f'HR ({name})', hr),
            (f'bicubic {bicubic_score["psnr_y"]:.2f} dB', bicubic_rgb)]
  for run in runs:
    if run['config']['model']['scale'] != scale:
      continue
    _, model, params, _ = evaluate.load_trained(str(run['workdir']), None, None)
    pair = degradation.make_pair(hr, scale, model.channels, name)
    sr = evaluation.model_predict(model, params)(pair.lr[None], hr.shape[:2])[0]
    psnr = degradation.score(sr, pair)['psnr_y']
    panels.append((f'{run["label"]} {psnr:.2f} dB', _colourise(sr, bicubic_rgb)))
  _panel_figure(panels, path, _texture_crop(hr))


def scale030_experiment(run: dict, out: pathlib.Path, *, image: str | None,
                        data_dir: str | None) -> dict:
  """The VDSR paper's figure: LR = imresize(HR, 0.30), rebuilt at the HR size."""
  from jaxsr import evaluate
  factor = 0.30
  name, hr = _load_image(image, ['set5', 'set14'], data_dir)
  hr = color.to_rgb(hr)
  _, model, params, _ = evaluate.load_trained(str(run['workdir']), None, None)
  if model.channels != 1:
    raise ValueError('the 0.30 experiment is defined on the Y channel: use a '
                     'channels=1 run')
  target = degradation.hr_target(hr, 1)
  lr = imresize(target / 255.0, factor).astype(np.float32)
  size = hr.shape[:2]
  model = model.clone(scale=1 / factor)
  pair = degradation.SRPair(name=name, lr=lr, target=target, scale=1 / factor)
  bicubic = evaluation.bicubic_predict(lr[None], size)[0]
  sr = evaluation.model_predict(model, params)(lr[None], size)[0]
  results = {'image': name, 'factor': factor, 'hr_size': list(size),
             'lr_size': list(lr.shape[:2]), 'crop_border': pair.crop_border,
             'bicubic': degradation.score(bicubic, pair),
             run['label']: degradation.score(sr, pair)}
  out.mkdir(parents=True, exist_ok=True)
  lr_rgb = imresize(hr, factor)
  bicubic_rgb = imresize(lr_rgb, output_size=size)
  up = math.ceil(1 / factor)
  lr_show = np.repeat(np.repeat(lr_rgb, up, 0), up, 1)[:size[0], :size[1]]
  panels = [('HR', hr), (f'LR ×{factor} (nearest)', lr_show),
            (f'bicubic {results["bicubic"]["psnr_y"]:.2f} dB', bicubic_rgb),
            (f'{run["label"]} {results[run["label"]]["psnr_y"]:.2f} dB',
             _colourise(sr, bicubic_rgb))]
  _panel_figure(panels, out / 'scale030.png', _texture_crop(hr))
  (out / 'scale030.json').write_text(json.dumps(results, indent=2) + '\n')
  print(json.dumps(results, indent=2))
  return results
