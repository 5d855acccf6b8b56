r"""Benchmark evaluation by the SR protocol.

  python -m jaxsr.evaluate --model=bicubic --sets=set5,set14,b100 --scales=2,3,4 \
      --json_out=bicubic.json
  python -m jaxsr.evaluate --workdir=workdirs/eeds --sets=set5,set14,b100
  python -m jaxsr.evaluate --pretrained=eeds --scales=3 --sets=set5,set14,b100
  python -m jaxsr.evaluate --pretrained=fsrcnn --max_shapes=0   # every shipped scale

Prints a table and writes {"<set>": {"x<scale>": {"psnr_y", "ssim_y", "n"}}}.
A trained model comes from --workdir (its config.json and best checkpoint) or
--checkpoint with --model, or the package's shipped weights from --pretrained
(each scale's own file; by default every scale shipped for that name);
--model alone evaluates an untrained model, which only makes sense for
`bicubic`.

Everything that can be checked is checked before any model runs: the flags,
the weights, every image of every set (an image too small for a scale is
named), and that --json_out can be written. PSNR is finite even for an exact
reconstruction (`protocol.metrics.psnr`), so the JSON is always valid.
"""

from __future__ import annotations

import sys

from absl import flags

from jaxsr import command_line
from jaxsr import evaluators
from jaxsr import models
from jaxsr import runs
from jaxsr.models import backend

FLAGS = flags.FlagValues()
_MODEL = flags.DEFINE_string('model', None, 'Registered model name.', flag_values=FLAGS)
_WORKDIR = flags.DEFINE_string('workdir', None, 'A training workdir.', flag_values=FLAGS)
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'Checkpoint folder (with --model).',
                                  flag_values=FLAGS)
_PRETRAINED = flags.DEFINE_string(
    'pretrained', None, 'Shipped weights, e.g. eeds (default scales: all shipped; see '
    '`python -m jaxsr.pretrained list`).', flag_values=FLAGS)
_SCALES = flags.DEFINE_string('scales', None, "e.g. 2,3,4 (default: the model's).",
                              flag_values=FLAGS)
_CHANNELS = flags.DEFINE_integer('channels', None, '1 (Y) or 3 (RGB).', flag_values=FLAGS)
_SETS = flags.DEFINE_string('sets', 'set5,set14,b100', 'Sets or folders.', flag_values=FLAGS)
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Data root (default $JAXSR_DATA_DIR).',
                                flag_values=FLAGS)
_MAX_IMAGES = flags.DEFINE_integer('max_images', None, 'Only the first N images of a set.',
                                   flag_values=FLAGS)
_MAX_SHAPES = flags.DEFINE_integer(
    'max_shapes', evaluators.EVAL_MAX_SHAPES, 'Compiled LR shapes per set and scale: '
    'images are mirror-padded to at most this many (0: every shape as it is; bicubic '
    'is never padded).', flag_values=FLAGS)
_JSON_OUT = flags.DEFINE_string('json_out', None, 'Write the results here as JSON.',
                                flag_values=FLAGS)


def _load_models(scales: list[float] | None):
  """(name, {scale: (model, params)}) from --pretrained, --workdir or --model.

  Shipped weights load per scale (each scale's own file); a run or checkpoint
  gives one network, at each scale it can serve (default: the scales it
  trained on).
  """
  if _PRETRAINED.value:
    from jaxsr import pretrained
    name = _PRETRAINED.value
    scales = scales or pretrained.scales_of(name) or [2.0]
    return name, {s: pretrained.load(name, s) for s in scales}
  name, model, params, cfg = runs.load_trained(_WORKDIR.value, _MODEL.value,
                                               _CHECKPOINT.value,
                                               scales[0] if scales else None,
                                               _CHANNELS.value)
  if params is None:
    import jax
    import jax.numpy as jnp
    params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, model.channels)))
    if jax.tree.leaves(params) and name != 'bicubic':
      print(f'warning: {name} has no trained weights here (give --workdir or '
            '--checkpoint): evaluating random initial weights', file=sys.stderr)
  scales = scales or list(cfg.get('data', {}).get('scales') or []) or [model.scale]
  return name, {s: (models.at_scale(name, model, s), params) for s in scales}


def _evaluate(positional: list[str]) -> int:
  if positional:
    raise command_line.UsageError(f'unexpected arguments: {" ".join(positional)} '
                                  '(give sets with --sets=a,b)')
  if _JSON_OUT.value:
    evaluators.check_writable(_JSON_OUT.value)
  set_names = [s for s in _SETS.value.split(',') if s]
  if not set_names:
    raise command_line.UsageError('--sets is empty')
  backend.keep_freed_memory()
  scales = evaluators.parse_scales(_SCALES.value) if _SCALES.value else None
  name, loaded = _load_models(scales)
  scales = list(loaded)
  channels = next(iter(loaded.values()))[0].channels
  mesh = evaluators.local_mesh()  # images split over this machine's devices
  predicts = {scale: evaluators.bicubic_predict if name == 'bicubic' else
              evaluators.model_predict(model, params, mesh)
              for scale, (model, params) in loaded.items()}
  # Every image of every set is read and degraded before any model runs.
  benchmarks = [evaluators.BenchmarkEvaluator(
      set_name, scales, channels=channels, data_dir=_DATA_DIR.value,
      max_images=_MAX_IMAGES.value, max_shapes=_MAX_SHAPES.value)
      for set_name in set_names]
  results = {ev.name: {evaluators.scale_key(s): ev.run_scale(predicts[s], s)
                       for s in scales} for ev in benchmarks}
  title = _WORKDIR.value or _MODEL.value or f'pretrained {_PRETRAINED.value}'
  print(evaluators.format_table(results, title=title))
  if _JSON_OUT.value:
    evaluators.write_json(_JSON_OUT.value, results)
    print(f'wrote {_JSON_OUT.value}')
  return 0


def main(argv: list[str] | None = None) -> int:
  """The command line without the program name (default `sys.argv[1:]`)."""
  return command_line.run(_evaluate, FLAGS, sys.argv[1:] if argv is None else argv,
                          program='python -m jaxsr.evaluate', doc=__doc__)


if __name__ == '__main__':
  sys.exit(main())
