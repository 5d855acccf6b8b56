"""Run lengths in epochs (jaxsr.epochs): steps from the patch grid and the global batch."""

import json

import pytest


from jaxsr import config_checks
from jaxsr import epochs
from jaxsr.datasets import sources

import test_train


def test_patches_per_epoch_counts_the_grid_of_the_model_input():
  # 101×83 HR at x2: LR 50×41; learned upsampling, LR side 20: 2·2 patches.
  assert epochs.patches_per_epoch([(101, 83)], {2.0: 20}, on_bicubic=False) == 4
  # On the bicubic input the modcropped HR 100×82, side 41: 2·2; at x3 99×81: 2·1.
  assert epochs.patches_per_epoch([(101, 83)], {2.0: 41, 3.0: 41}, on_bicubic=True) == 6
  assert epochs.patches_per_epoch([(30, 30)], {2.0: 41}, on_bicubic=True) == 0


def test_steps_are_ceil_of_epochs_times_patches_over_the_global_batch():
  assert epochs.epochs_to_steps(1, 22009, 64) == 344
  assert epochs.epochs_to_steps(60, 22009, 64) == 20634
  assert epochs.epochs_to_steps(1, 128, 64) == 2  # exact: no extra step
  assert epochs.epochs_to_steps(0.1, 640, 64) == 1


def eeds(arg=''):
  return test_train.load_config_module(test_train.REPO / 'configs' / 'eeds.py').get_config(arg)


def test_resolve_derives_steps_and_decay_points_from_epochs():
  c = eeds()
  assert (c.train.steps, c.train.epochs, c.optim.schedule.every_epochs) == (0, 60, 20)
  r = epochs.resolve(c, patches=22009, device_count=1)
  assert (r.train.steps, r.optim.schedule.every_steps) == (20634, 6878)
  assert (r.train.steps_from, r.train.patches_per_epoch, r.train.batch_size) == (
      'epochs', 22009, 64)
  # A pod's larger global batch: the same epochs in fewer steps.
  c.train.per_device_batch_size = 32
  r = epochs.resolve(c, patches=22009, device_count=8)
  assert (r.train.batch_size, r.train.steps, r.optim.schedule.every_steps) == (256, 5159, 1720)


def test_explicit_steps_win_and_record_the_epochs_they_are():
  c = eeds()
  c.train.steps = 688
  r = epochs.resolve(c, patches=22009, device_count=1)
  assert (r.train.steps, r.train.steps_from) == (688, 'steps')
  assert r.train.epochs == pytest.approx(688 * 64 / 22009)
  assert eeds('runlocal').train.steps == 600  # runlocal keeps its fixed steps
  c.optim.schedule.every_steps = 100
  assert epochs.resolve(c, 22009, 1).optim.schedule.every_steps == 100


def test_a_resumed_run_keeps_the_steps_derived_at_its_start():
  c = eeds()
  first = json.loads(epochs.resolve(c, patches=22009, device_count=1).to_json())
  # The data grew since: a fresh run derives more steps, the resumed one keeps its own.
  assert epochs.resolve(c, 30000, 1).train.steps == 28125
  kept = epochs.resolve(c, 30000, 1, recorded=first)
  assert (kept.train.steps, kept.optim.schedule.every_steps) == (20634, 6878)
  c.train.epochs = 80  # asked for more epochs: derived anew
  assert epochs.resolve(c, 30000, 1, recorded=first).train.steps == 37500


def test_a_batch_that_does_not_fit_the_devices_is_one_clear_error():
  c = eeds()
  with pytest.raises(config_checks.ConfigError,
                     match=r'^config.train.batch_size=64 is not a positive multiple of the '
                           r'device count \(48\); set config.train.per_device_batch_size'):
    config_checks.validate(c, device_count=48)
  c.train.per_device_batch_size = 2
  config_checks.validate(c, device_count=48)
  assert epochs.global_batch_size(c, 48) == 96


def test_a_step_schedule_needs_an_interval():
  c = eeds()
  c.optim.schedule.every_epochs = 0.0
  with pytest.raises(config_checks.ConfigError, match='every_epochs or every_steps'):
    config_checks.validate(c, device_count=1)


@pytest.mark.parametrize('config,arg,steps_per_epoch', [
    ('eeds', '', 344), ('vdsr', '', 847), ('dcnn', '', 283)])
def test_one_epoch_of_the_291_set(data_dir, config, arg, steps_per_epoch):
  c = test_train.load_config_module(test_train.REPO / 'configs' / f'{config}.py').get_config(arg)
  c.data.data_dir = str(data_dir)
  source = sources.open_training_source(c, ['t91', 'bsd200'])
  c.train.epochs = 1.0
  assert epochs.resolve(c, epochs.training_patches(c, source), 1).train.steps == steps_per_epoch


def test_a_run_in_epochs_derives_its_steps_and_records_them(photo_dirs, tmp_path):
  import jax
  from jaxsr import metric_writers
  from jaxsr import train
  c = test_train.tiny_config(photo_dirs, steps=0)
  # 3 photos 96×128 at x2, LR 6×6 patches: 8·10 each, 240 an epoch.
  c.train.epochs = 0.1
  c.train.per_device_batch_size = 1
  c.train.batch_size = 3  # ignored: not a multiple of 8, and not the global batch
  train.train_and_evaluate(c, tmp_path, devices=jax.devices())
  recorded = json.loads((tmp_path / 'config.json').read_text())['train']
  assert (recorded['batch_size'], recorded['steps'], recorded['epochs'],
          recorded['patches_per_epoch'], recorded['steps_from']) == (8, 3, 0.1, 240, 'epochs')
  assert max(r['step'] for r in metric_writers.read_metrics(tmp_path)) == 3
  # Resumed with fewer images (0.1 epoch would now be 2 steps): it keeps its 3.
  c.data.max_train_images = 2
  train.train_and_evaluate(c, tmp_path, devices=jax.devices())
  assert json.loads((tmp_path / 'config.json').read_text())['train']['steps'] == 3
  assert json.loads((tmp_path / 'config.json').read_text())['train']['patches_per_epoch'] == 160
