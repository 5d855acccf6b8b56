"""config.train.init_from: fine-tuning from a run or shipped weights."""

import json
import logging
import shutil

import jax
import numpy as np
import pytest

from jaxsr import checkpointing
from jaxsr import init_from
from jaxsr import pretrained
from jaxsr import train
from tests.test_train import tiny_config


def _frozen(c):
  """No update moves the parameters, so the run's checkpoint is its initialisation."""
  c.optim.lr = 0.0
  c.train.steps = 2
  return c


def test_another_scale_starts_from_every_parameter_that_fits(photo_dirs, tmp_path):
  train.train_and_evaluate(tiny_config(photo_dirs, steps=4), tmp_path / 'x2',
                           devices=jax.devices()[:1])
  c = _frozen(tiny_config(photo_dirs))
  c.model.scale = 3.0
  c.train.init_from = str(tmp_path / 'x2')
  train.train_and_evaluate(c, tmp_path / 'x3', devices=jax.devices()[:1])
  scratch = _frozen(tiny_config(photo_dirs))
  scratch.model.scale = 3.0
  train.train_and_evaluate(scratch, tmp_path / 'scratch', devices=jax.devices()[:1])

  source = checkpointing.restore_params(tmp_path / 'x2')['params']['body']
  tuned = checkpointing.restore_params(tmp_path / 'x3')['params']['body']
  fresh = checkpointing.restore_params(tmp_path / 'scratch')['params']['body']
  layers = sorted(tuned)
  *hidden, output = layers
  for name in hidden:  # the 64/32-feature layers: the x2 run's weights
    for kind in ('kernel', 'bias'):
      np.testing.assert_array_equal(tuned[name][kind], source[name][kind])
  # The output layer (C·r² = 9 filters, not 4) keeps the fresh initialisation.
  assert tuned[output]['kernel'].shape[-1] == 9 != source[output]['kernel'].shape[-1]
  np.testing.assert_array_equal(tuned[output]['kernel'], fresh[output]['kernel'])
  assert not np.array_equal(tuned[hidden[0]]['kernel'], fresh[hidden[0]]['kernel'])


def test_shipped_weights_by_name():
  variables = init_from.load_source('eeds_x2')
  _, shipped = pretrained.load('eeds', 2)
  for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(shipped)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('spec, message', [
    ('nosuch_x3', 'no pretrained weights nosuch_x3; available: '),
    ('eeds', 'expected shipped weights as NAME_xSCALE'),
    ('/no/such/run', 'no such workdir or checkpoint folder'),
])
def test_a_bad_source_is_one_line_naming_the_setting(spec, message):
  with pytest.raises(init_from.InitFromError) as e:
    init_from.load_source(spec)
  assert str(e.value).startswith(f'config.train.init_from={spec!r}: ')
  assert message in str(e.value) and '\n' not in str(e.value)


def test_a_folder_that_is_no_checkpoint_is_named(tmp_path):
  (tmp_path / 'notes.txt').write_text('not a run')
  with pytest.raises(init_from.InitFromError, match='not a jaxsr workdir or checkpoint'):
    init_from.load_source(str(tmp_path))


def test_another_model_matches_nothing():
  fresh = {'params': {'body': {'Conv_0': {'kernel': np.zeros((3, 3, 1, 8))}}}}
  other = {'params': {'deep': {'Conv_0': {'kernel': np.zeros((3, 3, 1, 8))}}}}
  with pytest.raises(init_from.InitFromError, match='another model'):
    init_from.merge(fresh, other)


def test_a_bad_source_stops_before_the_workdir_is_written(photo_dirs, tmp_path):
  c = tiny_config(photo_dirs)
  c.train.init_from = str(tmp_path / 'missing_run')
  with pytest.raises(init_from.InitFromError):
    train.train_and_evaluate(c, tmp_path / 'run', devices=jax.devices()[:1])
  assert {p.name for p in (tmp_path / 'run').iterdir()} <= {'.lock'}  # the run's lock only


def test_a_resumed_run_no_longer_needs_its_source(photo_dirs, tmp_path):
  train.train_and_evaluate(tiny_config(photo_dirs, steps=2), tmp_path / 'source',
                           devices=jax.devices()[:1])
  c = tiny_config(photo_dirs, steps=2)
  c.train.init_from = str(tmp_path / 'source')
  train.train_and_evaluate(c, tmp_path / 'run', devices=jax.devices()[:1])
  shutil.rmtree(tmp_path / 'source')
  c.train.steps = 4
  train.train_and_evaluate(c, tmp_path / 'run', devices=jax.devices()[:1])
  assert checkpointing.restore_params(tmp_path / 'run') is not None


def test_weights_exported_from_shipped_weights_chain_their_training(photo_dirs, tmp_path):
  c = _frozen(tiny_config(photo_dirs))
  c.model.features = None  # the shipped ESPCN's
  c.train.init_from = 'espcn_x2'
  train.train_and_evaluate(c, tmp_path / 'run', devices=jax.devices()[:1])
  shipped = pretrained.read_meta('espcn', 2)
  # Exported over the very weights it started from: the record keeps theirs.
  record = json.loads(pretrained.export(tmp_path / 'run', out_dir=tmp_path / 'out').read_text())
  training = record['training']
  assert training['init_from_weights']['sha256'] == shipped['sha256']
  assert training['chain_train_time_s'] == pytest.approx(
      training['train_time_s'] + shipped['training']['chain_train_time_s'])
  # And it says what trained it.
  assert training['devices'] == {'platform': 'cpu', 'device_kind': jax.devices()[0].device_kind,
                                 'device_count': 1, 'process_count': 1}


def test_restoring_a_runs_params_warns_of_nothing(tmp_path, caplog):
  """jaxsr.evaluate/upscale/init_from on a workdir read its best/ item; Orbax
  warned 'Metadata file does not exist' for every such read."""
  from configs import common
  from tests.conftest import save_run
  saved = save_run(tmp_path / 'run', common.base_config('espcn', scale=2), step=3)
  with caplog.at_level(logging.WARNING):
    params = checkpointing.restore_params(tmp_path / 'run')
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
  for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
