"""The benchmark protocol end to end: published bicubic tables and the CLI."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from jaxsr import evaluate
from jaxsr import evaluators

REPO = pathlib.Path(__file__).resolve().parent.parent

# Published bicubic PSNR / SSIM (Y), e.g. VDSR (Kim et al. 2016), Table 2.
PUBLISHED = {
    'set5': {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)},
    'set14': {2: (30.24, 0.8688), 3: (27.55, 0.7742), 4: (26.00, 0.7027)},
    'b100': {2: (29.56, 0.8431), 3: (27.21, 0.7385), 4: (25.96, 0.6675)},
}
SIZES = {'set5': 5, 'set14': 14, 'b100': 100}


@pytest.mark.parametrize('name', ['set5', 'set14', 'b100'])
def test_bicubic_reproduces_the_published_table(name, data_dir):
  evaluator = evaluators.BenchmarkEvaluator(name, [2, 3, 4], channels=1,
                                            data_dir=str(data_dir))
  results = evaluator.bicubic()
  for scale, (psnr, ssim) in PUBLISHED[name].items():
    got = results[f'x{scale}']
    assert got['n'] == SIZES[name]
    assert got['psnr_y'] == pytest.approx(psnr, abs=0.02), (name, scale)
    assert got['ssim_y'] == pytest.approx(ssim, abs=0.002), (name, scale)


def test_bicubic_jax_model_matches_the_numpy_reference(data_dir):
  from jaxsr import models
  model = models.get_model('bicubic', scale=3)
  evaluator = evaluators.BenchmarkEvaluator('set5', [3], data_dir=str(data_dir))
  jax_result = evaluator.run(evaluators.model_predict(model, {}))
  assert jax_result['x3']['psnr_y'] == pytest.approx(evaluator.bicubic()['x3']['psnr_y'],
                                                     abs=0.005)


@pytest.fixture
def photo_folder(tmp_path):
  folder = tmp_path / 'myphotos'
  folder.mkdir()
  Image.fromarray(skimage.data.coffee()[:90, :120]).save(folder / 'coffee.png')
  Image.fromarray(skimage.data.camera()[:64, :80]).save(folder / 'camera.png')  # gray
  return folder


def test_cli_prints_a_table_and_writes_json(photo_folder, tmp_path):
  out = tmp_path / 'res' / 'bicubic.json'
  proc = subprocess.run(
      [sys.executable, '-m', 'jaxsr.evaluate', '--model=bicubic', f'--sets={photo_folder}',
       '--scales=2,4', f'--json_out={out}'], cwd=REPO, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  results = json.loads(out.read_text())
  assert set(results) == {'myphotos'}
  assert set(results['myphotos']) == {'x2', 'x4'}
  assert results['myphotos']['x2']['n'] == 2
  assert results['myphotos']['x2']['psnr_y'] > results['myphotos']['x4']['psnr_y'] > 15
  assert '| myphotos |' in proc.stdout


def test_cli_scores_shipped_weights_above_bicubic(tmp_path):
  out = {}
  for model in ('--pretrained=eeds', '--model=bicubic'):
    path = tmp_path / f'{model[2:6]}.json'
    proc = subprocess.run(
        [sys.executable, '-m', 'jaxsr.evaluate', model, '--sets=embedded_test',
         '--scales=2', f'--json_out={path}'], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out[model] = json.loads(path.read_text())['embedded_test']['x2']['psnr_y']
  assert out['--pretrained=eeds'] > out['--model=bicubic'] + 0.5


def test_cli_scores_each_shipped_scale_with_its_own_weights(photo_folder, tmp_path, monkeypatch):
  """--pretrained without --scales: every shipped scale, each from its own file."""
  from configs import common
  from conftest import save_run
  from jaxsr import pretrained
  for scale in (2, 3):
    cfg = common.base_config('espcn', scale=scale)
    cfg.model.features = (4, 4)
    save_run(tmp_path / f'x{scale}', cfg, seed=scale)
    pretrained.export(tmp_path / f'x{scale}', out_dir=tmp_path / 'shipped')
  monkeypatch.setenv('JAXSR_PRETRAINED_DIR', str(tmp_path / 'shipped'))
  path = tmp_path / 'espcn.json'
  assert evaluate.main(['--pretrained=espcn', f'--sets={photo_folder}',
                        f'--json_out={path}']) == 0
  (scores,) = json.loads(path.read_text()).values()
  assert sorted(scores) == ['x2', 'x3'] and scores['x2'] != scores['x3']


def test_cli_evaluates_on_every_local_device(photo_folder, tmp_path, monkeypatch):
  import jax
  from jaxsr import pretrained
  meshes = []
  real = evaluators.model_predict
  monkeypatch.setattr(evaluators, 'model_predict',
                      lambda *a: meshes.append(a[2]) or real(*a))
  out = tmp_path / 'eeds.json'
  assert evaluate.main(['--pretrained=eeds', f'--sets={photo_folder}', '--scales=2',
                        f'--json_out={out}']) == 0
  assert [m.devices.size for m in meshes] == [jax.local_device_count()] == [8]
  model, params = pretrained.load('eeds', 2)
  one_device = evaluators.BenchmarkEvaluator(str(photo_folder), [2]).run(
      real(model, params))
  assert json.loads(out.read_text())['myphotos'] == one_device


@pytest.mark.parametrize('args,message', [
    (['--model=bicubic', '--sets=nosuchset'], 'nosuchset'),
    (['--pretrained=eeds', '--scales=7', '--sets=set5'], 'no pretrained weights eeds_x7'),
    (['--model=vdsrr', '--sets=set5'], 'unknown model'),
    (['--model=bicubic', '--scales=two'], 'scales must be numbers'),
])
def test_cli_bad_input_is_one_clear_line(args, message, tmp_path):
  proc = subprocess.run([sys.executable, '-m', 'jaxsr.evaluate', *args], cwd=REPO,
                        capture_output=True, text=True,
                        env=dict(os.environ, JAXSR_DATA_DIR=str(tmp_path)))
  assert proc.returncode != 0
  assert message in proc.stderr
  assert 'Traceback' not in proc.stderr


def test_cli_help_lists_the_flags():
  proc = subprocess.run([sys.executable, '-m', 'jaxsr.evaluate', '--help'], cwd=REPO,
                        capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  for flag in ('--json_out', '--sets', '--scales', '--pretrained', '--max_shapes'):
    assert flag in proc.stdout


def _no_evaluation(*args, **kwargs):
  raise AssertionError('evaluated before the inputs were checked')


@pytest.mark.parametrize('where,message', [
    ('a_file/out.json', 'a_file is a file, not a folder'),
    ('a_file/deeper/out.json', 'a_file is a file, not a folder'),
    ('a_folder', 'is a folder; give a file name'),
])
def test_json_out_that_cannot_be_written_fails_before_evaluating(
    where, message, photo_folder, tmp_path, monkeypatch, capsys):
  (tmp_path / 'a_file').write_text('not a folder')
  (tmp_path / 'a_folder').mkdir()
  monkeypatch.setattr(evaluators, 'BenchmarkEvaluator', _no_evaluation)
  out = tmp_path / where
  assert evaluate.main(['--model=bicubic', f'--sets={photo_folder}', '--scales=2',
                        f'--json_out={out}']) == 1
  captured = capsys.readouterr()
  assert captured.err == f'error: {out}: ' + captured.err.split(': ', 2)[2]
  assert message in captured.err and captured.err.count('\n') == 1
  assert '|' not in captured.out  # no table: nothing was evaluated
  assert not [p for p in tmp_path.rglob('*') if p.name.endswith('.tmp')]


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_json_out_in_a_read_only_folder_fails_before_evaluating(
    photo_folder, tmp_path, monkeypatch, capsys):
  locked = tmp_path / 'locked'
  locked.mkdir()
  locked.chmod(0o500)
  monkeypatch.setattr(evaluators, 'BenchmarkEvaluator', _no_evaluation)
  try:
    assert evaluate.main(['--model=bicubic', f'--sets={photo_folder}',
                          f'--json_out={locked / "new" / "out.json"}']) == 1
  finally:
    locked.chmod(0o700)
  assert f'cannot write in {locked}' in capsys.readouterr().err
  assert not list(locked.iterdir())


def test_a_results_file_is_strict_json_written_whole_or_not_at_all(tmp_path):
  results = {'set': {'x2': {'psnr_y': 30.0, 'ssim_y': 0.9, 'n': 1}}}
  evaluators.write_json(tmp_path / 'sub' / 'r.json', results)
  assert json.loads((tmp_path / 'sub' / 'r.json').read_text()) == results
  (tmp_path / 'taken').mkdir()  # e.g. made between the check and the write
  with pytest.raises(evaluators.ResultsFileError, match='taken: cannot write'):
    evaluators.write_json(tmp_path / 'taken', results)
  with pytest.raises(ValueError, match='NaN or an infinity'):
    evaluators.write_json(tmp_path / 'inf.json', {'psnr_y': float('inf')})
  assert sorted(p.name for p in tmp_path.rglob('*')) == ['r.json', 'sub', 'taken']


def _strict_json(text: str):
  def reject(constant):
    raise ValueError(f'not JSON: {constant}')
  return json.loads(text, parse_constant=reject)


def test_a_flat_image_keeps_the_psnr_finite_and_the_json_valid(photo_folder, tmp_path):
  Image.fromarray(np.full((40, 48, 3), 128, np.uint8)).save(photo_folder / 'flat.png')
  out = tmp_path / 'flat.json'
  assert evaluate.main(['--model=bicubic', f'--sets={photo_folder}', '--scales=2',
                        f'--json_out={out}']) == 0
  result = _strict_json(out.read_text())['myphotos']['x2']
  ev = evaluators.BenchmarkEvaluator(str(photo_folder), [2])
  rows = {r['image']: r['psnr_y'] for r in ev.per_image(evaluators.bicubic_predict, 2)}
  assert rows['flat'] == pytest.approx(10 * np.log10(255**2 / 1e-10))  # exact: the floor
  assert result['n'] == 3 and result['psnr_y'] == pytest.approx(np.mean(list(rows.values())))


@pytest.mark.parametrize('scale,size', [(3, (1, 1)), (2, (15, 30))])
def test_an_image_too_small_for_the_scale_is_named_before_evaluating(
    scale, size, photo_folder, tmp_path, monkeypatch, capsys):
  Image.fromarray(np.zeros(size + (3,), np.uint8)).save(photo_folder / 'foo.png')
  monkeypatch.setattr(evaluators.benchmark, 'predict_bucket', _no_evaluation)
  assert evaluate.main(['--pretrained=eeds', f'--sets={photo_folder}',
                        f'--scales={scale}']) == 1
  err = capsys.readouterr().err
  h, w = size
  assert err.startswith(f'error: {photo_folder / "foo.png"}: {w}x{h} is too small to '
                        f'score at x{scale}: ') and err.count('\n') == 1


def test_training_builds_the_evaluator_that_config_eval_kind_names(tmp_path, monkeypatch):
  import jax
  from configs import common
  from jaxsr import train
  built = []

  class Recording(evaluators.BenchmarkEvaluator):
    def __init__(self, **kwargs):
      built.append(kwargs['dataset'])
      super().__init__(**kwargs)
  monkeypatch.setitem(evaluators.EVALUATORS, 'recording', Recording)
  c = common.base_config('ees', scale=2)
  assert c.eval.kind == 'benchmark'
  c.eval.kind = 'recording'
  c.data.train = 'embedded_train'
  c.data.max_train_images = 1
  c.data.patch_size = 8
  c.train.steps = 1
  c.train.batch_size = 2
  c.checkpoint.use_async = False
  c.eval.sets = 'embedded_test'
  c.eval.max_images = 1
  train.train_and_evaluate(c, tmp_path / 'run', devices=jax.devices()[:1])
  assert built == ['embedded_test']
  c.eval.kind = 'nosuch'
  with pytest.raises(ValueError, match="config.eval.kind='nosuch'"):
    train.train_and_evaluate(c, tmp_path / 'run2', devices=jax.devices()[:1])


def test_scale_keys():
  assert evaluators.scale_key(2.0) == 'x2'
  assert evaluators.scale_key(1 / 0.3) == 'x3.333'
  with pytest.raises(ValueError):
    evaluators.parse_scales('1')
