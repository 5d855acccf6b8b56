"""Training under faults: SIGKILL at random moments, SIGTERM, damaged and
failing checkpoints, a workdir in use, bad data locations, bad flags.

The SIGKILL test forks its runs from one process that has already imported
jaxsr (a "zygote", see ZYGOTE below): a fork costs milliseconds where a
fresh `python -m jaxsr.main` costs seconds of imports, which is what lets it
kill a run 24 times within the CI budget. Each forked run is still a real
process with its own files, killed by the kernel mid-whatever it was doing.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import common
from jaxsr import checkpointing
from jaxsr import datasets
from jaxsr import input_pipeline
from jaxsr import metric_writers
from jaxsr import train
from jaxsr import workdir_lock

REPO = pathlib.Path(__file__).resolve().parent.parent

# Reads one line per run ("<log file> <workdir> <use_async 0|1>") and forks a training
# run for it: prints the child's pid, then its wait status once it ends.
ZYGOTE = r'''
import os, sys
import jax
jax.config.update('jax_disable_most_optimizations', True)
# Each forked run compiles the same step: the first one's executable serves all.
jax.config.update('jax_compilation_cache_dir', sys.argv[3])
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
from absl import flags, logging
import tensorboardX  # imported by the first MetricWriter: once here for all runs
from jaxsr import train
sys.path.insert(0, 'tests')
from test_train_faults import fault_config

flags.FLAGS(['zygote'])
logging.use_absl_handler()
logging.set_verbosity(logging.INFO)

config = fault_config(int(sys.argv[1]), int(sys.argv[2]))
for line in sys.stdin:
  log, workdir, use_async = line.split()
  pid = os.fork()
  if pid == 0:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    config.checkpoint.use_async = use_async == '1'
    code = 0
    try:
      train.train_and_evaluate(config, workdir)
    except BaseException as e:
      print(f'error: {type(e).__name__}: {e}', flush=True)
      code = 1
    os._exit(code)
  print(pid, flush=True)
  print(os.waitpid(pid, 0)[1], flush=True)
'''


def fault_config(steps: int, every: int):
  c = common.base_config('espcn', scale=2)
  c.model.features = (4, 4)
  c.data.train = 'embedded_train'
  c.data.max_train_images = 2
  c.data.patch_size = 6
  c.data.prefetch = 1
  c.train.steps = steps
  c.train.batch_size = 2
  c.train.log_every = 1
  c.optim.name = 'sgd'
  c.optim.lr = 0.05
  c.checkpoint.every = every
  c.eval.sets = 'embedded_test'
  c.eval.max_images = 1
  c.eval.every = 10 * steps  # the final step only
  return c


class Zygote:
  """A process that has imported jaxsr and forks training runs on request."""

  def __init__(self, steps: int, every: int, tmp_path):
    env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='')
    self.proc = subprocess.Popen(
        [sys.executable, '-c', ZYGOTE, str(steps), str(every), str(tmp_path / 'xla_cache')],
        cwd=REPO, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    self.logs = tmp_path / 'logs'
    self.logs.mkdir()
    self.runs = 0

  def start(self, workdir, use_async: bool) -> tuple[int, pathlib.Path]:
    self.runs += 1
    log = self.logs / f'{self.runs}.log'
    self.proc.stdin.write(f'{log} {workdir} {int(use_async)}\n')
    self.proc.stdin.flush()
    return int(self.proc.stdout.readline()), log

  def wait(self) -> int:
    return int(self.proc.stdout.readline())

  def close(self):
    self.proc.stdin.close()
    self.proc.wait(timeout=60)


STEP_LINE = re.compile(r'\] step \d+/')
RESUMED_LINE = re.compile(r'Resumed from .* at step (\d+)')


def wait_for(predicate, timeout: float = 120.0):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return True
    time.sleep(0.01)
  return False


def read(log: pathlib.Path) -> str:
  return log.read_text() if log.exists() else ''


def logged_steps(workdir) -> list[int]:
  return [r['step'] for r in metric_writers.read_metrics(workdir)]


def test_sigkill_at_random_moments_loses_at_most_one_interval(tmp_path):
  steps, every, kills = 150, 5, 12
  zygote = Zygote(steps, every, tmp_path)
  try:
    zygote.start(tmp_path / 'straight', use_async=True)
    assert zygote.wait() == 0, (zygote.logs / '1.log').read_text()
    rng = np.random.default_rng(12)
    workdir = tmp_path / 'killed'
    last, bound = 0, 0
    for kill in range(kills + 1):
      # Every other run saves asynchronously: the row of a step is written
      # before its save, which waits for the previous save, so a kill then
      # loses up to two intervals.
      use_async = kill % 2 == 1
      pid, log = zygote.start(workdir, use_async)
      started = wait_for(lambda: STEP_LINE.search(read(log)) or 'error' in read(log))
      text = read(log)
      assert started and 'error' not in text, text
      resumed = RESUMED_LINE.search(text)
      start = int(resumed.group(1)) if resumed else 0
      assert start >= last - bound, f'run {kill}: resumed at {start}, last logged {last}'
      if kill == kills:
        break
      # A random step within the next three intervals, then a random moment
      # of it or the next ones: its row, its save, the steps after.
      target = start + int(rng.integers(1, 3 * every + 1))
      assert target < steps, 'too few steps for the kills'
      assert wait_for(lambda: f'] step {target}/' in read(log) or 'error' in read(log))
      time.sleep(rng.uniform(0.0, 0.05))
      os.kill(pid, signal.SIGKILL)
      zygote.wait()
      assert 'error' not in read(log), read(log)
      rows = logged_steps(workdir)  # complete rows only
      assert rows == list(range(1, len(rows) + 1)), f'run {kill}: duplicate or missing rows'
      last, bound = rows[-1], (2 * every if use_async else every)
      if kill % 6 == 5:
        # What a kill inside a row's write leaves (rows are one write() each,
        # so the kills above all but never cut one).
        with open(workdir / 'metrics.jsonl', 'a') as f:
          f.write(json.dumps({'step': last + 1, 'train/loss': 0.5})[:20])
    assert zygote.wait() == 0, read(log)
  finally:
    zygote.close()
  assert logged_steps(workdir) == list(range(1, steps + 1))
  assert not list(workdir.glob('*/*.orbax-checkpoint-tmp*'))
  a = jax.tree.leaves(checkpointing.restore_params(tmp_path / 'straight' / 'checkpoints'))
  b = jax.tree.leaves(checkpointing.restore_params(workdir / 'checkpoints'))
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, atol=1e-6, rtol=0)


# --- In-process runs: faults injected at chosen moments. ---

def run(config, workdir):
  return train.train_and_evaluate(config, workdir, devices=jax.devices()[:1])


def saved_steps(workdir) -> list[int]:
  ckpt = checkpointing.Checkpointer(workdir, use_async=False)
  steps = sorted(ckpt._latest.all_steps())
  ckpt.close()
  return steps


def sigterm_self():
  os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize('phase', ['batch', 'metrics', 'save'])
def test_sigterm_at_any_moment_saves_the_step_it_reports(phase, tmp_path, monkeypatch):
  # The stop was decided before the metrics write and acted on after it: a
  # SIGTERM in between reported a save that never happened.
  config = fault_config(steps=40, every=4)
  config.checkpoint.use_async = True
  patched = {'batch': (input_pipeline.PatchSampler, 'batch'),
             'metrics': (metric_writers.MetricWriter, 'write'),
             'save': (checkpointing.Checkpointer, 'save')}[phase]
  original = getattr(*patched)

  def with_sigterm(self, step, *args, **kwargs):
    if step == (5 if phase == 'batch' else 4):
      sigterm_self()
    return original(self, step, *args, **kwargs)

  monkeypatch.setattr(*patched, with_sigterm)
  with pytest.raises(train.Preempted, match=r'SIGTERM: saved step \d+') as e:
    run(config, tmp_path)
  assert e.value.step is not None and e.value.step < 40
  assert e.value.step in saved_steps(tmp_path)
  assert f'saved step {e.value.step} ' in str(e.value)
  assert logged_steps(tmp_path)[-1] == e.value.step


def test_sigterm_with_a_failing_save_says_it_did_not_save(tmp_path, monkeypatch):
  original = metric_writers.MetricWriter.write

  def write(self, step, row):
    if step == 3:
      sigterm_self()
    return original(self, step, row)

  def save(self, step, state, force=False):
    raise checkpointing.CheckpointError(f'could not save checkpoint step {step}: disk full')

  monkeypatch.setattr(metric_writers.MetricWriter, 'write', write)
  monkeypatch.setattr(checkpointing.Checkpointer, 'save', save)
  with pytest.raises(train.Preempted, match='SIGTERM: did not save step 4') as e:
    run(fault_config(steps=40, every=100), tmp_path)
  assert e.value.step is None


def test_a_second_run_on_a_workdir_stops_at_once_naming_the_holder(tmp_path):
  tmp_path.mkdir(exist_ok=True)
  with workdir_lock.hold(tmp_path):
    start = time.perf_counter()
    with pytest.raises(workdir_lock.WorkdirBusyError,
                       match=rf'in use by another run \(pid {os.getpid()}@'):
      run(fault_config(steps=4, every=2), tmp_path)
    assert time.perf_counter() - start < 30
  assert not (tmp_path / 'checkpoints').exists()
  assert not (tmp_path / 'config.json').exists()


def test_a_killed_run_leaves_no_stale_lock(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time; from jaxsr import workdir_lock\n'
       'with workdir_lock.hold(sys.argv[1]):\n  print("held", flush=True); time.sleep(600)',
       str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == 'held'
  with pytest.raises(workdir_lock.WorkdirBusyError, match=f'pid {holder.pid}@'):
    with workdir_lock.hold(tmp_path):
      pass
  holder.kill()
  holder.wait()
  with workdir_lock.hold(tmp_path):
    assert f'pid {os.getpid()}@' in (tmp_path / '.lock').read_text()


def test_an_object_store_workdir_runs_unlocked_with_a_warning(caplog):
  with workdir_lock.hold('gs://bucket/run'):  # no flock there; touches nothing
    pass
  assert any('no file locks' in r.getMessage() for r in caplog.records)


def damage(step_dir: pathlib.Path, how: str) -> None:
  if how == 'truncated':
    # The arrays' data: the OCDBT files merged at the end of the save.
    data = max(step_dir.glob('default/d/*'), key=lambda p: p.stat().st_size)
    with open(data, 'r+b') as f:
      f.truncate(data.stat().st_size // 2)
  else:
    (step_dir / 'default' / '_METADATA').unlink()


@pytest.mark.parametrize('how', ['truncated', 'no_metadata'])
def test_resume_skips_a_damaged_checkpoint_for_the_newest_that_restores(
    how, tmp_path, caplog):
  config = fault_config(steps=6, every=2)
  config.checkpoint.use_async = False
  config.eval.every = 4
  run(config, tmp_path)
  assert saved_steps(tmp_path) == [2, 4, 6]
  damage(tmp_path / 'checkpoints' / '6', how)
  (best,) = [p for p in (tmp_path / 'best').iterdir() if p.name.isdigit()]
  damage(best, how)
  config.train.steps = 8
  run(config, tmp_path)
  warnings = [r.getMessage() for r in caplog.records if 'does not restore' in r.getMessage()]
  assert len(warnings) == 2, warnings
  assert 'checkpoints/6 does not restore' in warnings[0] and 'resuming from step 4' in warnings[0]
  assert (tmp_path / 'checkpoints' / '6.damaged').is_dir()  # kept, never deleted
  assert (tmp_path / 'best' / f'{best.name}.damaged').is_dir()
  assert saved_steps(tmp_path) == [4, 6, 8]
  assert logged_steps(tmp_path) == list(range(1, 9))
  assert [p.name for p in (tmp_path / 'best').iterdir() if p.name.isdigit()] == ['8']
  checkpointing.restore_params(tmp_path)  # best/ restores again


def test_resume_moves_nothing_when_no_checkpoint_restores(tmp_path):
  config = fault_config(steps=2, every=2)
  config.checkpoint.use_async = False
  run(config, tmp_path)
  damage(tmp_path / 'checkpoints' / '2', 'truncated')
  config.train.steps = 4
  with pytest.raises(checkpointing.CheckpointError, match=r'cannot resume .* step 2 restores'):
    run(config, tmp_path)
  assert saved_steps(tmp_path) == [2]


@pytest.mark.parametrize('use_async', [False, True])
def test_a_failed_save_stops_the_run_with_one_error(use_async, tmp_path, monkeypatch):
  # Stands in for a full disk (the tmpfs test below is the real one): the
  # step-4 save writes part of its temporary folder, then fails.
  manager_cls = checkpointing.ocp.CheckpointManager
  original = manager_cls.save

  def save(self, step, *args, **kwargs):
    if step == 4:
      (self.directory / '4.orbax-checkpoint-tmp' / 'default').mkdir(parents=True)
      raise ValueError('RESOURCE_EXHAUSTED: No space left on device')
    return original(self, step, *args, **kwargs)

  monkeypatch.setattr(manager_cls, 'save', save)
  config = fault_config(steps=40, every=2)
  config.checkpoint.use_async = use_async
  with pytest.raises(checkpointing.CheckpointError) as e:
    run(config, tmp_path)
  message = str(e.value)
  assert '\n' not in message
  assert 'could not save checkpoint step 4' in message and 'No space left' in message
  assert f'Last good checkpoint: step 2 in {tmp_path}' in message
  assert logged_steps(tmp_path)[-1] == 4  # stopped at once
  assert not list(tmp_path.glob('*/*.orbax-checkpoint-tmp*'))
  assert saved_steps(tmp_path) == [2]


@pytest.fixture
def tiny_disk(tmp_path):
  """A 400 KiB tmpfs (root only; skipped where mounting is not permitted)."""
  mount = tmp_path / 'disk'
  mount.mkdir()
  done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=400k', 'tmpfs', str(mount)],
                        capture_output=True)
  if done.returncode:
    pytest.skip('cannot mount a tmpfs here')
  yield mount
  subprocess.run(['umount', '-l', str(mount)], check=False)


@pytest.mark.parametrize('use_async', [False, True])
def test_a_full_disk_stops_the_run_with_one_error(use_async, tiny_disk, monkeypatch):
  original = metric_writers.MetricWriter.write

  def write(self, step, row):
    original(self, step, row)
    if step == 3:  # the disk fills up from outside the run, but for a few rows
      assert wait_for((workdir / 'checkpoints' / '2').is_dir)  # committed
      with open(tiny_disk / 'filler', 'ab', buffering=0) as f:
        try:
          while True:
            f.write(b'\0' * 4096)
        except OSError:
          pass
      os.truncate(tiny_disk / 'filler', os.path.getsize(tiny_disk / 'filler') - 16384)

  monkeypatch.setattr(metric_writers.MetricWriter, 'write', write)
  config = fault_config(steps=40, every=2)
  config.checkpoint.use_async = use_async
  workdir = tiny_disk / 'run'
  with pytest.raises(OSError) as e:
    run(config, workdir)
  (tiny_disk / 'filler').unlink()
  assert isinstance(e.value, checkpointing.CheckpointError), e.value
  message = str(e.value)
  assert 'could not save checkpoint step 4' in message and 'No space left' in message
  assert 'Last good checkpoint: step 2' in message and '\n' not in message
  assert not list(workdir.glob('*/*.orbax-checkpoint-tmp*'))
  assert saved_steps(workdir) == [2]
  # A background failure surfaces by the next save at the latest.
  assert logged_steps(workdir)[-1] <= (6 if use_async else 4)


@pytest.mark.parametrize('where', ['config', 'env'])
def test_an_explicit_data_location_without_the_sets_is_an_error(where, tmp_path,
                                                                 monkeypatch):
  data = tmp_path / 'data'
  data.mkdir()
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'config.json').write_text('{"previous": true}')
  config = fault_config(steps=4, every=2)
  config.data.train = 'auto'
  if where == 'config':
    config.data.data_dir = str(data)
  else:
    monkeypatch.setenv(datasets.ENV_VAR, str(data))
  with pytest.raises(datasets.DatasetError, match=rf'{data} does not hold the training '
                     r'sets: expected t91/ and bsd200/'):
    run(config, workdir)
  # The evaluation sets likewise.
  config.data.train = 'embedded_train'
  config.eval.sets = 'auto'
  with pytest.raises(datasets.DatasetError, match=rf'{data} does not hold the evaluation '
                     r'set: expected a set5/'):
    run(config, workdir)
  assert (workdir / 'config.json').read_text() == '{"previous": true}'
  assert not (workdir / 'checkpoints').exists()


def test_no_data_location_trains_on_the_embedded_photos_only_where_allowed(tmp_path, monkeypatch):
  monkeypatch.delenv(datasets.ENV_VAR, raising=False)
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  config = fault_config(steps=2, every=2)
  config.data.train = 'auto'
  config.eval.sets = 'auto'
  with pytest.raises(datasets.DatasetError, match='no training data'):
    run(config, tmp_path / 'refused')
  assert not (tmp_path / 'refused' / 'checkpoints').exists()
  config.data.allow_embedded = True  # as runlocal sets it
  run(config, tmp_path / 'run')
  assert json.loads((tmp_path / 'run' / 'config.json').read_text())['data']['train'] == 'auto'


def test_divergence_on_a_fresh_run_says_there_is_no_checkpoint_yet(tmp_path):
  config = fault_config(steps=4, every=2)
  config.optim.lr = 1e30
  with pytest.raises(train.NonFiniteError, match='No checkpoint yet') as e:
    run(config, tmp_path)
  assert 'None' not in str(e.value)
  # Counted as the logs count: the step after the last logged one.
  assert f'at step {len(logged_steps(tmp_path)) + 1} ' in str(e.value)


# --- The command line: one line per failure, no traceback. ---

def run_main(*args, timeout=300):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='')
  done = subprocess.run([sys.executable, '-m', 'jaxsr.main', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)
  return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize('case,flags,message', [
    ('typo', ['--config=configs/eeds.py:runlocal', '--config.train.stepz=5'],
     r'error: --config.train.stepz: the config has no key .stepz. \(did you mean "steps"'),
    ('missing', ['--config=configs/nonexistent.py'],
     r'error: --config: no config file configs/nonexistent.py'),
    ('workdir_file', ['--config=configs/eeds.py:runlocal'],
     r'error: --workdir .*afile is a file; expected a folder'),
])
def test_main_reports_bad_input_in_one_line(case, flags, message, tmp_path):
  (tmp_path / 'afile').write_text('a user file')
  workdir = tmp_path / ('afile' if case == 'workdir_file' else 'run')
  rc, out, err = run_main(*flags, f'--workdir={workdir}')
  assert rc != 0
  assert 'Traceback' not in out + err
  errors = [line for line in err.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and re.fullmatch(message + '.*', errors[0]), err
  assert (tmp_path / 'afile').read_text() == 'a user file'


def test_main_on_a_busy_workdir_names_the_holder(tmp_path):
  with workdir_lock.hold(tmp_path):
    rc, out, err = run_main('--config=configs/eeds.py:runlocal', f'--workdir={tmp_path}')
  assert rc == 1
  assert 'Traceback' not in err
  errors = [line for line in err.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and f'in use by another run (pid {os.getpid()}@' in errors[0], err
