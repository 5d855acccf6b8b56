"""jaxsr.models.backend, the one door to the CPU fast path (jaxsr.cpu)."""

import os
import pathlib
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest
import skimage.data

from jaxsr import models
from jaxsr.models import backend

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_the_fast_path_is_chosen_on_the_cpu_only(monkeypatch):
  conv = pytest.importorskip('jaxsr.cpu.conv')
  assert jax.default_backend() == 'cpu' and jax.device_count() == 8  # conftest
  assert backend.conv_factories() == conv.factories('chunked')  # no oneDNN on 8
  monkeypatch.setattr(jax, 'device_count', lambda: 1)
  assert backend.conv_factories() == conv.factories('auto')
  assert models.get_model('eeds', scale=2).conv is conv.conv_factory('auto')
  monkeypatch.setitem(sys.modules, 'jaxsr.cpu', None)  # as if jaxsr/cpu/ were deleted
  assert backend.conv_factories() == backend.XLA_FACTORIES
  monkeypatch.delitem(sys.modules, 'jaxsr.cpu')
  for platform in ('gpu', 'tpu'):
    monkeypatch.setattr(jax, 'default_backend', lambda: platform)
    assert backend.conv_factories() == backend.XLA_FACTORIES
    model = models.get_model('fsrcnn', scale=2)
    assert (model.conv, model.conv_transpose) == (nn.Conv, nn.ConvTranspose)


def test_keep_freed_memory_needs_the_cpu_and_jaxsr_cpu(monkeypatch):
  """(With JAX_PLATFORMS set: tests/test_host_memory.py.)"""
  host_memory = pytest.importorskip('jaxsr.cpu.host_memory')
  if jax.config.jax_platforms:
    pytest.skip('JAX_PLATFORMS is set: it decides')
  calls = []
  monkeypatch.setattr(host_memory, 'keep_freed_memory', lambda: calls.append(1) or True)
  assert backend.keep_freed_memory() and calls == [1]  # no accelerator plugin here
  find_spec = backend.importlib.util.find_spec
  for plugin in ('libtpu', 'jax_plugins'):  # TPU; GPU (jax-cuda*-plugin)
    monkeypatch.setattr(backend.importlib.util, 'find_spec',
                        lambda name, plugin=plugin: object() if name == plugin else find_spec(name))
    assert not backend.keep_freed_memory() and calls == [1]
  monkeypatch.undo()
  monkeypatch.setitem(sys.modules, 'jaxsr.cpu', None)
  assert not backend.keep_freed_memory()


# The commands a user types, with jaxsr.cpu unimportable (as if deleted), on
# one CPU device: where the fast path would otherwise be used.
WITHOUT_FAST_PATH = ("import runpy, sys; sys.modules['jaxsr.cpu'] = None; "
                     "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)")


def _run_without_fast_path(module, *args):
  env = dict(os.environ, XLA_FLAGS='', JAX_PLATFORMS='cpu')
  done = subprocess.run([sys.executable, '-c', WITHOUT_FAST_PATH, module, *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  return done.stdout + done.stderr


def test_commands_work_without_the_fast_path(tmp_path):
  """Training, evaluation and upscaling with XLA's convolutions only."""
  from PIL import Image
  photos = tmp_path / 'photos'
  photos.mkdir()
  for name in ('astronaut', 'coffee'):
    Image.fromarray(getattr(skimage.data, name)()[:64, :64]).save(photos / f'{name}.png')
  workdir = tmp_path / 'run'
  _run_without_fast_path(
      'jaxsr.main', '--config=configs/eeds.py:runlocal', f'--workdir={workdir}',
      '--config.train.steps=2', '--config.train.batch_size=2', '--config.data.patch_size=8',
      '--config.model.num_residual_units=1',  # compile time; every layer kind stays
      f'--config.data.train={photos}', f'--config.eval.sets={photos}',
      '--config.checkpoint.use_async=False')
  _run_without_fast_path('jaxsr.evaluate', f'--workdir={workdir}', f'--sets={photos}',
                         '--max_images=1')
  out = tmp_path / 'sr.png'
  _run_without_fast_path('jaxsr.upscale', f'--workdir={workdir}', f'--out={out}',
                         str(photos / 'coffee.png'))
  assert np.asarray(Image.open(out)).shape[:2] == (128, 128)
