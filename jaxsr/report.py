r"""Reports from training runs: a results table, convergence plots, image figures.

  python -m jaxsr.report workdirs/eed workdirs/ees workdirs/eeds --out=docs/results/ablation
  python -m jaxsr.report --experiment=scale030 --workdir=workdirs/vdsr --out=docs/results/scale030

Everything comes from the runs themselves: `config.json`, `metrics.jsonl`
and the best checkpoint. Benchmark scores of a run are computed once and
cached in `<workdir>/benchmark.json`, so a report over committed runs is
regenerated exactly without re-evaluating.
"""

from __future__ import annotations

import json
import pathlib
from typing import Sequence

from absl import app
from absl import flags
import numpy as np

from jaxsr import evaluation
from jaxsr import metric_writers
from jaxsr import report_figures

_OUT = flags.DEFINE_string('out', None, 'Output folder.')
_SETS = flags.DEFINE_string('sets', 'set5,set14,b100', 'Benchmark sets for the table.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Data root (default $JAXSR_DATA_DIR).')
_IMAGE = flags.DEFINE_string('image', None, 'HR image for the figures (default: the '
                             'first image of the first set).')
_EXPERIMENT = flags.DEFINE_enum('experiment', None, ['scale030'], 'A paper experiment.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'The run for --experiment.')
_REEVALUATE = flags.DEFINE_bool('reevaluate', False, 'Ignore cached benchmark.json.')


def run_label(workdir: pathlib.Path) -> str:
  return workdir.name


def load_run(workdir: pathlib.Path) -> dict:
  config_path = workdir / 'config.json'
  if not config_path.exists():
    raise FileNotFoundError(f'{workdir}: no config.json, not a jaxsr workdir')
  rows = metric_writers.read_metrics(workdir)
  return {'workdir': workdir, 'label': run_label(workdir),
          'config': json.loads(config_path.read_text()), 'rows': rows}


def benchmark(run: dict, sets: Sequence[str], data_dir: str | None,
              reevaluate: bool = False) -> dict:
  """{set: {xS: {psnr_y, ssim_y, n}}} of the run's best checkpoint, cached."""
  cache = run['workdir'] / 'benchmark.json'
  cached = json.loads(cache.read_text()) if cache.exists() and not reevaluate else {}
  missing = [s for s in sets if s not in cached]
  if missing:
    from jaxsr import evaluate
    name, model, params, cfg = evaluate.load_trained(str(run['workdir']), None, None)
    scales = cfg['data'].get('scales') or [cfg['model']['scale']]
    for set_name in missing:
      ev = evaluation.BenchmarkEvaluator(set_name, scales, channels=model.channels,
                                         data_dir=data_dir)
      predict = (evaluation.bicubic_predict if name == 'bicubic'
                 else evaluation.model_predict(model, params))
      cached[set_name] = ev.run(predict)
    tmp = cache.with_name('benchmark.json.tmp')
    tmp.write_text(json.dumps(cached, indent=2) + '\n')
    tmp.replace(cache)
  return {s: cached[s] for s in sets}


def parameter_count(run: dict) -> int:
  import jax
  import jax.numpy as jnp
  from jaxsr import models
  m = run['config']['model']
  model = models.get_model(m['name'], scale=m['scale'], channels=m['channels'],
                           **m.get('kwargs', {}))
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, 8, 8, m['channels']), jnp.float32))
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(shapes)))


def results_table(runs: list[dict], scores: list[dict]) -> str:
  columns = [(s, k) for s in scores[0] for k in scores[0][s]] if scores else []
  head = ['run', 'model', 'params'] + [f'{s} {k}' for s, k in columns] + [
      'steps', 'train time']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for run, score in zip(runs, scores):
    last = run['rows'][-1] if run['rows'] else {}
    elapsed = max((r.get('train/elapsed_s', 0.0) for r in run['rows']), default=0.0)
    cells = [run['label'], run['config']['model']['name'], f'{parameter_count(run):,}']
    cells += [f"{score[s][k]['psnr_y']:.2f} / {score[s][k]['ssim_y']:.4f}"
              for s, k in columns]
    cells += [str(last.get('step', 0)), f'{elapsed / 60:.1f} min']
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def write_report(workdirs: Sequence[str], out: pathlib.Path, sets: Sequence[str],
                 data_dir: str | None, image: str | None, reevaluate: bool) -> None:
  runs = [load_run(pathlib.Path(w)) for w in workdirs]
  scores = [benchmark(r, sets, data_dir, reevaluate) for r in runs]
  out.mkdir(parents=True, exist_ok=True)
  table = results_table(runs, scores)
  (out / 'results.md').write_text(
      '# Results (PSNR / SSIM on Y, best checkpoint)\n\n' + table + '\n')
  (out / 'results.json').write_text(json.dumps(
      {r['label']: s for r, s in zip(runs, scores)}, indent=2) + '\n')
  report_figures.convergence_plot(runs, out / 'convergence.png')
  report_figures.comparison_figure(runs, out / 'comparison.png', image=image,
                                   sets=sets, data_dir=data_dir)
  print(table)
  print(f'wrote {out}/results.md, convergence.png, comparison.png')


def main(argv):
  workdirs = argv[1:]
  if not _OUT.value:
    raise app.UsageError('--out is required')
  out = pathlib.Path(_OUT.value)
  sets = [s for s in _SETS.value.split(',') if s]
  try:
    if _EXPERIMENT.value == 'scale030':
      if not _WORKDIR.value:
        raise app.UsageError('--experiment=scale030 needs --workdir=<a VDSR run>')
      report_figures.scale030_experiment(load_run(pathlib.Path(_WORKDIR.value)), out,
                                         image=_IMAGE.value, data_dir=_DATA_DIR.value)
      return
    if not workdirs:
      raise app.UsageError('give one or more workdirs')
    write_report(workdirs, out, sets, _DATA_DIR.value, _IMAGE.value, _REEVALUATE.value)
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
  app.run(main)
