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

Each run is read once into a `jaxsr.runs.Run`; its scores come back from
`benchmark` as `Scores` (with the step they belong to), and options such as
--reevaluate are passed to the parts that use them, never stored on the run.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import sys
from typing import Any, Sequence

from absl import flags

from jaxsr import command_line
from jaxsr import evaluators
from jaxsr import metric_writers
from jaxsr import runs as jaxsr_runs
from jaxsr.report import figures as report_figures
from jaxsr.report import groups as report_groups


class ReportError(ValueError):
  """A run or option the report cannot use; the message names it."""


@dataclasses.dataclass(frozen=True)
class Scores:
  """A run's benchmark scores and the checkpoint step they were computed at.

  sets: {set: {'x2': {psnr_y, ssim_y, n, bicubic_psnr_y, bicubic_ssim_y}}}.
  """
  step: int | None
  sets: dict[str, dict[str, dict[str, float]]]


def benchmark(run: jaxsr_runs.Run, sets: Sequence[str], data_dir: str | None,
              reevaluate: bool = False, evaluator_cache: dict | None = None) -> Scores:
  """The run's scores on `sets`, cached in <workdir>/benchmark.json.

  `evaluator_cache` (a dict kept across runs) shares the loaded images and the
  bicubic scores between runs of the same scales.
  """
  evaluator_cache = {} if evaluator_cache is None else evaluator_cache
  cache_path = run.workdir / 'benchmark.json'
  step = run.checkpoint_step
  cache = {}
  if cache_path.exists() and not reevaluate:
    cache = json.loads(cache_path.read_text())
    if step is not None and cache.get('step') != step:
      cache = {}  # the run has trained on since: score its new best checkpoint
  scores = cache.get('sets', {})
  keys = [evaluators.scale_key(s) for s in run.scales]
  missing = [s for s in sets if not all(k in scores.get(s, {}) for k in keys)]
  if missing:
    if step is None:
      raise ReportError(f'{run.workdir}: no checkpoint to evaluate on {",".join(missing)} '
                        '(and benchmark.json does not have them)')
    model, params = run.load_trained()
    predict = (evaluators.bicubic_predict if run.model_name == 'bicubic'
               else evaluators.model_predict(model, params))
    for set_name in missing:
      print(f'evaluating {run.label} (step {step}) on {set_name}...', flush=True)
      key = (set_name, run.scales, model.channels)
      if key not in evaluator_cache:
        evaluator_cache[key] = evaluators.BenchmarkEvaluator(
            set_name, run.scales, channels=model.channels, data_dir=data_dir)
      ev = evaluator_cache[key]
      result, bicubic = ev.run(predict), ev.bicubic()
      scores[set_name] = {k: {**result[k], 'bicubic_psnr_y': bicubic[k]['psnr_y'],
                              'bicubic_ssim_y': bicubic[k]['ssim_y']} for k in result}
    evaluators.write_json(cache_path, {'step': step, 'sets': scores})
    cache = {'step': step}
  return Scores(step=cache.get('step'), sets={s: scores[s] for s in sets})


ARCHIVED = ('config.json', 'metrics.jsonl', 'benchmark.json', 'report_cache')


def archive_run(run: jaxsr_runs.Run, dest: pathlib.Path) -> pathlib.Path:
  """Copies the files a report reads of `run` to dest/<workdir name>."""
  target = dest / run.workdir.name
  if target.resolve() == run.workdir.resolve():
    return target
  archived = target / 'config.json'
  if archived.is_file() and archived.read_text() != (run.workdir / 'config.json').read_text():
    raise ReportError(f'{target} already archives another run (its config.json differs '
                      f'from {run.workdir}\'s): rename one of the workdirs')
  tmp = dest / f'.{target.name}.tmp'
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir(parents=True)
  for name in ARCHIVED:
    src = run.workdir / name
    if src.is_dir():
      shutil.copytree(src, tmp / name)
    elif src.is_file():
      shutil.copy2(src, tmp / name)
  shutil.rmtree(target, ignore_errors=True)
  tmp.rename(target)
  return target


def training_summary(run: jaxsr_runs.Run) -> tuple[int, float]:
  """(last logged step, training wall-clock seconds) from metrics.jsonl."""
  return metric_writers.training_summary(run.rows)


def format_duration(seconds: float) -> str:
  if seconds < 120:
    return f'{seconds:.0f} s'
  if seconds < 7200:
    return f'{seconds / 60:.1f} min'
  return f'{seconds / 3600:.2f} h'


def results_table(groups: Sequence[report_groups.Group],
                  scores: dict[pathlib.Path, Scores], sets: Sequence[str]) -> str:
  """One row per group and scale (bicubic first), PSNR / SSIM (Y) per set.

  A group of several seeds shows mean ± std over them; the best mean PSNR
  of each set and scale is bold.
  """
  head = (['run', 'model', 'params', 'scale', 'seeds'] +
          [f'{report_figures.set_title(s)} PSNR / SSIM' for s in sets] +
          ['steps', 'train time'])
  lines = ['| ' + ' | '.join(head) + ' |',
           '|' + '---|' * 4 + '---:|' * (len(sets) + 3)]
  for scale in sorted({s for g in groups for s in g.scales}):
    key = evaluators.scale_key(scale)
    at_scale = [g for g in groups if scale in g.scales]

    def spread(g, s, metric):
      return report_groups.metric_spread(g, [scores[r.workdir] for r in g.runs], s, key,
                                         metric)
    best = {s: max(spread(g, s, 'psnr_y').mean for g in at_scale) for s in sets}
    first = scores[at_scale[0].first.workdir].sets
    cells = ['bicubic', 'bicubic', '–', f'×{scale:g}', ''] + [
        f"{first[s][key]['bicubic_psnr_y']:.2f} / {first[s][key]['bicubic_ssim_y']:.4f}"
        for s in sets] + ['', '']
    lines.append('| ' + ' | '.join(cells) + ' |')
    for g in at_scale:
      steps, _ = training_summary(g.first)
      elapsed = sum(training_summary(r)[1] for r in g.runs) / g.n
      cells = [g.label, g.first.model_name, f'{g.first.parameter_count:,}',
               f'×{scale:g}', str(g.n)]
      for s in sets:
        psnr, ssim = spread(g, s, 'psnr_y'), spread(g, s, 'ssim_y')
        text = report_groups.format_spread(psnr, 2)
        cells.append((f'**{text}**' if psnr.mean == best[s] and len(at_scale) > 1
                      else text) + ' / ' + report_groups.format_spread(ssim, 4))
      cells += [f'{steps:,}', format_duration(elapsed)]
      lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def verdicts(groups: Sequence[report_groups.Group], scores: dict[pathlib.Path, Scores],
             sets: Sequence[str]) -> list[report_groups.Verdict]:
  """Each group against the first group of its scale, per set (PSNR, Y)."""
  out = []
  for scale in sorted({s for g in groups for s in g.scales}):
    key = evaluators.scale_key(scale)
    at_scale = [g for g in groups if scale in g.scales]
    for g in at_scale[1:]:
      for s in sets:
        a, b = (report_groups.metric_spread(x, [scores[r.workdir] for r in x.runs], s,
                                            key, 'psnr_y') for x in (g, at_scale[0]))
        out.append(report_groups.Verdict(scale, s, g.label, at_scale[0].label, a, b))
  return out


def _summary(group: report_groups.Group, scores: dict[pathlib.Path, Scores]
             ) -> dict[str, Any]:
  """results.json's entry of a group; one run's scores as they are, several
  runs' as means with their std and each run's scores."""
  run_scores = [scores[r.workdir] for r in group.runs]
  steps, _ = training_summary(group.first)
  entry = {'model': group.first.model_name, 'params': group.first.parameter_count,
           'scales': list(group.scales), 'steps': steps,
           'train_time_s': sum(training_summary(r)[1] for r in group.runs) / group.n,
           'runs': [r.workdir.name for r in group.runs], 'seeds': group.seeds}
  if group.n == 1:
    return {**entry, 'scored_step': run_scores[0].step, 'benchmark': run_scores[0].sets}
  mean, std = {}, {}
  for set_name, by_scale in run_scores[0].sets.items():
    for key, metrics in by_scale.items():
      for metric in metrics:
        values = [s.sets[set_name][key][metric] for s in run_scores]
        result = report_groups.spread(values)
        mean.setdefault(set_name, {}).setdefault(key, {})[metric] = result.mean
        std.setdefault(set_name, {}).setdefault(key, {})[metric] = result.std
  return {**entry, 'scored_step': [s.step for s in run_scores], 'benchmark': mean,
          'benchmark_std': std,
          'per_run': {r.workdir.name: s.sets for r, s in zip(group.runs, run_scores)}}


def write_report(workdirs: Sequence[str], out: pathlib.Path, sets: Sequence[str],
                 data_dir: str | None = None, image: str | None = None,
                 reevaluate: bool = False, archive: pathlib.Path | None = None,
                 names: dict[str, str] | None = None) -> str:
  """Writes results.md/.json, convergence.png and comparison.png; returns the table.

  names: {workdir folder name: label} for the groups of those runs (--labels).
  """
  if not sets:
    raise ReportError('--sets is empty')
  loaded = [jaxsr_runs.load_run(w) for w in workdirs]
  labels = [r.label for r in loaded]
  runs = [dataclasses.replace(r, label=f'{r.workdir.parent.name}/{r.label}')
          if labels.count(r.label) > 1 else r for r in loaded]
  try:  # before any evaluation: a bad --labels costs nothing
    groups = report_groups.group_runs(runs, names)
  except ValueError as e:
    raise ReportError(str(e)) from None
  evaluator_cache = {}
  scores = {r.workdir: benchmark(r, sets, data_dir, reevaluate, evaluator_cache)
            for r in runs}
  out.mkdir(parents=True, exist_ok=True)
  table = results_table(groups, scores, sets)
  found = verdicts(groups, scores, sets)
  verdict_text = ''
  if found:
    verdict_text = (
        f'\n\nEach row against the first row of its scale, mean PSNR (Y). A '
        f'difference exceeds the seed spread when {report_groups.SPREAD_RULE}:\n\n'
        + '\n'.join(f'- {v.line(report_figures.set_title(v.set_name))}' for v in found))
  several = any(g.n > 1 for g in groups)
  (out / 'results.md').write_text(
      '# Results\n\nPSNR (dB) / SSIM on the Y channel of each run\'s best checkpoint, '
      'by the standard protocol (bicubic degradation, `scale` pixels shaved). '
      + ('Runs that differ only by seed are one row: mean ± sample std over its '
         '`seeds` runs. ' if several else '') +
      '`steps` and `train time` are the last logged step and the training '
      'wall-clock time (evaluation excluded) from metrics.jsonl.\n\n'
      + table + verdict_text
      + '\n\n![convergence](convergence.png)\n\n![comparison](comparison.png)\n')
  summary = {g.label: _summary(g, scores) for g in groups}
  for v in found:
    summary[v.label].setdefault('verdicts', []).append(v.as_dict())
  evaluators.write_json(out / 'results.json', summary)
  report_figures.convergence_plot(groups, out / 'convergence.png')
  report_figures.comparison_figure(groups, out / 'comparison.png', image=image,
                                   sets=sets, data_dir=data_dir, reevaluate=reevaluate)
  print(table + verdict_text)
  print(f'wrote {out}/results.md, results.json, convergence.png, comparison.png')
  if archive is not None:
    for run in runs:
      print(f'archived {run.workdir} as {archive_run(run, archive)}')
  return table


STANDARD_SETS = ('set5', 'set14', 'b100')


def default_sets(runs: Sequence[jaxsr_runs.Run], data_dir: str | None) -> list[str]:
  """Set5, Set14 and B100 when all are there, else the sets the runs logged."""
  from jaxsr import datasets
  if all(datasets.has_dataset(s, data_dir) for s in STANDARD_SETS):
    return list(STANDARD_SETS)
  logged = []
  for run in runs:
    for row in run.rows:
      for key in row:
        parts = key.split('/')
        if len(parts) == 3 and parts[0] == 'eval' and parts[2] == 'psnr_y':
          if parts[1] not in logged:
            logged.append(parts[1])
  if not logged:
    raise ReportError(f'no data root with {", ".join(STANDARD_SETS)} and no evaluation '
                      'in the runs\' metrics.jsonl: give --sets and --data_dir')
  return logged


FLAGS = flags.FlagValues()
_OUT = flags.DEFINE_string('out', None, 'Output folder.', flag_values=FLAGS)
_SETS = flags.DEFINE_string(
    'sets', None, 'Benchmark sets for the table (names or folders). Default: '
    f'{",".join(STANDARD_SETS)} when the data root has them, else the sets the runs '
    'were evaluated on while training (e.g. embedded_test).', flag_values=FLAGS)
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Data root (default $JAXSR_DATA_DIR).',
                                flag_values=FLAGS)
_IMAGE = flags.DEFINE_string(
    'image', None, 'HR image file for the figures (default: Set5 butterfly, else the '
    'first image of the first set).', flag_values=FLAGS)
_ARCHIVE = flags.DEFINE_string(
    'archive', None, "Copy each run's config, metrics and report caches (no "
    'checkpoints) to this folder.', flag_values=FLAGS)
_REEVALUATE = flags.DEFINE_bool('reevaluate', False, 'Ignore cached benchmark.json files '
                                'and figure outputs.', flag_values=FLAGS)
_LABELS = flags.DEFINE_multi_string(
    'labels', [], 'NAME=LABEL: the label of the group holding the run in the folder '
    'NAME, in tables, verdicts and legends (default: made from the config, e.g. '
    '"EEDS unpool"); repeat for more groups.', flag_values=FLAGS)
_EXPERIMENT = flags.DEFINE_enum('experiment', None, ['scale030'], 'A paper experiment '
                                'instead of the report.', flag_values=FLAGS)
_WORKDIR = flags.DEFINE_string('workdir', None, 'The run of --experiment.',
                               flag_values=FLAGS)


def _report(workdirs: list[str]) -> int:
  if not _OUT.value:
    raise command_line.UsageError('give --out: the folder to write the report to')
  out = pathlib.Path(_OUT.value)
  archive = pathlib.Path(_ARCHIVE.value) if _ARCHIVE.value else None
  if _EXPERIMENT.value:
    if not _WORKDIR.value or workdirs:
      raise command_line.UsageError(f'--experiment={_EXPERIMENT.value} takes one run: '
                                    '--workdir=<a VDSR run>')
    from jaxsr.report import scale030 as report_scale030
    run = jaxsr_runs.load_run(_WORKDIR.value)
    report_scale030.scale030_experiment(run, out, image=_IMAGE.value,
                                        data_dir=_DATA_DIR.value,
                                        reevaluate=_REEVALUATE.value)
    if archive is not None:
      print(f'archived {run.workdir} as {archive_run(run, archive)}')
    return 0
  if not workdirs:
    raise command_line.UsageError('give one or more workdirs')
  if _WORKDIR.value:
    raise command_line.UsageError('--workdir is for --experiment; give the runs of a '
                                  'report as arguments')
  if _SETS.value is None:
    sets = default_sets([jaxsr_runs.load_run(w) for w in workdirs], _DATA_DIR.value)
  else:
    sets = [s for s in _SETS.value.split(',') if s]
  names = {}
  for item in _LABELS.value:
    folder, sep, label = item.partition('=')
    if not sep or not folder.strip() or not label.strip():
      raise command_line.UsageError(f'--labels={item}: expected NAME=LABEL, NAME a '
                                    "run's folder name")
    names[folder.strip()] = label.strip()
  write_report(workdirs, out, sets, _DATA_DIR.value, _IMAGE.value, _REEVALUATE.value,
               archive, names)
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """The command line without the program name (default `sys.argv[1:]`)."""
  return command_line.run(_report, FLAGS, sys.argv[1:] if argv is None else argv,
                          program='python -m jaxsr.report', doc=__doc__)
