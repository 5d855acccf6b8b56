"""`python -m jaxsr.report --experiment=scale030`: a real, non-integer scale.

The VDSR paper's point that one model on the bicubic-upsampled input serves
any scale: an HR image is downscaled by 0.30 (LR = imresize(HR, 0.30), so
ceil(0.30 · H) × ceil(0.30 · W)), then rebuilt at the HR size by bicubic and
by the model, which is asked for that size explicitly (`output_size`). Both are
scored by the protocol at scale 1/0.30: no modcrop, ceil(1/0.30) = 4 border
pixels shaved, Y channel (`degradation.make_pair`, `degradation.score`).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from jaxsr import evaluators
from jaxsr import runs as jaxsr_runs
from jaxsr.protocol import color
from jaxsr.protocol import degradation
from jaxsr.protocol.imresize import imresize
from jaxsr.report import figures

FACTOR = 0.30


def scale030_experiment(run: jaxsr_runs.Run, out: pathlib.Path, *, image: str | None,
                        data_dir: str | None, factor: float = FACTOR,
                        reevaluate: bool = False) -> dict:
  """Writes scale030.png, .json and .md into `out`; returns the scores."""
  from jaxsr import models
  model_name = run.model_name
  if not models.model_info(model_name).works_on_bicubic:
    raise ValueError(f'{run.workdir}: {model_name} upsamples with a learned stride '
                     f'and cannot rebuild a ×{1 / factor:.4g} image; use a VDSR run')
  name, hr = figures.load_image(image, ['set5', 'set14'], data_dir)
  gray = hr.shape[-1] == 1
  scale = 1 / factor
  hr_rgb = color.to_rgb(hr)
  y_pair = degradation.make_pair(hr, scale, 1, name)
  size = y_pair.target.shape[:2]
  bicubic = evaluators.bicubic_predict(y_pair.lr[None], size)[0]
  lr_rgb = imresize(hr_rgb, factor)
  chroma = imresize(lr_rgb, output_size=size)

  def model_output():
    model, params = run.load_trained()
    pair = degradation.make_pair(hr, scale, model.channels, name)
    predict = evaluators.model_predict(model.clone(scale=scale), params)
    sr = predict(pair.lr[None], size)[0]
    return figures.display_rgb(sr, chroma, gray), degradation.score(sr, pair)

  cached = figures.cached_output(
      run, f'scale{factor:g}-{figures.image_key(name, hr)}', model_output, reevaluate)
  if cached is None:
    raise ValueError(f'{run.workdir}: no checkpoint to run')
  sr_show, sr_score = cached
  results = {'image': name, 'factor': factor, 'hr_size': list(size),
             'lr_size': list(y_pair.lr.shape[:2]), 'crop_border': y_pair.crop_border,
             'model': model_name, 'run': run.label,
             'bicubic': degradation.score(bicubic, y_pair), 'sr': sr_score}
  lr_show = figures.display_rgb(y_pair.lr, lr_rgb, gray)
  rows = np.arange(size[0]) * lr_show.shape[0] // size[0]
  cols = np.arange(size[1]) * lr_show.shape[1] // size[1]
  panels = [
      (figures.caption(f'HR: {name} {size[1]}×{size[0]}', None), hr_rgb),
      (f'LR ×{factor:g}: {lr_show.shape[1]}×{lr_show.shape[0]}\n(shown nearest)',
       lr_show[rows][:, cols]),
      (figures.caption('bicubic', results['bicubic']),
       figures.display_rgb(bicubic, chroma, gray)),
      (figures.caption(figures.run_caption(run), sr_score), sr_show)]
  out.mkdir(parents=True, exist_ok=True)
  figures.panel_figure([(f'×{scale:.3g}', panels)], out / 'scale030.png',
                       figures.texture_crop(hr_rgb),
                       f'{name} downscaled by {factor:g}, rebuilt at {size[1]}×{size[0]}: '
                       'PSNR (dB) / SSIM on Y')
  evaluators.write_json(out / 'scale030.json', results)
  (out / 'scale030.md').write_text(
      f'# {name} downscaled by {factor:g} and rebuilt at the HR size\n\n'
      f'LR {results["lr_size"][1]}×{results["lr_size"][0]} → HR {size[1]}×{size[0]}; '
      f'Y channel, {y_pair.crop_border} border pixels shaved.\n\n'
      '| method | PSNR (dB) | SSIM |\n|---|---:|---:|\n'
      + ''.join(f'| {method} | {results[k]["psnr_y"]:.2f} | {results[k]["ssim_y"]:.4f} |\n'
                for method, k in (('bicubic', 'bicubic'), (figures.run_caption(run), 'sr')))
      + '\n![scale030](scale030.png)\n')
  print(json.dumps(results, indent=2))
  return results
