"""jaxsr.report on tiny runs of the real trainer."""

import dataclasses
import json
import math
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image
import skimage.data

from jaxsr.protocol import color
from configs import common
from jaxsr import runs as jaxsr_runs
from jaxsr.runs import load_trained
from jaxsr import metric_writers
from jaxsr.protocol import metrics
from jaxsr import report
from jaxsr.report import scale030 as report_scale030
from jaxsr import train
from jaxsr.protocol.imresize import imresize

REPO = pathlib.Path(__file__).resolve().parent.parent
SET = 'embedded_test'  # three 256×256 photos inside scikit-image: no data root needed


def tiny_config(model, scale, steps, scales=(), **kwargs):
  c = common.base_config(model, scale=scale)
  c.model.update(kwargs)
  c.data.train = 'embedded_train'
  c.data.max_train_images = 2
  c.data.scales = scales
  # A batch mixing scales is cut by HR size.
  c.data.patch_size, c.data.hr_patch_size = (0, 16) if scales else (8, 41)
  c.train.steps = steps
  c.train.batch_size = 8
  c.train.log_every = 1
  c.checkpoint.every = 2
  c.checkpoint.use_async = False
  c.eval.sets = SET
  c.eval.every = 2
  return c


# The report names runs by their configs: model, fields off the defaults, and what
# tells two runs of one model apart.
LABELS = {'ees_x2': 'EES ×2 4 steps', 'ees_x3': 'EES ×3 2 steps',
          'vdsr': 'VDSR depth=3 features=8'}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """Three finished runs: EES ×2 and ×3 (learned upsampling), VDSR on ×2 and ×3."""
  root = tmp_path_factory.mktemp('runs')
  configs = {'ees_x2': tiny_config('ees', 2, 4), 'ees_x3': tiny_config('ees', 3, 2),
             'vdsr': tiny_config('vdsr', 2, 2, scales=(2, 3), depth=3, features=8)}
  for name, c in configs.items():
    train.train_and_evaluate(c, root / name, devices=jax.devices()[:1])
  return {name: root / name for name in configs}


@pytest.fixture(scope='module')
def report_out(runs, tmp_path_factory):
  out = tmp_path_factory.mktemp('report')
  table = report.write_report(list(runs.values()), out, [SET])
  return out, table


def table_rows(markdown: str) -> list[list[str]]:
  lines = [l for l in markdown.splitlines() if l.startswith('| ')][1:]
  return [[c.strip() for c in l.strip('|').split('|')] for l in lines]


def test_table_matches_metrics_jsonl(runs, report_out):
  out, table = report_out
  rows = table_rows((out / 'results.md').read_text())
  assert table in (out / 'results.md').read_text()
  for name, workdir in runs.items():
    logged = metric_writers.read_metrics(workdir)
    run = jaxsr_runs.load_run(workdir)
    cached = json.loads((workdir / 'benchmark.json').read_text())
    for i, scale in enumerate(run.scales):
      key = f'eval/{SET}/psnr_y' if i == 0 else f'eval/{SET}/x{scale:g}/psnr_y'
      evals = {r['step']: r[key] for r in logged if key in r}
      score = cached['sets'][SET][f'x{scale:g}']
      # The report scores the best checkpoint again: the number training logged.
      assert score['psnr_y'] == pytest.approx(evals[cached['step']], abs=1e-4)
      if i == 0:
        assert cached['step'] == max(evals, key=evals.get)
      row = next(r for r in rows if r[0] == LABELS[name] and r[3] == f'×{scale:g}')
      assert row[4] == '1'  # one seed
      assert row[5].replace('*', '').startswith(f"{score['psnr_y']:.2f} / ")
      assert row[6] == f'{logged[-1]["step"]:,}'
      assert row[7] == report.format_duration(logged[-1]['train/elapsed_s'])
      bicubic = next(r for r in rows if r[0] == 'bicubic' and r[3] == f'×{scale:g}')
      bicubic_logged = logged[-1][key.replace('psnr_y', 'bicubic_psnr_y')]
      assert bicubic[5].startswith(f'{bicubic_logged:.2f} / ')
    _, _, params, _ = load_trained(str(workdir), None, None)
    assert row[2] == f'{sum(x.size for x in jax.tree.leaves(params)):,}'


def test_runs_of_several_scales_share_one_report(report_out):
  out, _ = report_out
  rows = table_rows((out / 'results.md').read_text())
  ees_x2, ees_x3, vdsr = LABELS.values()
  assert [(r[0], r[3]) for r in rows] == [
      ('bicubic', '×2'), (ees_x2, '×2'), (vdsr, '×2'),
      ('bicubic', '×3'), (ees_x3, '×3'), (vdsr, '×3')]
  summary = json.loads((out / 'results.json').read_text())
  assert summary[vdsr]['scales'] == [2.0, 3.0]
  assert set(summary[vdsr]['benchmark'][SET]) == {'x2', 'x3'}
  assert summary[vdsr]['runs'] == ['vdsr'] and summary[vdsr]['seeds'] == [0]


def test_figures_are_written_and_not_blank(report_out):
  out, _ = report_out
  plot = np.asarray(Image.open(out / 'convergence.png').convert('RGB')).astype(int)
  assert plot.shape[1] > 800 and plot.shape[0] > 300
  coloured = (plot.max(-1) - plot.min(-1)) > 60  # the runs' lines, not the gray axes
  assert coloured.sum() > 500
  figure = np.asarray(Image.open(out / 'comparison.png').convert('RGB'))
  assert figure.shape[0] > 800 and figure.shape[1] > 800  # two scales: two blocks
  assert len(np.unique(figure.reshape(-1, 3), axis=0)) > 5000  # photographs


def test_figures_are_rgb_and_long_rows_wrap(tmp_path):
  from jaxsr.report import figures as report_figures
  img = np.asarray(skimage.data.chelsea()[:64, :64])
  sizes = {}
  for n in (report_figures.MAX_COLUMNS, report_figures.MAX_COLUMNS + 2):
    path = tmp_path / f'{n}.png'
    report_figures.panel_figure([('×2', [(f'p{i}', img) for i in range(n)])], path,
                                (0, 0, 16), 'title')
    assert Image.open(path).mode == 'RGB'
    sizes[n] = Image.open(path).size
  (w7, h7), (w9, h9) = sizes.values()
  assert w9 == w7 and h9 > 1.8 * h7  # 9 panels: a second row, not wider


def test_a_committed_run_regenerates_the_report_exactly(runs, report_out, tmp_path,
                                                       monkeypatch):
  """No checkpoints, only config.json, metrics.jsonl and the report's caches."""
  out, _ = report_out
  report.write_report(list(runs.values()), tmp_path / 'first', [SET],
                      archive=tmp_path / 'archive')
  copies = [tmp_path / 'archive' / name for name in runs]
  for copy in copies:
    assert sorted(p.name for p in copy.iterdir()) == sorted(report.ARCHIVED)

  def no_evaluation(*args, **kwargs):
    raise AssertionError('the cached report evaluated a model')
  monkeypatch.setattr(jaxsr_runs, 'load_trained', no_evaluation)
  report.write_report(copies, tmp_path / 'out', [SET])
  for name in ('results.md', 'results.json', 'convergence.png', 'comparison.png'):
    assert (tmp_path / 'out' / name).read_bytes() == (out / name).read_bytes(), name
  with pytest.raises(report.ReportError, match='no checkpoint to evaluate on set14'):
    report.write_report(copies[:1], tmp_path / 'out2', [SET, 'set14'])


def test_runs_without_eval_rows(runs, tmp_path, capsys):
  workdir = tmp_path / 'no_eval'
  shutil.copytree(runs['ees_x3'], workdir)
  (workdir / 'benchmark.json').unlink()
  rows = metric_writers.read_metrics(workdir)
  (workdir / 'metrics.jsonl').write_text(''.join(
      json.dumps({k: v for k, v in r.items() if not k.startswith('eval/')}) + '\n'
      for r in rows))
  report.write_report([workdir], tmp_path / 'out', [SET])
  assert 'no eval rows in metrics.jsonl: no_eval' in capsys.readouterr().err
  assert (tmp_path / 'out' / 'convergence.png').stat().st_size > 10_000
  assert '| EES | ees |' in (tmp_path / 'out' / 'results.md').read_text()


def test_a_folder_without_config_json_is_a_one_line_error(tmp_path, capsys):
  (tmp_path / 'not_a_run').mkdir()
  assert report.main([str(tmp_path / 'not_a_run'), f'--out={tmp_path / "out"}']) == 1
  err = capsys.readouterr().err.strip()
  assert err == (f'error: {tmp_path / "not_a_run"}: no config.json, '
                 'not a jaxsr training workdir')
  assert not (tmp_path / 'out').exists()


def independent_bicubic_psnr(img: np.ndarray, factor: float) -> tuple[tuple, float]:
  """imresize and the metrics directly: Y, downscale by factor, back to the HR size."""
  y = np.round(color.y_channel(img))
  lr = imresize(y / 255.0, factor)
  up = imresize(lr, output_size=y.shape)
  border = math.ceil(1 / factor)
  return lr.shape, metrics.evaluate_y_pair(up * 255.0, y, border)['psnr_y']


def test_scale030_experiment(runs, tmp_path):
  image = tmp_path / 'chelsea.png'
  Image.fromarray(skimage.data.chelsea()[60:200, 100:260]).save(image)
  out = tmp_path / 'out'
  assert report.main(['--experiment=scale030', f'--workdir={runs["vdsr"]}',
                      f'--image={image}', f'--out={out}',
                      f'--archive={tmp_path / "archive"}']) == 0
  result = json.loads((out / 'scale030.json').read_text())
  lr_shape, bicubic_psnr = independent_bicubic_psnr(skimage.data.chelsea()[60:200, 100:260],
                                                    0.30)
  assert result['hr_size'] == [140, 160] and result['lr_size'] == [42, 48] == list(lr_shape)
  assert result['bicubic']['psnr_y'] == pytest.approx(bicubic_psnr, abs=1e-9)
  assert 15 < result['sr']['psnr_y'] < 60 and 0 < result['sr']['ssim_y'] <= 1
  table = (out / 'scale030.md').read_text()
  assert f"| bicubic | {result['bicubic']['psnr_y']:.2f} |" in table
  assert Image.open(out / 'scale030.png').size[0] > 800
  # The archived run (no checkpoints) gives the same files from its cache.
  assert not (tmp_path / 'archive' / 'vdsr' / 'checkpoints').exists()
  assert report.main(['--experiment=scale030', f'--workdir={tmp_path / "archive" / "vdsr"}',
                      f'--image={image}', f'--out={tmp_path / "again"}']) == 0
  for name in ('scale030.json', 'scale030.md', 'scale030.png'):
    assert (tmp_path / 'again' / name).read_bytes() == (out / name).read_bytes(), name


def test_scale030_needs_a_model_on_the_bicubic_input(runs, tmp_path, capsys):
  assert report.main(['--experiment=scale030', f'--workdir={runs["ees_x2"]}',
                      f'--out={tmp_path}']) == 1
  assert 'learned stride' in capsys.readouterr().err


def test_scale030_on_set5_butterfly(runs, tmp_path, data_dir):
  result = report_scale030.scale030_experiment(
      jaxsr_runs.load_run(runs['vdsr']), tmp_path, image=None, data_dir=str(data_dir))
  hr = np.asarray(Image.open(data_dir / 'set5' / 'butterfly.png').convert('RGB'))
  assert result['image'] == 'butterfly'
  assert result['bicubic']['psnr_y'] == pytest.approx(
      independent_bicubic_psnr(hr, 0.30)[1], abs=1e-9)


def test_archive_refuses_to_replace_another_run_of_the_same_name(runs, tmp_path):
  report.archive_run(jaxsr_runs.load_run(runs['ees_x2']), tmp_path / 'archive')
  report.archive_run(jaxsr_runs.load_run(runs['ees_x2']), tmp_path / 'archive')  # same run: fine
  other = tmp_path / 'elsewhere' / 'ees_x2'
  shutil.copytree(runs['ees_x3'], other)
  with pytest.raises(report.ReportError, match='already archives another run'):
    report.archive_run(jaxsr_runs.load_run(other), tmp_path / 'archive')


def test_help_lists_the_flags():
  proc = subprocess.run([sys.executable, '-m', 'jaxsr.report', '--help'], cwd=REPO,
                        capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  for flag in ('--out', '--sets', '--archive', '--reevaluate', '--experiment', '--workdir'):
    assert flag in proc.stdout


def test_workdirs_may_come_before_between_and_after_the_flags(runs, report_out, tmp_path):
  out, _ = report_out
  assert report.main([str(runs['ees_x2']), f'--out={tmp_path}', str(runs['ees_x3']),
                      f'--sets={SET}', str(runs['vdsr'])]) == 0
  assert (tmp_path / 'results.md').read_bytes() == (out / 'results.md').read_bytes()


@pytest.mark.parametrize('args,message', [
    ([], 'error: give --out'),
    (['--out=x'], 'error: give one or more workdirs'),
    (['--out=x', '--experiment=scale030'], 'takes one run: --workdir'),
    (['--out=x', '--nosuchflag'], 'nosuchflag'),
])
def test_usage_errors_are_one_line_and_exit_2(args, message, capsys):
  assert report.main(args) == 2
  err = capsys.readouterr().err
  assert message in err and err.count('\n') == 1


def test_a_run_is_a_typed_record_that_a_report_leaves_as_it_found_it(runs, tmp_path):
  run = jaxsr_runs.load_run(runs['vdsr'])
  assert (run.label, run.model_name, run.scales) == ('vdsr', 'vdsr', (2.0, 3.0))
  with pytest.raises(dataclasses.FrozenInstanceError):
    run.label = 'other'
  before = dataclasses.asdict(run)
  scores = report.benchmark(run, [SET], None, reevaluate=False)
  assert scores.step == run.checkpoint_step and set(scores.sets) == {SET}
  assert dataclasses.asdict(run) == before


def test_scale030_reevaluate_recomputes_the_cached_output(runs, tmp_path):
  image = tmp_path / 'chelsea.png'
  Image.fromarray(skimage.data.chelsea()[60:200, 100:260]).save(image)
  args = ['--experiment=scale030', f'--workdir={runs["vdsr"]}', f'--image={image}']
  assert report.main(args + [f'--out={tmp_path / "first"}']) == 0
  from jaxsr import image_io
  from jaxsr.report import figures as report_figures
  key = report_figures.image_key('chelsea', image_io.read_image(image))
  meta = runs['vdsr'] / 'report_cache' / f'scale0.3-{key}.json'
  stale = json.loads(meta.read_text())
  stale['score']['psnr_y'] = -1.0
  meta.write_text(json.dumps(stale))
  assert report.main(args + [f'--out={tmp_path / "cached"}']) == 0
  assert json.loads((tmp_path / 'cached' / 'scale030.json').read_text())['sr']['psnr_y'] == -1
  assert report.main(args + [f'--out={tmp_path / "again"}', '--reevaluate']) == 0
  for name in ('scale030.json', 'scale030.png'):
    assert ((tmp_path / 'again' / name).read_bytes() ==
            (tmp_path / 'first' / name).read_bytes()), name


def test_a_run_without_checkpoint_left_out_of_the_figure_names_its_cached_image(
    runs, tmp_path, capsys):
  """An archived run's panels are of the image it was reported on; on another
  image it is left out with a line naming the image its panels are of."""
  report.write_report([runs['ees_x3']], tmp_path / 'first', [SET], archive=tmp_path / 'archive')
  (cached,) = {p.stem.rsplit('-', 2)[0]
               for p in (tmp_path / 'archive' / 'ees_x3' / 'report_cache').glob('*.png')}
  other = tmp_path / 'other.png'
  Image.fromarray(skimage.data.astronaut()[:96, :96]).save(other)
  capsys.readouterr()
  report.write_report([tmp_path / 'archive' / 'ees_x3'], tmp_path / 'out', [SET],
                      image=str(other))
  err = capsys.readouterr().err
  assert f'no checkpoint in {tmp_path / "archive" / "ees_x3"} to draw other; its cached ' \
         f'panels are of {cached}' in err, err


def test_the_figure_image_falls_back_to_the_embedded_photo_with_a_warning(tmp_path, capsys):
  from jaxsr.report import figures
  name, hr = figures.load_image(None, ['set5'], str(tmp_path))
  assert hr.ndim == 3
  err = capsys.readouterr().err
  assert f'figures: no set5 under the data root ({tmp_path}); they show the embedded ' \
         f'held-out photo {name} instead' in err, err
