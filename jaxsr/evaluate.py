r"""Benchmark evaluation by the SR protocol.

  python -m jaxsr.evaluate --model=bicubic --sets=set5,set14,b100 --scales=2,3,4 \
      --json_out=bicubic.json
  python -m jaxsr.evaluate --workdir=workdirs/eeds --sets=set5,set14,b100
  python -m jaxsr.evaluate --pretrained=eeds --scales=3 --sets=set5,set14,b100

Prints a table and writes {"<set>": {"x<scale>": {"psnr_y", "ssim_y", "n"}}}.
A trained model comes from --workdir (its config.json and best checkpoint) or
--checkpoint with --model, or the package's shipped weights from --pretrained;
--model alone evaluates an untrained model, which only makes sense for
`bicubic`.
"""

from __future__ import annotations

import json
import pathlib
import sys

from absl import app
from absl import flags

from jaxsr import evaluators
from jaxsr import models
from jaxsr import runs
from jaxsr.models import backend

_MODEL = flags.DEFINE_string('model', None, 'Registered model name.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir to evaluate.')
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'Checkpoint folder (with --model).')
_SETS = flags.DEFINE_string('sets', 'set5,set14,b100', 'Set names or folder paths.')
_SCALES = flags.DEFINE_string('scales', None, 'e.g. 2,3,4 (default: the model\'s).')
_CHANNELS = flags.DEFINE_integer('channels', None, '1 (Y) or 3 (RGB).')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Data root (default $JAXSR_DATA_DIR).')
_MAX_IMAGES = flags.DEFINE_integer('max_images', None, 'Evaluate the first N images.')
_JSON_OUT = flags.DEFINE_string('json_out', None, 'Write results as JSON here.')
_MAX_SHAPES = flags.DEFINE_integer(
    'max_shapes', evaluators.EVAL_MAX_SHAPES, 'Compiled LR shapes per set and scale: '
    'images are mirror-padded to at most this many (0: every shape as it is; bicubic '
    'is never padded).')
_PRETRAINED = flags.DEFINE_string(
    'pretrained', None, 'Shipped weights, e.g. eeds (with --scales=S; see '
    '`python -m jaxsr.pretrained list`).')


def main(argv):
  del argv
  backend.keep_freed_memory()
  try:
    scales = evaluators.parse_scales(_SCALES.value) if _SCALES.value else None
    if _PRETRAINED.value:
      from jaxsr import pretrained
      name, cfg = _PRETRAINED.value, {}
      model, params = pretrained.load(name, scales[0] if scales else 2)
    else:
      name, model, params, cfg = runs.load_trained(_WORKDIR.value, _MODEL.value,
                                              _CHECKPOINT.value,
                                              scales[0] if scales else None, _CHANNELS.value)
    if scales is None:
      scales = list(cfg.get('data', {}).get('scales') or []) or [model.scale]
    if params is None:
      import jax
      import jax.numpy as jnp
      params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, model.channels)))
      if jax.tree.leaves(params) and _MODEL.value != 'bicubic':
        print(f'warning: {_MODEL.value} has no trained weights here (give --workdir or '
              '--checkpoint): evaluating random initial weights', file=sys.stderr)
    results = {}
    for set_name in [s for s in _SETS.value.split(',') if s]:
      per_scale = {}
      for scale in scales:
        scaled = models.at_scale(name, model, scale)
        evaluator = evaluators.BenchmarkEvaluator(
            set_name, [scale], channels=model.channels, data_dir=_DATA_DIR.value,
            max_images=_MAX_IMAGES.value, max_shapes=_MAX_SHAPES.value)
        predict = (evaluators.bicubic_predict if _MODEL.value == 'bicubic'
                   else evaluators.model_predict(scaled, params))
        per_scale.update(evaluator.run(predict))
      results[evaluator.name] = per_scale
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f'error: {e}') from None
  title = _WORKDIR.value or _MODEL.value or f'pretrained {_PRETRAINED.value}'
  print(evaluators.format_table(results, title=title))
  if _JSON_OUT.value:
    out = pathlib.Path(_JSON_OUT.value)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + '.tmp')
    tmp.write_text(json.dumps(results, indent=2) + '\n')
    tmp.replace(out)
    print(f'wrote {out}')


if __name__ == '__main__':
  app.run(main)
