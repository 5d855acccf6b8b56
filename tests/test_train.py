"""The training system: configs, data parallelism, exact resume, guards."""

import importlib.util
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxsr import checkpointing
from configs import common
from jaxsr import config_checks
from jaxsr import input_pipeline
from jaxsr import metric_writers
from jaxsr import models
from jaxsr import train
from jaxsr.datasets import training_source

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted(p for p in (REPO / 'configs').glob('*.py')
                 if p.stem not in ('__init__', 'common'))
# Every variant argument each config file accepts (the ablations by name).
CONFIG_ARGS = {
    'srcnn': ['variant=915', 'variant=955,scale=3'],
    'edsr': ['variant=baseline', 'variant=edsr,scale=4'],
    'eeds': ['variant=eeds', 'variant=eed,upsampling=unpool', 'variant=ees,scale=3'],
    'dcnn': ['variant=dcnn', 'variant=dscnn', 'variant=dcnn_plain', 'variant=dscnn_plain'],
    'vdsr': ['', 'scale=3'],
}


def load_config_module(path: pathlib.Path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_every_config_loads_validates_and_builds(path):
  module = load_config_module(path)
  assert 'python -m jaxsr.main' in module.__doc__
  for arg in CONFIG_ARGS.get(path.stem, ['']) + ['runlocal']:
    c = module.get_config(arg)
    config_checks.validate(c, device_count=1)
  points = module.get_sweep()
  assert points, f'{path.name}: empty sweep'
  for point in points:
    config_checks.validate(common.resolve(module.get_config, point), 1)


def test_every_registered_model_has_a_config():
  covered = set()
  for path in CONFIGS:
    module = load_config_module(path)
    for arg in CONFIG_ARGS.get(path.stem, ['']):
      covered.add(module.get_config(arg).model.name)
    for point in module.get_sweep():
      covered.add(common.resolve(module.get_config, point).model.name)
  assert set(models.list_models()) <= covered


def test_config_arguments_are_checked():
  module = load_config_module(REPO / 'configs' / 'eeds.py')
  with pytest.raises(ValueError, match="'varaint' is not one of"):
    module.get_config('varaint=ees')


@pytest.mark.parametrize('key,value,message', [
    ('model.name', 'vdsr2', r'config.model.name: unknown model .*valid names'),
    ('data.hr_patch_size', 1, r'config.data.hr_patch_size=1 is smaller than the scale'),
    ('train.batch_size', 6, r'config.train.batch_size=6 is not a positive multiple of '
                            r'the device count \(4\); set config.train.per_device_batch_size'),
    ('data.scales', (2, 3), r'config.data.scales.*learned stride'),
    ('optim.name', 'lamb', r"config.optim.name='lamb'"),
    ('model.upsampling', 'pixelshuffle', r'config.model: .*pixelshuffle'),
    ('eval.max_shapes', -1, r'config.eval.max_shapes=-1 must be >= 0'),
])
def test_invalid_config_names_the_key(key, value, message):
  c = load_config_module(REPO / 'configs' / 'eeds.py').get_config('scale=4')
  c.data.patch_size = 0
  c = common.apply_overrides(c, {key: value})
  with pytest.raises(ValueError, match=message):
    config_checks.validate(c, device_count=4)


# --- Training runs on a tiny model and a folder of real photos. ---

# photo_dirs (tests/conftest.py): a folder of real photos, train/ and test/.


def tiny_config(photo_dirs, steps=6, batch_size=8):
  c = common.base_config('espcn', scale=2)
  c.model.features = (8, 8)
  c.data.train = str(photo_dirs / 'train')
  c.data.patch_size = 6
  c.train.steps = steps
  c.train.batch_size = batch_size
  c.train.log_every = 1
  c.optim.name = 'sgd'
  c.optim.lr = 0.05
  c.checkpoint.every = 2
  c.checkpoint.use_async = False
  c.eval.sets = str(photo_dirs / 'test')
  c.eval.every = 1000
  return c


def losses(workdir) -> dict[int, float]:
  return {r['step']: r['train/loss'] for r in metric_writers.read_metrics(workdir)
          if 'train/loss' in r}


def test_one_and_eight_devices_give_the_same_losses(photo_dirs, tmp_path):
  assert jax.device_count() == 8, 'conftest sets 8 CPU devices'
  c = tiny_config(photo_dirs, steps=4)
  train.train_and_evaluate(c, tmp_path / 'one', devices=jax.devices()[:1])
  train.train_and_evaluate(c, tmp_path / 'eight', devices=jax.devices())
  one, eight = losses(tmp_path / 'one'), losses(tmp_path / 'eight')
  assert list(one) == [1, 2, 3, 4]
  np.testing.assert_allclose([eight[k] for k in one], list(one.values()), rtol=1e-5)


def test_a_run_saved_on_eight_devices_resumes_on_one(photo_dirs, tmp_path):
  straight = tiny_config(photo_dirs, steps=6)
  train.train_and_evaluate(straight, tmp_path / 'straight', devices=jax.devices()[:1])
  first = tiny_config(photo_dirs, steps=4)
  train.train_and_evaluate(first, tmp_path / 'moved', devices=jax.devices())
  train.train_and_evaluate(straight, tmp_path / 'moved', devices=jax.devices()[:1])
  moved = losses(tmp_path / 'moved')
  assert list(moved) == [1, 2, 3, 4, 5, 6]
  np.testing.assert_allclose(list(moved.values()), list(losses(tmp_path / 'straight').values()),
                             rtol=1e-5)
  a = jax.tree.leaves(checkpointing.restore_params(tmp_path / 'straight' / 'checkpoints'))
  b = jax.tree.leaves(checkpointing.restore_params(tmp_path / 'moved' / 'checkpoints'))
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)


def test_metrics_jsonl_and_config_json(photo_dirs, tmp_path):
  c = tiny_config(photo_dirs, steps=2)
  final = train.train_and_evaluate(c, tmp_path, devices=jax.devices()[:1])
  rows = metric_writers.read_metrics(tmp_path)
  for key in ('train/loss', 'train/lr', 'train/grad_norm', 'train/steps_per_s', 'time'):
    assert key in rows[-1]
  for key in ('psnr_y', 'ssim_y', 'bicubic_psnr_y'):
    assert f'eval/test/{key}' in final and f'eval/test/{key}' in rows[-1]
  assert json.loads((tmp_path / 'config.json').read_text())['model']['name'] == 'espcn'
  assert list((tmp_path / 'tensorboard').iterdir())


def test_non_finite_loss_stops_and_keeps_the_checkpoint(photo_dirs, tmp_path):
  c = tiny_config(photo_dirs, steps=2)
  train.train_and_evaluate(c, tmp_path, devices=jax.devices()[:1])
  c.train.steps = 6
  c.optim.lr = 1e30
  with pytest.raises(train.NonFiniteError, match=r'at step \d'):
    train.train_and_evaluate(c, tmp_path, devices=jax.devices()[:1])
  ckpt = checkpointing.Checkpointer(tmp_path, use_async=False)
  saved = ckpt.latest_step()
  ckpt.close()
  params = checkpointing.restore_params(tmp_path / 'checkpoints' / str(saved))
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


def test_batches_do_not_depend_on_process_count():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)

  class OneImage:
    record = {}
    __len__ = lambda self: 1
    hr_shape = lambda self, i: image.shape[:2]
    load = lambda self, i, s: training_source.degrade(image, s, 1, on_bicubic=False)
  kw = dict(scales=(2.0,), global_batch_size=4, patch_sizes={2.0: 4}, seed=3)
  whole = input_pipeline.PatchSampler(OneImage(), **kw).batch(7)
  halves = [input_pipeline.PatchSampler(OneImage(), process_index=i, process_count=2,
                                        **kw).batch(7)
            for i in range(2)]
  np.testing.assert_array_equal(np.concatenate([h['lr'] for h in halves]), whole['lr'])
  lr, hr = whole['lr'][0], whole['hr'][0]
  assert hr.shape == (8, 8, 1) and lr.shape == (4, 4, 1)


# --- Subprocess runs: the command a user types. ---

def run_main(workdir, config_path, *flags, env_extra=None, wait=True):
  env = dict(os.environ, **(env_extra or {}))
  env.setdefault('XLA_FLAGS', '')
  cmd = [sys.executable, '-m', 'jaxsr.main', f'--config={config_path}',
         f'--workdir={workdir}', *flags]
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  if not wait:
    return proc
  out, _ = proc.communicate(timeout=600)
  return proc.returncode, out


def write_tiny_config(photo_dirs, path, **changes):
  c = tiny_config(photo_dirs, **changes)
  path.write_text(
      'import ml_collections\n\n\ndef get_config(arg=None):\n'
      f'  """python -m jaxsr.main --config={path} --workdir=..."""\n'
      f'  return ml_collections.ConfigDict({c.to_dict()!r})\n')
  return path


def final_params(workdir):
  return checkpointing.restore_params(workdir)


# Slow, and covered by test_train_faults' random SIGKILLs (params equal an
# uninterrupted run's to 1e-6).
@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(photo_dirs, tmp_path):
  cfg = write_tiny_config(photo_dirs, tmp_path / 'cfg.py', steps=40)
  rc, out = run_main(tmp_path / 'straight', cfg)
  assert rc == 0, out
  proc = run_main(tmp_path / 'killed', cfg, wait=False)
  ckpts = tmp_path / 'killed' / 'checkpoints'
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if ckpts.is_dir() and any(p.name.isdigit() and int(p.name) >= 10 for p in ckpts.iterdir()):
      break
    time.sleep(0.05)
  assert proc.poll() is None, 'run ended before it could be killed'
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  steps_at_kill = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
  assert steps_at_kill[-1] < 40
  rc, out = run_main(tmp_path / 'killed', cfg)
  assert rc == 0, out
  assert 'Resumed' in out
  a = jax.tree.leaves(checkpointing.restore_params(tmp_path / 'straight' / 'checkpoints'))
  b = jax.tree.leaves(checkpointing.restore_params(tmp_path / 'killed' / 'checkpoints'))
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, atol=1e-6, rtol=0)


def test_sigterm_saves_before_exiting(photo_dirs, tmp_path):
  cfg = write_tiny_config(photo_dirs, tmp_path / 'cfg.py', steps=100000)
  proc = run_main(tmp_path / 'wd', cfg, wait=False)
  ckpts = tmp_path / 'wd' / 'checkpoints'
  deadline = time.time() + 300
  while time.time() < deadline and not (ckpts.is_dir() and any(
      p.name.isdigit() for p in ckpts.iterdir())):
    time.sleep(0.1)
  time.sleep(1.0)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 143, out
  assert 'Traceback' not in out
  (saved,) = re.findall(r'^SIGTERM: saved step (\d+) in .*; rerun the same command to '
                        r'resume$', out, re.MULTILINE)
  steps = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
  assert steps[-1] == int(saved)  # the step it names is on disk, and restores
  checkpointing.restore_params(ckpts / saved)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _two_processes(workdir, cfg) -> list[str]:
  """Runs jaxsr.main as 2 processes × 2 CPU devices on localhost; their outputs."""
  port = _free_port()
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  procs = [run_main(workdir, cfg, f'--coordinator_address=localhost:{port}',
                    '--num_processes=2', f'--process_id={i}', env_extra=env, wait=False)
           for i in range(2)]
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out
  return outs


def test_two_processes_train_together(photo_dirs, tmp_path):
  cfg = write_tiny_config(photo_dirs, tmp_path / 'cfg.py', steps=3)
  rc, out = run_main(tmp_path / 'single', cfg)
  assert rc == 0, out
  outs = _two_processes(tmp_path / 'multi', cfg)
  assert 'process 1/2, 2 local / 4 global devices' in outs[1]
  single, multi = losses(tmp_path / 'single'), losses(tmp_path / 'multi')
  assert list(multi) == [1, 2, 3]
  np.testing.assert_allclose(list(multi.values()), list(single.values()), rtol=1e-5)
  # Evaluation on the 4 devices of both processes scores as one process does.
  psnr = lambda w: [r for r in metric_writers.read_metrics(w) if 'eval/test/psnr_y' in r
                    ][-1]['eval/test/psnr_y']
  assert psnr(tmp_path / 'multi') == pytest.approx(psnr(tmp_path / 'single'), abs=1e-4)

  # A damaged newest checkpoint: both processes fall back to the same step.
  data = max((tmp_path / 'multi' / 'checkpoints' / '3').glob('default/d/*'),
             key=lambda p: p.stat().st_size)
  data.write_bytes(data.read_bytes()[:10])
  cfg = write_tiny_config(photo_dirs, tmp_path / 'cfg.py', steps=4)
  for out in _two_processes(tmp_path / 'multi', cfg):
    assert 'checkpoints/3 does not restore' in out and 'resuming from step 2' in out
  assert (tmp_path / 'multi' / 'checkpoints' / '3.damaged').is_dir()
  assert list(losses(tmp_path / 'multi')) == [1, 2, 3, 4]


# Slow, and covered by test_pod's SIGTERM test (2 x 4 devices, same assertions).
@pytest.mark.slow
def test_a_sigterm_to_one_process_stops_all_at_the_same_saved_step(photo_dirs, tmp_path):
  cfg = write_tiny_config(photo_dirs, tmp_path / 'cfg.py', steps=100000)
  port = _free_port()
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  procs = [run_main(tmp_path / 'multi', cfg, f'--coordinator_address=localhost:{port}',
                    '--num_processes=2', f'--process_id={i}', env_extra=env, wait=False)
           for i in range(2)]
  ckpts = tmp_path / 'multi' / 'checkpoints'
  deadline = time.time() + 300
  while time.time() < deadline and not (ckpts.is_dir() and any(
      p.name.isdigit() for p in ckpts.iterdir())):
    time.sleep(0.1)
  procs[1].send_signal(signal.SIGTERM)  # a preemption notice to one host only
  outs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [143, 143], outs
  saved = [re.findall(r'^SIGTERM: saved step (\d+)', out, re.MULTILINE) for out in outs]
  assert saved[0] == saved[1] and len(saved[0]) == 1, outs
  assert int(saved[0][0]) == max(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())


def test_a_busy_workdir_stops_every_process_of_a_run(photo_dirs, tmp_path):
  # Only process 0 takes the lock; the others must stop too, not wait for it.
  from jaxsr import workdir_lock
  cfg = write_tiny_config(photo_dirs, tmp_path / 'cfg.py', steps=3)
  port = _free_port()
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  (tmp_path / 'multi').mkdir()
  with workdir_lock.hold(tmp_path / 'multi'):
    procs = [run_main(tmp_path / 'multi', cfg, f'--coordinator_address=localhost:{port}',
                      '--num_processes=2', f'--process_id={i}', env_extra=env, wait=False)
             for i in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [1, 1], outs
  assert f'error: workdir {tmp_path / "multi"} is in use by another run (pid {os.getpid()}@' \
      in outs[0]
  assert 'process 0 could not lock it' in outs[1]
  assert not (tmp_path / 'multi' / 'checkpoints').exists()


def test_resume_drops_a_row_cut_short_by_a_kill(tmp_path):
  writer = metric_writers.MetricWriter(tmp_path, tensorboard=False)
  for step in (1, 2, 3):
    writer.write(step, {'train/loss': 1.0 / step})
  writer.close()
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 4, "train/lo')
  assert [r['step'] for r in metric_writers.read_metrics(tmp_path)] == [1, 2, 3]
  assert [r['step'] for r in metric_writers.trim_metrics(tmp_path, 3)] == [1, 2, 3]
  writer = metric_writers.MetricWriter(tmp_path, tensorboard=False)
  writer.write(4, {'train/loss': 0.25})
  writer.close()
  assert [r['step'] for r in metric_writers.read_metrics(tmp_path)] == [1, 2, 3, 4]


def test_a_damaged_row_inside_metrics_jsonl_is_named(tmp_path):
  (tmp_path / 'metrics.jsonl').write_text('{"step": 1}\n{"step": 2, "tr\n{"step": 3}\n')
  with pytest.raises(metric_writers.MetricsFileError, match=r'metrics.jsonl: line 2 is not JSON'):
    metric_writers.read_metrics(tmp_path)


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path):
  writer = metric_writers.MetricWriter(tmp_path, tensorboard=False)
  for step in (10, 20, 30, 40):
    writer.write(step, {'train/loss': 1.0 / step})
  writer.close()
  kept = metric_writers.trim_metrics(tmp_path, 20)
  assert [r['step'] for r in kept] == [10, 20]
  assert [r['step'] for r in metric_writers.read_metrics(tmp_path)] == [10, 20]
  assert not (tmp_path / 'metrics.jsonl.tmp').exists()
