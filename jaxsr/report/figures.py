"""The figures of `jaxsr.report`: convergence curves and visual comparisons.

Every PSNR/SSIM shown is computed by the evaluation protocol itself
(`degradation.make_pair`, `evaluators.bicubic_predict`, `degradation.score`);
Y-channel results are shown in colour with the chroma of the bicubic image.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import sys
from typing import Callable, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from jaxsr.protocol import color  # noqa: E402
from jaxsr import datasets  # noqa: E402
from jaxsr.protocol import degradation  # noqa: E402
from jaxsr import evaluators  # noqa: E402
from jaxsr import runs as jaxsr_runs  # noqa: E402
from jaxsr.protocol import metrics  # noqa: E402
from jaxsr.protocol.imresize import imresize  # noqa: E402

SET_TITLES = {'set5': 'Set5', 'set14': 'Set14', 'b100': 'B100', 'urban100': 'Urban100'}

DPI = 110
# Panels per row of the comparison figure.
MAX_COLUMNS = 7


def save_figure(fig, path: pathlib.Path) -> None:
  """Saves and closes `fig` as an RGB PNG (the background is opaque, so the
  alpha channel matplotlib writes is dropped), with no metadata, so the same
  inputs give the same bytes."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=DPI)
  plt.close(fig)
  Image.open(buffer).convert('RGB').save(path, optimize=True)


def set_title(name: str) -> str:
  """'Set5' for 'set5'; a folder set by its folder name."""
  return SET_TITLES.get(name, pathlib.Path(name).name)


def _warn(message: str) -> None:
  print(f'warning: {message}', file=sys.stderr, flush=True)


# --- Convergence ---

def _eval_key(run: jaxsr_runs.Run, set_name: str) -> str | None:
  """eval/<set>/psnr_y of the preferred set if logged, else of the first set logged."""
  keys = [k for r in run.rows for k in r
          if k.startswith('eval/') and k.endswith('/psnr_y') and k.count('/') == 2]
  preferred = f'eval/{set_name}/psnr_y'
  return preferred if preferred in keys else (keys[0] if keys else None)


def _curve(group, key: str) -> tuple[list[int], list[float], list[float], list[float],
                                      list[float]]:
  """(steps, mean elapsed s, mean, min, max PSNR) at the steps every run logged."""
  logged = [{r['step']: r for r in run.rows if key in r} for run in group.runs]
  steps = sorted(set.intersection(*(set(rows) for rows in logged)))
  values = [[rows[s][key] for rows in logged] for s in steps]
  elapsed = [sum(rows[s].get('train/elapsed_s', 0.0) for rows in logged) / len(logged)
             for s in steps]
  return (steps, elapsed, [sum(v) / len(v) for v in values], [min(v) for v in values],
          [max(v) for v in values])


def convergence_plot(groups: Sequence, path: pathlib.Path, set_name: str = 'set5') -> None:
  """Eval PSNR (Y) against training wall-clock time and step, one line per group.

  A group of several seeds (`jaxsr.report.groups.Group`) is its mean at the
  steps all its runs evaluated, with a band from the lowest to the highest
  run, as the legend says. The first scale of each run is plotted
  (metrics.jsonl's eval/<set>/psnr_y); a dashed line marks bicubic for each
  set and scale. Groups without eval rows are named in a note.
  """
  series, skipped = [], []
  for group in groups:
    key = _eval_key(group.first, set_name)
    if key is None or any(_eval_key(r, set_name) != key for r in group.runs):
      skipped.append(', '.join(r.label for r in group.runs))
      continue
    series.append((group, key, _curve(group, key)))
  if skipped:
    _warn(f'no eval rows in metrics.jsonl: {", ".join(skipped)} (left out of '
          f'{path.name})')
  longest = max((t for _, _, curve in series for t in curve[1]), default=0.0)
  unit, div = (('s', 1) if longest < 300 else ('min', 60) if longest < 3 * 3600
               else ('h', 3600))
  many_scales = len({g.scales[0] for g, _, _ in series}) > 1
  many_sets = len({key for _, key, _ in series}) > 1
  fig, (ax_time, ax_step) = plt.subplots(1, 2, figsize=(12.5, 4.2), sharey=True)
  # Matplotlib's default cycle repeats after 10 colours; tab20 keeps up to 20 apart.
  colors = plt.get_cmap('tab10' if len(series) <= 10 else 'tab20').colors
  baselines = {}
  for i, (group, key, (steps, elapsed, mean, low, high)) in enumerate(series):
    shown = f'×{group.scales[0]:g}'
    notes = ([shown] if many_scales and shown not in group.label.split() else []) + (
        [set_title(key.split('/')[1])] if many_sets else [])
    if group.n > 1:
      notes.append(f'mean of {group.n} seeds, band min-max')
    label = group.label + (f' ({", ".join(notes)})' if notes else '')
    color = colors[i % len(colors)]
    for ax, xs in ((ax_time, [t / div for t in elapsed]), (ax_step, steps)):
      ax.plot(xs, mean, marker='o', markersize=3, color=color, label=label)
      if group.n > 1:
        ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
    last = [r for r in group.first.rows if key in r][-1]
    bicubic = last.get(key.replace('/psnr_y', '/bicubic_psnr_y'))
    if bicubic is not None:
      baselines[(key.split('/')[1], group.scales[0])] = bicubic
  for (set_key, scale), value in sorted(baselines.items()):
    text = f'bicubic ×{scale:g}' + (f' {set_title(set_key)}' if many_sets else '')
    for ax in (ax_time, ax_step):
      ax.axhline(value, color='gray', linestyle='--', linewidth=1)
      ax.annotate(text, (1, value), xycoords=('axes fraction', 'data'),
                  xytext=(-4, -3), textcoords='offset points', ha='right', va='top',
                  fontsize=8, color='gray')
  sets = sorted({key.split('/')[1] for _, key, _ in series})
  title = ', '.join(set_title(s) for s in sets) or set_title(set_name)
  ax_time.set_ylabel(f'PSNR (Y, dB) on {title}')
  for ax, xlabel in ((ax_time, f'training wall-clock time ({unit})'),
                     (ax_step, 'training step')):
    ax.set_xlabel(xlabel)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
  ax_step.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  if series:
    ax_step.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.02, 1),
                   borderaxespad=0)
  note = 'no evaluation rows in metrics.jsonl' if not series else (
      f'no eval rows: {", ".join(skipped)}' if skipped else '')
  if note:
    fig.text(0.5, 0.01, note, ha='center', fontsize=8, color='gray')
  fig.suptitle(f'Convergence: {title} PSNR during training')
  fig.tight_layout(rect=(0, 0.03, 1, 1))
  save_figure(fig, path)


# --- Images ---

def load_image(image: str | None, sets: Sequence[str],
               data_dir: str | None) -> tuple[str, np.ndarray]:
  """(name, uint8 image): --image, else Set5 butterfly, else a set's first image."""
  if image:
    from jaxsr import image_io
    return pathlib.Path(image).stem, image_io.read_image(image)
  for name in list(sets) + ['embedded_test']:
    if datasets.has_dataset(name, data_dir):
      image_set = datasets.get_dataset(name, data_dir)
      names = list(image_set.image_names)
      i = names.index('butterfly') if 'butterfly' in names else 0
      if name not in sets:
        root = data_dir or os.environ.get(datasets.ENV_VAR) or 'unset'
        _warn(f'figures: no {",".join(sets)} under the data root ({root}); they show '
              f'the embedded held-out photo {names[i]} instead')
      return names[i], image_set.load(i)
  raise ValueError('no image for the figures')


def display_rgb(sr: np.ndarray, chroma_rgb: np.ndarray, gray: bool) -> np.ndarray:
  """uint8 RGB for display: a Y result gets the Cb/Cr of `chroma_rgb` (uint8)."""
  if sr.shape[-1] == 3 or gray:
    return color.to_rgb(metrics.to_uint8(np.clip(sr, 0, 1)))
  ycbcr = color.rgb_to_ycbcr(chroma_rgb / 255.0)
  ycbcr[..., 0] = np.clip(np.round(sr[..., 0] * 255), 0, 255)
  return metrics.to_uint8(np.clip(color.ycbcr_to_rgb(ycbcr), 0, 1))


def texture_crop(img: np.ndarray, frac: float = 0.3) -> tuple[int, int, int]:
  """(top, left, side) of the square with the most gradient energy."""
  y = color.y_channel(color.to_rgb(img))
  energy = np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1]
  side = max(8, int(min(energy.shape) * frac))
  integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
  sums = (integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side]
          + integral[:-side, :-side])
  top, left = np.unravel_index(np.argmax(sums), sums.shape)
  return int(top), int(left), side


def run_caption(run: jaxsr_runs.Run) -> str:
  """The run's label, with its model when the label does not say it."""
  return run.label if run.label == run.model_name else f'{run.label} ({run.model_name})'


def caption(label: str, score: dict | None) -> str:
  if score is None:
    return f'{label}\n(reference)'
  return f'{label}\n{score["psnr_y"]:.2f} dB / {score["ssim_y"]:.4f}'


def panel_figure(blocks: list[tuple[str, list[tuple[str, np.ndarray]]]],
                 path: pathlib.Path, crop: tuple[int, int, int], title: str) -> None:
  """Per block (row label, [(caption, uint8 RGB)]): full images, then the crop zoomed.

  A block of more than MAX_COLUMNS panels wraps onto further rows, so the
  figure stays readable where it is shown.
  """
  top, left, side = crop
  blocks = [(label if i == 0 else '', panels[i:i + MAX_COLUMNS])
            for label, panels in blocks for i in range(0, len(panels), MAX_COLUMNS)]
  cols = max(len(panels) for _, panels in blocks)
  h, w = blocks[0][1][0][1].shape[:2]
  cell = 2.7
  fig, axes = plt.subplots(
      2 * len(blocks), cols, squeeze=False,
      figsize=(cell * cols, len(blocks) * cell * (min(h / w, 1.5) + 1) + 0.5),
      gridspec_kw={'height_ratios': [min(h / w, 1.5), 1] * len(blocks)})
  for b, (row_label, panels) in enumerate(blocks):
    full, zoom = axes[2 * b], axes[2 * b + 1]
    for col in range(cols):
      for ax in (full[col], zoom[col]):
        ax.set_xticks([])
        ax.set_yticks([])
        if col >= len(panels):
          ax.axis('off')
      if col >= len(panels):
        continue
      text, img = panels[col]
      full[col].imshow(img)
      full[col].add_patch(plt.Rectangle((left - 0.5, top - 0.5), side, side, fill=False,
                                        edgecolor='red', linewidth=1.2))
      full[col].set_title(text, fontsize=9)
      zoom[col].imshow(img[top:top + side, left:left + side], interpolation='nearest')
      for spine in zoom[col].spines.values():
        spine.set_edgecolor('red')
    full[0].set_ylabel(row_label, fontsize=11)
    zoom[0].set_ylabel('zoom', fontsize=9)
  fig.suptitle(title, fontsize=11)
  fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
  save_figure(fig, path)


def _bicubic_panel(hr: np.ndarray, scale: float, name: str, gray: bool):
  """(Y pair, bicubic chroma source, panel) at `scale` by the evaluation protocol."""
  pair = degradation.make_pair(hr, scale, 1, name)
  size = pair.target.shape[:2]
  bicubic = evaluators.bicubic_predict(pair.lr[None], size)[0]
  lr_rgb = imresize(color.to_rgb(degradation.modcrop(hr, scale)), 1 / scale)
  chroma = imresize(lr_rgb, output_size=size)
  return pair, chroma, (caption(f'bicubic ×{scale:g}', degradation.score(bicubic, pair)),
                        display_rgb(bicubic, chroma, gray))


def image_key(name: str, hr: np.ndarray) -> str:
  """'butterfly-1a2b3c4d': the image's name and a digest of its pixels."""
  return f'{name}-{hashlib.sha1(np.ascontiguousarray(hr).tobytes()).hexdigest()[:8]}'


def cached_image_names(run: jaxsr_runs.Run) -> list[str]:
  """The images a run's report cache holds panels of (files `<image_key>-x<scale>`)."""
  return sorted({p.stem.rsplit('-', 2)[0] for p in (run.workdir / 'report_cache').glob('*.png')})


def cached_output(run: jaxsr_runs.Run, key: str,
                  compute: Callable[[], tuple[np.ndarray, dict]],
                  reevaluate: bool = False) -> tuple[np.ndarray, dict] | None:
  """(uint8 RGB panel, score) of a run's output for a figure, or None.

  Cached as <workdir>/report_cache/<key>.png (lossless) and .json with the
  checkpoint step, like benchmark.json: figures are redrawn exactly from
  committed runs without their checkpoints, and recomputed when the run's
  best checkpoint changes (or with `reevaluate`).
  """
  step = run.checkpoint_step
  png = run.workdir / 'report_cache' / f'{key}.png'
  meta = png.with_suffix('.json')
  if png.exists() and meta.exists() and not reevaluate:
    cached = json.loads(meta.read_text())
    if step is None or cached['step'] == step:
      with png.open('rb') as f:  # png.open: also a gs:// workdir
        return np.asarray(Image.open(f).convert('RGB')), cached['score']
  if step is None:
    return None
  img, score = compute()
  png.parent.mkdir(exist_ok=True)
  with png.open('wb') as f:
    Image.fromarray(img).save(f, format='PNG')
  evaluators.write_json(meta, {'step': step, 'score': score})
  return img, score


def comparison_figure(groups: Sequence, path: pathlib.Path, *,
                      image: str | None, sets: Sequence[str], data_dir: str | None,
                      reevaluate: bool = False) -> None:
  """HR | bicubic | each group, one block per scale, with a zoomed crop and PSNR/SSIM.

  A group of several seeds shows its first run (the lowest seed), as its
  caption says.
  """
  name, hr = load_image(image, sets, data_dir)
  gray = hr.shape[-1] == 1
  loaded = {}

  def output(run, scale, chroma):
    if run.workdir not in loaded:
      loaded[run.workdir] = run.load_trained()
    model, params = loaded[run.workdir]
    pair = degradation.make_pair(hr, scale, model.channels, name)
    sr = evaluators.model_predict(model, params)(pair.lr[None], pair.target.shape[:2])[0]
    return display_rgb(sr, chroma, gray), degradation.score(sr, pair)

  blocks = []
  for scale in sorted({s for g in groups for s in g.scales}):
    _, chroma, bicubic_panel = _bicubic_panel(hr, scale, name, gray)
    panels = [(caption(f'HR: {name}', None), color.to_rgb(degradation.modcrop(hr, scale))),
              bicubic_panel]
    for group in (g for g in groups if scale in g.scales):
      run = group.first
      result = cached_output(run, f'{image_key(name, hr)}-x{scale:g}',
                             lambda: output(run, scale, chroma), reevaluate)
      label = group.label + (f' (seed {group.seeds[0]} of {group.n})' if group.n > 1
                             else '')
      if result is None:
        cached = cached_image_names(run)
        why = (f' to draw {name}; its cached panels are of {", ".join(cached)}'
               if cached else '')
        _warn(f'{group.label} left out of {path.name}: no checkpoint in {run.workdir}{why}')
      else:
        panels.append((caption(label, result[1]), result[0]))
    blocks.append((f'×{scale:g}', panels))
  smallest = min((p[0][1] for _, p in blocks), key=lambda img: img.size)
  panel_figure(blocks, path, texture_crop(smallest),
               f'{name}: each output at the HR size, PSNR (dB) / SSIM on Y')
