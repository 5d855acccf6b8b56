"""Workdirs on gs:// against a real GCS emulator on loopback (tests/gcs_emulator.py)."""

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from jaxsr import checkpointing
from jaxsr import metric_writers


def test_checkpoints_save_and_restore_on_gcs(gcs_workdir):
  state = {'params': {'w': jnp.arange(6.0).reshape(2, 3)}, 'step': jnp.int32(3)}
  ckpt = checkpointing.Checkpointer(gcs_workdir, keep=2, use_async=False)
  ckpt.save(3, state, force=True)
  ckpt.wait()
  ckpt.close()
  again = checkpointing.Checkpointer(gcs_workdir, keep=2, use_async=False)
  assert again.latest_step() == 3
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
  restored = again.restore(target)
  again.close()
  np.testing.assert_array_equal(restored['params']['w'], state['params']['w'])
  assert epath.Path(gcs_workdir, 'checkpoints', '3').is_dir()


def test_metrics_append_and_read_back_on_gcs(gcs_workdir):
  writer = metric_writers.MetricWriter(gcs_workdir, tensorboard=False)
  writer.write(1, {'train/loss': 0.5})
  writer.write(2, {'train/loss': 0.25})
  writer.close()
  rows = metric_writers.read_metrics(gcs_workdir)
  assert [(r['step'], r['train/loss']) for r in rows] == [(1, 0.5), (2, 0.25)]


def test_a_resumed_writer_keeps_earlier_rows_on_gcs(gcs_workdir):
  """gcsfs has no append mode (it silently overwrites): a resumed run must keep the rows."""
  for step in (1, 2):
    writer = metric_writers.MetricWriter(gcs_workdir, tensorboard=False)
    writer.write(step, {'train/loss': 1.0 / step})
    writer.close()
  assert [r['step'] for r in metric_writers.read_metrics(gcs_workdir)] == [1, 2]


def test_resume_trims_rows_after_the_checkpoint_on_gcs(gcs_workdir):
  writer = metric_writers.MetricWriter(gcs_workdir, tensorboard=False)
  for step in (1, 2, 3):
    writer.write(step, {'train/loss': 1.0 / step})
  writer.close()
  assert [r['step'] for r in metric_writers.trim_metrics(gcs_workdir, 2)] == [1, 2]
  writer = metric_writers.MetricWriter(gcs_workdir, tensorboard=False)
  writer.write(3, {'train/loss': 0.1})
  writer.close()
  rows = metric_writers.read_metrics(gcs_workdir)
  assert [(r['step'], r['train/loss']) for r in rows] == [(1, 1.0), (2, 0.5), (3, 0.1)]


def test_tensorboard_events_are_written_to_gcs_with_each_row(gcs_workdir):
  writer = metric_writers.MetricWriter(gcs_workdir)
  writer.write(1, {'train/loss': 0.5})
  (events,) = epath.Path(gcs_workdir, 'tensorboard').glob('events.out.tfevents.*')
  size = events.stat().length
  writer.write(2, {'train/loss': 0.25})  # uploaded before close: a kill keeps it
  assert events.stat().length > size
  writer.close()


def test_restore_params_reads_a_gcs_workdir(gcs_workdir):
  state = {'params': {'w': jnp.arange(4.0)}, 'step': jnp.int32(1)}
  ckpt = checkpointing.Checkpointer(gcs_workdir, use_async=False)
  ckpt.save(1, state, force=True)
  ckpt.close()
  params = checkpointing.restore_params(gcs_workdir)
  np.testing.assert_array_equal(params['w'], state['params']['w'])
