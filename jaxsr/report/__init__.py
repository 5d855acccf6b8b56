r"""Reports from training runs: a results table, convergence plots, image figures.

  python -m jaxsr.report workdirs/eed workdirs/ees workdirs/eeds --out=docs/results/ablation
  python -m jaxsr.report --experiment=scale030 --workdir=workdirs/vdsr \
      --out=docs/results/scale030

Everything comes from the runs themselves: `config.json`, `metrics.jsonl`
and the best checkpoint. Benchmark scores of a run (model and bicubic, per
set and scale) are computed once and cached in `<workdir>/benchmark.json`
with the checkpoint step they belong to, so a report over committed runs is
regenerated exactly without re-evaluating (and without checkpoints); the
figures' model outputs are cached the same way in `<workdir>/report_cache/`.
Both are recomputed when the run's best checkpoint has changed since, or
with --reevaluate.

Writes results.md (the table), results.json, convergence.png and
comparison.png into --out. --archive=DIR copies what the report read of each
run (`config.json`, `metrics.jsonl`, `benchmark.json`, `report_cache/`, no
checkpoints) to DIR/<run>: small enough to commit, and the same report is
regenerated from it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
from typing import Sequence

import numpy as np

from jaxsr import evaluators
from jaxsr import metric_writers
from jaxsr.report import figures as report_figures


class ReportError(ValueError):
  """A run or option the report cannot use; the message names it."""


def load_run(workdir: str | pathlib.Path) -> dict:
  """{'workdir', 'label', 'config', 'rows', 'scales', 'checkpoint_step'} of a run."""
  workdir = pathlib.Path(workdir)
  config_path = workdir / 'config.json'
  if not workdir.is_dir():
    raise ReportError(f'{workdir}: no such folder')
  if not config_path.is_file():
    raise ReportError(f'{workdir}: no config.json, not a jaxsr training workdir')
  try:
    config = json.loads(config_path.read_text())
    model = config['model']
  except (json.JSONDecodeError, KeyError) as e:
    raise ReportError(f'{config_path}: not a jaxsr config ({e})') from None
  try:
    rows = metric_writers.read_metrics(workdir)
  except json.JSONDecodeError as e:
    raise ReportError(f'{workdir / "metrics.jsonl"}: not JSON lines ({e})') from None
  scales = [float(s) for s in config.get('data', {}).get('scales') or [model['scale']]]
  return {'workdir': workdir, 'label': workdir.name, 'config': config, 'rows': rows,
          'scales': scales, 'checkpoint_step': checkpoint_step(workdir)}


def checkpoint_step(workdir: pathlib.Path) -> int | None:
  """The step of the checkpoint reports score: the best, else the newest."""
  for sub in ('best', 'checkpoints'):
    folder = workdir / sub
    steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if (
        folder.is_dir()) else []
    if steps:
      return max(steps)
  return None


def benchmark(run: dict, sets: Sequence[str], data_dir: str | None,
              reevaluate: bool = False, evaluator_cache: dict | None = None) -> dict:
  """{set: {'x2': {psnr_y, ssim_y, n, bicubic_psnr_y, bicubic_ssim_y}}}, cached.

  `evaluator_cache` (a dict kept across runs) shares the loaded images and the
  bicubic scores between runs of the same scales.
  """
  evaluator_cache = {} if evaluator_cache is None else evaluator_cache
  workdir = run['workdir']
  cache_path = workdir / 'benchmark.json'
  step = run['checkpoint_step']
  cache = {}
  run['reevaluate'] = reevaluate  # the figures' caches too
  if cache_path.exists() and not reevaluate:
    cache = json.loads(cache_path.read_text())
    if step is not None and cache.get('step') != step:
      cache = {}  # the run has trained on since: score its new best checkpoint
  scores = cache.get('sets', {})
  keys = [evaluators.scale_key(s) for s in run['scales']]
  missing = [s for s in sets if not all(k in scores.get(s, {}) for k in keys)]
  if missing:
    if step is None:
      raise ReportError(f'{workdir}: no checkpoint to evaluate on {",".join(missing)} '
                        '(and benchmark.json does not have them)')
    from jaxsr.runs import load_trained
    name, model, params, _ = load_trained(str(workdir), None, None)
    predict = (evaluators.bicubic_predict if name == 'bicubic'
               else evaluators.model_predict(model, params))
    for set_name in missing:
      print(f'evaluating {run["label"]} (step {step}) on {set_name}...', flush=True)
      key = (set_name, tuple(run['scales']), model.channels)
      if key not in evaluator_cache:
        evaluator_cache[key] = evaluators.BenchmarkEvaluator(
            set_name, run['scales'], channels=model.channels, data_dir=data_dir)
      ev = evaluator_cache[key]
      result, bicubic = ev.run(predict), ev.bicubic()
      scores[set_name] = {k: {**result[k], 'bicubic_psnr_y': bicubic[k]['psnr_y'],
                              'bicubic_ssim_y': bicubic[k]['ssim_y']} for k in result}
    tmp = cache_path.with_name('benchmark.json.tmp')
    tmp.write_text(json.dumps({'step': step, 'sets': scores}, indent=2) + '\n')
    tmp.replace(cache_path)
    cache = {'step': step}
  run['scored_step'] = cache.get('step')
  return {s: scores[s] for s in sets}


ARCHIVED = ('config.json', 'metrics.jsonl', 'benchmark.json', 'report_cache')


def archive_run(run: dict, dest: pathlib.Path) -> pathlib.Path:
  """Copies the files a report reads of `run` to dest/<workdir name>."""
  target = dest / run['workdir'].name
  if target.resolve() == run['workdir'].resolve():
    return target
  archived = target / 'config.json'
  if archived.is_file() and archived.read_text() != (run['workdir'] / 'config.json').read_text():
    raise ReportError(f'{target} already archives another run (its config.json differs '
                      f'from {run["workdir"]}\'s): rename one of the workdirs')
  tmp = dest / f'.{target.name}.tmp'
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir(parents=True)
  for name in ARCHIVED:
    src = run['workdir'] / name
    if src.is_dir():
      shutil.copytree(src, tmp / name)
    elif src.is_file():
      shutil.copy2(src, tmp / name)
  shutil.rmtree(target, ignore_errors=True)
  tmp.rename(target)
  return target


def parameter_count(run: dict) -> int:
  """Parameters of the run's model, from its config (no checkpoint needed)."""
  if 'params' not in run:
    import jax
    from jaxsr import models
    shapes = models.abstract_variables(models.from_config(run['config']['model']))
    run['params'] = int(sum(np.prod(x.shape) for x in jax.tree.leaves(shapes)))
  return run['params']


def training_summary(run: dict) -> tuple[int, float]:
  """(last logged step, training wall-clock seconds) from metrics.jsonl."""
  return metric_writers.training_summary(run['rows'])


def format_duration(seconds: float) -> str:
  if seconds < 120:
    return f'{seconds:.0f} s'
  if seconds < 7200:
    return f'{seconds / 60:.1f} min'
  return f'{seconds / 3600:.2f} h'


def results_table(runs: list[dict], scores: list[dict], sets: Sequence[str]) -> str:
  """One row per run and scale (bicubic first), PSNR / SSIM (Y) per set.

  The best PSNR of each set and scale is bold.
  """
  head = (['run', 'model', 'params', 'scale'] +
          [f'{report_figures.set_title(s)} PSNR / SSIM' for s in sets] +
          ['steps', 'train time'])
  lines = ['| ' + ' | '.join(head) + ' |',
           '|' + '---|' * 4 + '---:|' * (len(sets) + 2)]
  for scale in sorted({s for run in runs for s in run['scales']}):
    key = evaluators.scale_key(scale)
    at_scale = [(run, score) for run, score in zip(runs, scores) if scale in run['scales']]
    best = {s: max(score[s][key]['psnr_y'] for _, score in at_scale) for s in sets}
    first = at_scale[0][1]
    cells = ['bicubic', 'bicubic', '–', f'×{scale:g}'] + [
        f"{first[s][key]['bicubic_psnr_y']:.2f} / {first[s][key]['bicubic_ssim_y']:.4f}"
        for s in sets] + ['', '']
    lines.append('| ' + ' | '.join(cells) + ' |')
    for run, score in at_scale:
      steps, elapsed = training_summary(run)
      cells = [run['label'], run['config']['model']['name'],
               f'{parameter_count(run):,}', f'×{scale:g}']
      for s in sets:
        r = score[s][key]
        psnr = f"{r['psnr_y']:.2f}"
        cells.append((f'**{psnr}**' if r['psnr_y'] == best[s] and len(at_scale) > 1
                      else psnr) + f" / {r['ssim_y']:.4f}")
      cells += [f'{steps:,}', format_duration(elapsed)]
      lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def write_report(workdirs: Sequence[str], out: pathlib.Path, sets: Sequence[str],
                 data_dir: str | None = None, image: str | None = None,
                 reevaluate: bool = False, archive: pathlib.Path | None = None) -> str:
  """Writes results.md/.json, convergence.png and comparison.png; returns the table."""
  if not sets:
    raise ReportError('--sets is empty')
  runs = [load_run(w) for w in workdirs]
  labels = [r['label'] for r in runs]
  for r in runs:
    if labels.count(r['label']) > 1:
      r['label'] = f"{r['workdir'].parent.name}/{r['label']}"
  evaluator_cache = {}
  scores = [benchmark(r, sets, data_dir, reevaluate, evaluator_cache) for r in runs]
  out.mkdir(parents=True, exist_ok=True)
  table = results_table(runs, scores, sets)
  (out / 'results.md').write_text(
      '# Results\n\nPSNR (dB) / SSIM on the Y channel of each run\'s best checkpoint, '
      'by the standard protocol (bicubic degradation, `scale` pixels shaved). '
      '`steps` and `train time` are the last logged step and the training '
      'wall-clock time (evaluation excluded) from metrics.jsonl.\n\n'
      + table + '\n\n![convergence](convergence.png)\n\n![comparison](comparison.png)\n')
  summary = {}
  for run, score in zip(runs, scores):
    steps, elapsed = training_summary(run)
    summary[run['label']] = {
        'model': run['config']['model']['name'], 'params': parameter_count(run),
        'scales': run['scales'], 'steps': steps, 'train_time_s': elapsed,
        'scored_step': run['scored_step'], 'benchmark': score}
  (out / 'results.json').write_text(json.dumps(summary, indent=2) + '\n')
  report_figures.convergence_plot(runs, out / 'convergence.png')
  report_figures.comparison_figure(runs, out / 'comparison.png', image=image,
                                   sets=sets, data_dir=data_dir)
  print(table)
  print(f'wrote {out}/results.md, results.json, convergence.png, comparison.png')
  if archive is not None:
    for run in runs:
      print(f'archived {run["workdir"]} as {archive_run(run, archive)}')
  return table


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog='python -m jaxsr.report',
                                   description=__doc__.split('\n')[0])
  parser.add_argument('workdirs', nargs='*', help='Training workdirs, one per run.')
  parser.add_argument('--out', required=True, help='Output folder.')
  parser.add_argument('--sets', default='set5,set14,b100',
                      help='Benchmark sets for the table (names or folders).')
  parser.add_argument('--data_dir', default=None,
                      help='Data root (default $JAXSR_DATA_DIR).')
  parser.add_argument('--image', default=None, help='HR image file for the figures '
                      '(default: Set5 butterfly, else the first image of the first set).')
  parser.add_argument('--experiment', choices=['scale030'], default=None,
                      help='A paper experiment instead of the report.')
  parser.add_argument('--workdir', default=None, help='The run for --experiment.')
  parser.add_argument('--archive', default=None, help='Copy each run\'s config, '
                      'metrics and report caches (no checkpoints) to this folder.')
  parser.add_argument('--reevaluate', action='store_true',
                      help='Ignore cached benchmark.json files.')
  args = parser.parse_args(argv)
  if args.experiment and (not args.workdir or args.workdirs):
    parser.error(f'--experiment={args.experiment} takes one run: --workdir=<a VDSR run>')
  if not args.experiment and not args.workdirs:
    parser.error('give one or more workdirs')
  return args


def main(argv: Sequence[str] | None = None) -> int:
  from jaxsr import datasets
  from jaxsr import image_io
  args = parse_args(sys.argv[1:] if argv is None else argv)
  out = pathlib.Path(args.out)
  try:
    if args.experiment == 'scale030':
      from jaxsr.report import scale030 as report_scale030
      run = load_run(args.workdir)
      report_scale030.scale030_experiment(run, out, image=args.image,
                                          data_dir=args.data_dir)
      if args.archive:
        print(f'archived {run["workdir"]} as {archive_run(run, pathlib.Path(args.archive))}')
    else:
      write_report(args.workdirs, out, [s for s in args.sets.split(',') if s],
                   args.data_dir, args.image, args.reevaluate,
                   pathlib.Path(args.archive) if args.archive else None)
  except (ValueError, FileNotFoundError, datasets.DatasetError,
          image_io.ImageReadError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
