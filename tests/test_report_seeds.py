"""jaxsr.report over seeds: runs that differ only by train.seed as one group."""

import json
import math
import pathlib
import shutil
import statistics

import jax
import numpy as np
import pytest
from PIL import Image

from jaxsr import report
from jaxsr import runs as jaxsr_runs
from jaxsr import train
from jaxsr.report import figures as report_figures
from jaxsr.report import groups as report_groups
from tests.test_report import SET, table_rows, tiny_config

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope='module')
def seed_runs(tmp_path_factory):
  """EES at seeds 0, 1, 2 and EES with wider shallow layers at seeds 0, 1."""
  root = tmp_path_factory.mktemp('seed_runs')
  names = []
  for widths, seeds in (((4, 8), (0, 1, 2)), ((8, 16), (0, 1))):
    for seed in seeds:
      c = tiny_config('ees', 2, 4, shallow_features=widths)
      c.train.seed = seed
      name = f'ees_w{widths[0]}_seed{seed}'
      train.train_and_evaluate(c, root / name, devices=jax.devices()[:1])
      names.append(name)
  return [root / n for n in names]


@pytest.fixture(scope='module')
def seed_report(seed_runs, tmp_path_factory):
  out = tmp_path_factory.mktemp('seed_report')
  report.write_report(seed_runs, out, [SET])
  return out


def psnrs(workdirs):
  return [json.loads((w / 'benchmark.json').read_text())['sets'][SET]['x2']['psnr_y']
          for w in workdirs]


def test_runs_differing_only_by_seed_are_one_group(seed_runs):
  groups = report_groups.group_runs([jaxsr_runs.load_run(w) for w in seed_runs])
  assert [(g.label, g.n, g.seeds) for g in groups] == [
      ('EES', 3, [0, 1, 2]), ('EES shallow_features=8,16', 2, [0, 1])]


def test_table_shows_mean_std_and_count(seed_runs, seed_report):
  rows = {r[0]: r for r in table_rows((seed_report / 'results.md').read_text())}
  for label, workdirs in (('EES', seed_runs[:3]), ('EES shallow_features=8,16',
                                                   seed_runs[3:])):
    values = psnrs(workdirs)
    assert rows[label][4] == str(len(workdirs))
    cell = rows[label][5].replace('*', '')
    assert cell.startswith(f'{statistics.mean(values):.2f} ± '
                           f'{statistics.stdev(values):.2f} / ')
  summary = json.loads((seed_report / 'results.json').read_text())
  entry = summary['EES']
  assert entry['runs'] == [w.name for w in seed_runs[:3]] and entry['seeds'] == [0, 1, 2]
  assert entry['benchmark'][SET]['x2']['psnr_y'] == pytest.approx(
      statistics.mean(psnrs(seed_runs[:3])))
  assert entry['benchmark_std'][SET]['x2']['psnr_y'] == pytest.approx(
      statistics.stdev(psnrs(seed_runs[:3])))


def test_verdict_states_the_difference_and_the_spread_rule(seed_runs, seed_report):
  a, b = psnrs(seed_runs[3:]), psnrs(seed_runs[:3])
  delta = statistics.mean(a) - statistics.mean(b)
  threshold = 2 * math.sqrt(statistics.variance(a) / 2 + statistics.variance(b) / 3)
  text = (seed_report / 'results.md').read_text()
  assert '2·sqrt(s_a²/n_a + s_b²/n_b)' in text
  word = 'exceeds' if abs(delta) > threshold else 'within'
  assert (f'- ×2 {SET}: EES shallow_features=8,16 − EES = {delta:+.2f} dB') in text
  assert f'n = 2 / 3); 2·SE = {threshold:.2f} dB: {word} the seed spread' in text
  verdict, = json.loads((seed_report / 'results.json').read_text())[
      'EES shallow_features=8,16']['verdicts']
  assert verdict['delta_psnr_y'] == pytest.approx(delta)
  assert verdict['threshold'] == pytest.approx(threshold)
  assert verdict['exceeds_seed_spread'] == (abs(delta) > threshold)


def test_one_run_each_is_undecided():
  one, other = report_groups.spread([30.0]), report_groups.spread([31.0, 31.2])
  verdict = report_groups.Verdict(2.0, 'set5', 'B', 'A', other, one)
  assert verdict.threshold is None and verdict.exceeds is None
  assert verdict.line('Set5').endswith('seed spread not measured (one run), undecided')


def test_convergence_is_the_mean_with_a_min_max_band(seed_runs, seed_report):
  group = report_groups.group_runs([jaxsr_runs.load_run(w) for w in seed_runs])[0]
  key = f'eval/{SET}/psnr_y'
  steps, _, mean, low, high = report_figures._curve(group, key)
  per_run = [{r['step']: r[key] for r in run.rows if key in r} for run in group.runs]
  assert steps == sorted(per_run[0])
  for i, step in enumerate(steps):
    values = [rows[step] for rows in per_run]
    assert (mean[i], low[i], high[i]) == pytest.approx(
        (np.mean(values), min(values), max(values)))
  plot = np.asarray(Image.open(seed_report / 'convergence.png').convert('RGB')).astype(int)
  assert ((plot.max(-1) - plot.min(-1)) > 60).sum() > 500


def test_labels_come_from_the_config_not_the_workdir():
  runs_dir = REPO / 'docs' / 'results' / 'runs'
  labels = {name: report_groups.model_label(jaxsr_runs.read_config(runs_dir / name))
            for name in ('name-eed_scale-2', 'name-eeds_upsampling-unpool',
                         'name-dscnn_scale-2', 'vdsr')}
  assert labels == {'name-eed_scale-2': 'EED', 'name-eeds_upsampling-unpool': 'EEDS unpool',
                    'name-dscnn_scale-2': 'DSCNN', 'vdsr': 'VDSR'}


def test_runs_of_one_model_are_told_apart_by_what_differs(seed_runs, tmp_path):
  copy = tmp_path / 'ees_x2_lr'
  shutil.copytree(seed_runs[0], copy)
  config = json.loads((copy / 'config.json').read_text())
  config['optim']['lr'] = 0.01
  (copy / 'config.json').write_text(json.dumps(config))
  groups = report_groups.group_runs([jaxsr_runs.load_run(seed_runs[0]),
                                     jaxsr_runs.load_run(copy)])
  assert [g.label for g in groups] == ['EES optim.lr=0.001', 'EES optim.lr=0.01']


def test_seed_named_runs_whose_configs_differ_are_kept_apart(seed_runs, tmp_path, capsys):
  copy = tmp_path / 'ees_w4_seed3'
  shutil.copytree(seed_runs[0], copy)
  config = json.loads((copy / 'config.json').read_text())
  config['train']['steps'] = 99
  (copy / 'config.json').write_text(json.dumps(config))
  groups = report_groups.group_runs([jaxsr_runs.load_run(w) for w in seed_runs[:3]]
                                    + [jaxsr_runs.load_run(copy)])
  assert [g.n for g in groups] == [3, 1]
  assert 'ees_w4_seed* runs differ in more than train.seed' in capsys.readouterr().err


def test_labels_name_groups_by_a_run_folder(seed_runs, tmp_path):
  names = {seed_runs[1].name: 'EES (paper widths)', seed_runs[4].name: 'EES, wide'}
  groups = report_groups.group_runs([jaxsr_runs.load_run(w) for w in seed_runs], names)
  assert [(g.label, g.n) for g in groups] == [('EES (paper widths)', 3), ('EES, wide', 2)]
  out = tmp_path / 'labelled'
  assert report.main([*map(str, seed_runs), f'--out={out}', f'--sets={SET}',
                      f'--labels={seed_runs[0].name}=EES narrow']) == 0
  rows = [r[0] for r in table_rows((out / 'results.md').read_text())]
  assert 'EES narrow' in rows and 'EES shallow_features=8,16' in rows


@pytest.mark.parametrize('flag,message', [
    ('--labels=nosuchrun=X', 'nosuchrun, which is no run of this report'),
    ('--labels=no_equals_sign', 'expected NAME=LABEL'),
])
def test_a_bad_label_is_one_line_before_any_evaluation(seed_runs, tmp_path, capsys, flag,
                                                       message):
  out = tmp_path / 'never'
  assert report.main([*map(str, seed_runs), f'--out={out}', f'--sets={SET}', flag]) != 0
  err = capsys.readouterr().err
  assert message in err and 'Traceback' not in err and not out.exists()


def test_two_labels_for_one_group_are_refused(seed_runs):
  names = {seed_runs[0].name: 'A', seed_runs[1].name: 'B'}
  with pytest.raises(ValueError, match='two labels to the group'):
    report_groups.group_runs([jaxsr_runs.load_run(w) for w in seed_runs], names)


def test_a_run_from_before_lr_multipliers_groups_with_one_at_its_default(seed_runs, tmp_path):
  """Runs recorded before config.optim.lr_multipliers and config.data.hr_downscales
  existed trained without them: one group with a run at the defaults, apart
  from one that sets them."""
  olds = []
  for i, multipliers in enumerate([None, 'shallow=0.1']):
    copy = tmp_path / f'ees_seed{i + 7}'
    shutil.copytree(seed_runs[1], copy)
    config = json.loads((copy / 'config.json').read_text())
    assert config['optim']['lr_multipliers'] == ''
    config['train']['seed'] = i + 7
    if multipliers is None:
      del config['optim']['lr_multipliers'], config['data']['hr_downscales']
    else:
      config['optim']['lr_multipliers'] = multipliers
    (copy / 'config.json').write_text(json.dumps(config))
    olds.append(copy)
  groups = report_groups.group_runs([jaxsr_runs.load_run(w) for w in [seed_runs[0], *olds]])
  assert [g.n for g in groups] == [2, 1]
  assert groups[1].label.endswith('optim.lr_multipliers=shallow=0.1'), groups[1].label
