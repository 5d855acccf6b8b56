"""A TPU pod in miniature: 2 processes x 4 CPU devices on localhost (one
jax.distributed run, a loopback coordinator), the workdir and the prepared
tfds training data on the emulated gs:// bucket. A SIGTERM to one process
makes both save the same step and stop; a restart of both finishes the run,
equal to one process on 8 devices reading the same data."""

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import jax
import ml_collections
import numpy as np
import pytest
from etils import epath

from configs import common
from gcs_emulator import committed_steps
from jaxsr import checkpointing
from jaxsr import metric_writers
from jaxsr import prepare

REPO = pathlib.Path(__file__).resolve().parent.parent
STEPS = 40


@pytest.fixture(scope='module')
def config_file(photo_dirs, tmp_path_factory):
  root = photo_dirs
  c = common.base_config('espcn', scale=2)
  c.model.features = (8, 8)
  c.data.train = str(root / 'train')
  c.data.patch_size = 6
  c.train.steps = STEPS
  c.train.batch_size = 8
  c.train.log_every = 1
  c.optim.name = 'sgd'
  c.optim.lr = 0.05
  c.checkpoint.every = 5
  c.checkpoint.use_async = False
  c.eval.sets = str(root / 'test')
  c.eval.every = 1000
  path = tmp_path_factory.mktemp('pod') / 'cfg.py'
  path.write_text('import ml_collections\n\n\ndef get_config(arg=None):\n'
                  f'  return ml_collections.ConfigDict({ml_collections.ConfigDict(c).to_dict()!r})\n')
  return path


@pytest.fixture(scope='module')
def gcs_tfds_flags(photo_dirs, gcs_root, tmp_path_factory):
  """Flags that train on the training photos as t91, prepared once by
  jaxsr.prepare (pairs at x2 on the LR input, as ESPCN reads) on the
  emulated bucket. Its own folder there, so that the local copies the runs
  make (in the per-user cache, tfds_pairs._local_copy) are this session's
  alone; removed afterwards."""
  manual = tmp_path_factory.mktemp('manual')
  shutil.copytree(photo_dirs / 'train', manual / 't91')
  folder = f'test_pod_{uuid.uuid4().hex[:12]}'
  data_dir = f'{gcs_root}/{folder}'
  assert prepare.main(['--sets=t91', '--scales=2', '--inputs=lr', f'--manual_dir={manual}',
                       f'--data_dir={data_dir}']) == 0
  yield ['--config.data.train=t91', '--config.data.source=tfds',
         f'--config.data.data_dir={data_dir}']
  cache = pathlib.Path(os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache')
  shutil.rmtree(cache / 'jaxsr' / 'remote_datasets' / 'gs' / gcs_root.removeprefix('gs://')
                / folder, ignore_errors=True)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def start(workdir, config_file, *flags, devices: int, main=('-m', 'jaxsr.main')):
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
             JAX_PLATFORMS='cpu')
  # Output to a file, not a pipe: a process of a pod blocked writing to a
  # full pipe (64 KiB) that no one reads yet stops the other at its next barrier.
  log = tempfile.TemporaryFile('w+')
  proc = subprocess.Popen(
      [sys.executable, *main, f'--config={config_file}', f'--workdir={workdir}',
       *flags], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
  proc.log = log
  return proc


def start_pod(workdir, config_file, *flags, devices=4, main=('-m', 'jaxsr.main')):
  port = _free_port()
  return [start(workdir, config_file, f'--coordinator_address=127.0.0.1:{port}',
                '--num_processes=2', f'--process_id={i}', *flags, devices=devices, main=main)
          for i in range(2)]


def finish(procs, timeout=300):
  """Waits for the processes to exit; their outputs. On a timeout, kills them
  all and fails with the ends of their outputs."""
  deadline = time.time() + timeout
  try:
    for p in procs:
      p.wait(timeout=max(deadline - time.time(), 0.1))
    timed_out = False
  except subprocess.TimeoutExpired:
    timed_out = True
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()  # jax.distributed catches SIGTERM (a preemption notice)
        p.wait()
  outs = []
  for p in procs:
    p.log.seek(0)
    outs.append(p.log.read())
    p.log.close()
  assert not timed_out, f'still running after {timeout} s:\n' + '\n---\n'.join(
      out[-4000:] for out in outs)
  return outs


def test_a_sigterm_to_one_host_stops_the_pod_at_one_saved_step_and_it_resumes(
    config_file, gcs_tfds_flags, gcs_workdir, tmp_path):
  reference = start(tmp_path / 'single', config_file, *gcs_tfds_flags, devices=8)
  pod = start_pod(gcs_workdir, config_file, *gcs_tfds_flags)
  deadline = time.time() + 240
  while time.time() < deadline and not committed_steps(gcs_workdir) and all(
      p.poll() is None for p in pod):
    time.sleep(0.1)
  assert all(p.poll() is None for p in pod), finish(pod)
  pod[1].send_signal(signal.SIGTERM)
  outs = finish(pod)
  for p, out in zip(pod, outs):
    assert p.returncode == 143, out
    assert 'Traceback' not in out
  saved = [re.findall(r'^SIGTERM: saved step (\d+) in ', out, re.MULTILINE) for out in outs]
  assert saved[0] == saved[1] and len(saved[0]) == 1, outs
  step = int(saved[0][0])
  assert step < STEPS and committed_steps(gcs_workdir)[-1] == step

  pod = start_pod(gcs_workdir, config_file, *gcs_tfds_flags)
  outs = finish(pod)
  for p, out in zip(pod, outs):
    assert p.returncode == 0, out
  assert f'Resumed from {gcs_workdir}/checkpoints at step {step}' in outs[0]
  (out,) = finish([reference])
  assert reference.returncode == 0, out
  # Both read the prepared data.
  data = lambda w: json.loads(epath.Path(w, 'config.json').read_text())['resolved_data']
  assert data(tmp_path / 'single') == data(gcs_workdir)
  assert data(gcs_workdir)['source'] == 'tfds' and data(gcs_workdir)['sets'] == {'t91': 3}

  losses = lambda w: {r['step']: r['train/loss'] for r in metric_writers.read_metrics(w)
                      if 'train/loss' in r}
  single, pod_losses = losses(tmp_path / 'single'), losses(gcs_workdir)
  assert list(pod_losses) == list(range(1, STEPS + 1))
  np.testing.assert_allclose([pod_losses[s] for s in single], list(single.values()),
                             rtol=1e-5, atol=1e-5)
  a = jax.tree.leaves(checkpointing.restore_params(tmp_path / 'single' / 'checkpoints'))
  b = jax.tree.leaves(checkpointing.restore_params(f'{gcs_workdir}/checkpoints'))
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)


# A failure while the save starts (on the main thread) with synchronous saves,
# and one in Orbax's background writes of an asynchronous save.
@pytest.mark.parametrize('use_async,where', [(False, 'main'), (True, 'background')])
def test_a_save_failing_on_one_host_stops_every_host_with_its_reason(
    use_async, where, config_file, tmp_path):
  # Process 1's part of the second save (step 10) fails; process 0's succeeds.
  # Without agreement process 0 waits for it at Orbax's next barrier (minutes,
  # or for ever on the main thread).
  main = (str(REPO / 'tests' / 'save_fails_on_one_process.py'), '1', '2', where)
  pod = start_pod(tmp_path, config_file, f'--config.checkpoint.use_async={use_async}',
                  devices=2, main=main)
  outs = finish(pod, 120)
  for p, out in zip(pod, outs):
    assert p.returncode == 1, out
    assert 'Traceback' not in out, out
    errors = [line for line in out.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, out
    assert errors[0].startswith(f'error: could not save checkpoint step 10 to {tmp_path}/'), out
    assert 'process 1: [Errno 28] No space left on device' in errors[0], out
    assert f'Last good checkpoint: step 5 in {tmp_path}/checkpoints' in errors[0], out
  assert [p.name for p in (tmp_path / 'checkpoints').iterdir()] == ['5']
