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


def test_scale_keys():
  assert evaluators.scale_key(2.0) == 'x2'
  assert evaluators.scale_key(1 / 0.3) == 'x3.333'
  with pytest.raises(ValueError):
    evaluators.parse_scales('1')
