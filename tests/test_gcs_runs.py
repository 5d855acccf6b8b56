"""A training run on gs:// end to end, against the GCS emulator on loopback:
python -m jaxsr.main trains, checkpoints, resumes after SIGKILL, and the
report, evaluation and upscaling read the run back from the bucket."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
from etils import epath
from PIL import Image

from gcs_emulator import committed_steps

from jaxsr import evaluate
from jaxsr import metric_writers
from jaxsr import upscale

REPO = pathlib.Path(__file__).resolve().parent.parent
STEPS = 60
TINY = ['--config.train.steps=%d' % STEPS, '--config.checkpoint.every=10',
        '--config.train.log_every=5', '--config.eval.every=1000',
        '--config.train.batch_size=4', '--config.eval.max_images=1',
        '--config.data.max_train_images=2', '--config.checkpoint.use_async=False']


def main_command(workdir):
  return [sys.executable, '-m', 'jaxsr.main', '--config=configs/espcn.py:runlocal,scale=2',
          f'--workdir={workdir}', *TINY]


def test_a_gcs_run_trains_resumes_after_sigkill_and_reads_back(gcs_workdir, tmp_path):
  env = dict(os.environ, XLA_FLAGS='', JAX_PLATFORMS='cpu')
  proc = subprocess.Popen(main_command(gcs_workdir), cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None and not committed_steps(gcs_workdir):
    time.sleep(0.2)
  assert proc.poll() is None, proc.communicate()[0]
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert committed_steps(gcs_workdir)[-1] < STEPS

  resumed = subprocess.run(main_command(gcs_workdir), cwd=REPO, env=env, timeout=300,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  assert resumed.returncode == 0, resumed.stdout
  assert 'Resumed from gs://' in resumed.stdout
  assert committed_steps(gcs_workdir)[-1] == STEPS
  # The killed run's rows up to its checkpoint, then the resumed run's: each step once.
  steps = [r['step'] for r in metric_writers.read_metrics(gcs_workdir)]
  assert steps == list(range(5, STEPS + 1, 5)), steps
  assert json.loads(epath.Path(gcs_workdir, 'config.json').read_text())['model']['name']
  events = list(epath.Path(gcs_workdir, 'tensorboard').glob('events.out.tfevents.*'))
  assert len(events) == 2 and all(e.stat().length > 0 for e in events)

  out = tmp_path / 'report'
  report = subprocess.run(
      [sys.executable, '-m', 'jaxsr.report', gcs_workdir, f'--out={out}',
       '--sets=embedded_test'], cwd=REPO, env=env, timeout=300,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  assert report.returncode == 0, report.stdout
  assert any(out.iterdir())
  assert epath.Path(gcs_workdir, 'benchmark.json').exists()

  results = tmp_path / 'results.json'
  assert evaluate.main([f'--workdir={gcs_workdir}', '--sets=embedded_test',
                        '--max_images=1', f'--json_out={results}']) == 0
  assert results.exists()
  image = tmp_path / 'small.png'
  Image.fromarray(np.full((12, 10, 3), 128, np.uint8)).save(image)
  assert upscale.main([str(image), f'--out={tmp_path / "big.png"}',
                       f'--workdir={gcs_workdir}']) == 0
  assert Image.open(tmp_path / 'big.png').size == (20, 24)
