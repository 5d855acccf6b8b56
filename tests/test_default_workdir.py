"""python -m jaxsr.main without --workdir: output/<config name>[_<args>], resumable."""

import os
import pathlib
import subprocess
import sys

import pytest

from jaxsr import runs

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize('arg, expected', [
    ('configs/eeds.py', 'output/eeds'),
    ('configs/eeds.py:runlocal', 'output/eeds_runlocal'),
    ('/abs/configs/vdsr.py:runlocal,scale=3', 'output/vdsr_runlocal_scale3'),
])
def test_default_workdir_names_the_config_and_its_arguments(arg, expected):
  assert runs.default_workdir(arg) == expected


def test_the_plain_command_writes_to_output_and_resumes_there(tmp_path):
  config = REPO / 'configs' / 'espcn.py'  # the smallest model: the subject is the folder
  cmd = [sys.executable, '-m', 'jaxsr.main', f'--config={config}:runlocal',
         '--config.train.steps=2', '--config.train.batch_size=2',
         '--config.checkpoint.use_async=False', '--config.eval.max_images=1',
         '--config.data.max_train_images=1']
  env = dict(os.environ, XLA_FLAGS='', PYTHONPATH=str(REPO))
  first = subprocess.run(cmd, cwd=tmp_path, env=env, timeout=300, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  assert first.returncode == 0, first.stdout
  assert 'workdir: output/espcn_runlocal (no --workdir given' in first.stdout
  workdir = tmp_path / 'output' / 'espcn_runlocal'
  assert (workdir / 'checkpoints' / '2').is_dir() and (workdir / 'config.json').is_file()
  again = subprocess.run([*cmd, '--config.train.steps=3'], cwd=tmp_path, env=env,
                         timeout=300, text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
  assert again.returncode == 0, again.stdout
  assert 'Resumed from' in again.stdout
  assert (workdir / 'checkpoints' / '3').is_dir()
