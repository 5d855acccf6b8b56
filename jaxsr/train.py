"""One training loop for every model: data parallel over a device Mesh.

What a run guarantees when things go wrong: one run per workdir
(workdir_lock); a SIGTERM saves the current step and waits for its commit
before raising Preempted, or says that nothing was saved; a failed save stops
the run (CheckpointError: at once, or with async checkpointing by the next
save); a resume starts from the newest checkpoint that restores, so a kill
loses at most `checkpoint.every` steps (two intervals with async saves).
metrics.jsonl rows are written before the checkpoint of their step, and a
resume drops the rows after the restored step, so each step is logged once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import time
from typing import Any

from absl import logging
from etils import epath
import flax.struct
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import optax

from jaxsr import checkpointing
from jaxsr import config_checks
from jaxsr import epochs
from jaxsr.datasets import run_sets
from jaxsr.datasets import sources
from jaxsr import evaluators
from jaxsr import init_from
from jaxsr import input_pipeline
from jaxsr import metric_writers
from jaxsr import models
from jaxsr import optim
from jaxsr import runs
from jaxsr import workdir_lock


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  opt_state: Any


class NonFiniteError(ValueError):
  """A non-finite loss or gradient: the settings (learning rate, clipping) diverge."""


class WorkdirError(NotADirectoryError):
  """--workdir names something that is not a folder."""


class Preempted(Exception):
  """SIGTERM stopped the run. `step`: the checkpoint saved on the way out, or None.

  Not a ValueError or OSError: nothing is wrong with the run, and callers
  (jaxsr.main: exit 143) tell it apart from failures.
  """

  def __init__(self, message: str, step: int | None):
    super().__init__(message)
    self.step = step


def compute_loss(sr: jax.Array, hr: jax.Array, kind: str,
                 reduction: str = 'mean') -> jax.Array:
  """MSE or L1 between (B, H, W, C) batches.

  reduction 'mean': over every pixel of the batch. 'sum_per_sample': summed
  over each sample, averaged over the batch, MSE halved (VDSR's
  ½‖r − f(x)‖², Caffe's EuclideanLoss): the convention the papers' learning
  rates and VDSR's θ/γ clipping are given in. Its MSE gradient is the mean's
  times ½·H·W·C (the pixels of one sample), 840.5 for VDSR's 41×41 Y patches.
  """
  diff = sr.astype(jnp.float32) - hr
  per_pixel = diff * diff if kind == 'mse' else jnp.abs(diff)
  if reduction == 'mean':
    return jnp.mean(per_pixel)
  if reduction != 'sum_per_sample':
    raise ValueError(f'loss reduction {reduction!r}; valid: '
                     f'{config_checks.LOSS_REDUCTIONS}')
  per_sample = jnp.sum(per_pixel.reshape(per_pixel.shape[0], -1), axis=1)
  return jnp.mean(per_sample) * (0.5 if kind == 'mse' else 1.0)


def train_step(state: TrainState, batch: dict[str, jax.Array], *, model, tx,
               schedule, loss_kind: str, loss_reduction: str = 'mean'
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One update. A non-finite loss or gradient leaves the state unchanged."""
  output_size = batch['hr'].shape[1:3]

  def loss_fn(params):
    sr = model.apply(params, batch['lr'], output_size=output_size)
    return compute_loss(sr, batch['hr'], loss_kind, loss_reduction)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  grad_norm = optax.tree.norm(grads)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
  new_state = TrainState(step=state.step + finite.astype(state.step.dtype),
                         params=keep(params, state.params),
                         opt_state=keep(opt_state, state.opt_state))
  metrics = {'train/loss': loss, 'train/grad_norm': grad_norm,
             'train/lr': schedule(state.step), 'finite': finite}
  return new_state, metrics


class _StopSignal:
  """SIGTERM as a flag; `should_stop` is the one decision the loop acts on."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def should_stop(self, sync_point: bool) -> bool:
    """Whether to save and stop after this step. Read once per step: the
    save and the exit follow this one answer.

    A save is collective, so with several processes all must agree: they
    compare flags at sync points only (logging steps, where the host waits
    for the devices anyway), the same steps on every process.
    """
    if jax.process_count() == 1:
      return self.requested
    if not sync_point:
      return False
    flags = multihost_utils.process_allgather(np.int32(self.requested))
    return bool(np.any(flags))


def _check_finite(pending: list[tuple[int, dict]], ckpt) -> None:
  for step, metrics in pending:
    if not bool(jax.device_get(metrics['finite'])):
      loss = float(jax.device_get(metrics['train/loss']))
      gnorm = float(jax.device_get(metrics['train/grad_norm']))
      last = ckpt.latest_step()
      raise NonFiniteError(
          f'non-finite loss or gradient at step {step} (loss={loss}, '
          f'grad_norm={gnorm}); the update was not applied and the run stops. '
          + (f'Last checkpoint: step {last} (intact). ' if last is not None
             else 'No checkpoint yet. ')
          + 'Lower config.optim.lr or set config.optim.grad_clip_norm.')


def _prepare_workdir(workdir: epath.Path) -> None:
  if workdir.exists() and not workdir.is_dir():
    raise WorkdirError(f'--workdir {workdir} is a file; expected a folder (new or '
                       'of an earlier run)')
  workdir.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _one_run_per_workdir(workdir: epath.Path):
  """Process 0 holds the workdir lock; every process learns whether it got it
  (so that the others stop too rather than wait for process 0 forever)."""
  with contextlib.ExitStack() as stack:
    busy = None
    if jax.process_index() == 0:
      try:
        stack.enter_context(workdir_lock.hold(workdir))
      except workdir_lock.WorkdirBusyError as e:
        busy = e
    if jax.process_count() > 1:
      if multihost_utils.broadcast_one_to_all(np.int32(busy is not None)) and busy is None:
        busy = workdir_lock.WorkdirBusyError(
            f'workdir {workdir} is in use by another run (process 0 could not lock it)')
    if busy is not None:
      raise busy
    yield


def _resolve_run_length(c: ml_collections.ConfigDict, source, device_count: int,
                        workdir: epath.Path) -> ml_collections.ConfigDict:
  """`c` with its steps derived from epochs (jaxsr.epochs), process 0's on
  every process; a resumed run keeps the lengths its config.json records."""
  recorded = None
  if jax.process_index() == 0 and runs.checkpoint_step(workdir) is not None:
    with contextlib.suppress(runs.RunError):
      recorded = runs.read_config(workdir)
  c = epochs.resolve(c, epochs.training_patches(c, source), device_count, recorded)
  if jax.process_count() > 1:
    lengths = np.asarray([c.train.steps, c.optim.schedule.every_steps,
                          c.optim.schedule.warmup_steps], np.int64)
    lengths = multihost_utils.broadcast_one_to_all(lengths)
    c.train.steps, c.optim.schedule.every_steps, c.optim.schedule.warmup_steps = (
        int(v) for v in lengths)
  return c


def _write_config(workdir: epath.Path, config: ml_collections.ConfigDict,
                  data: dict | None, devices: list[jax.Device]) -> None:
  """The resolved config; under 'resolved_data' what the training data
  resolved to (TrainingSource.record: source, sets and sizes, fingerprint) and
  under 'resolved_devices' what it trains on (shipped weights' records say so)."""
  extra = {'resolved_devices': {
      'platform': devices[0].platform, 'device_kind': devices[0].device_kind,
      'device_count': len(devices), 'process_count': jax.process_count()}}
  if data is not None:
    extra['resolved_data'] = data
  text = json.dumps({**json.loads(config.to_json_best_effort()), **extra}, indent=2)
  metric_writers.write_whole(workdir / 'config.json', text)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       devices: list[jax.Device] | None = None) -> dict[str, Any]:
  """Trains `config` in `workdir`, resuming if it holds a checkpoint.

  `devices` defaults to every device of every process (the data axis).

  Raises:
    config_checks.ConfigError, datasets.DatasetError: bad settings or data,
      before anything in the workdir changes.
    workdir_lock.WorkdirBusyError: another run holds the workdir.
    checkpointing.CheckpointError: a save failed, or no checkpoint restores.
    NonFiniteError: the loss diverged (the last checkpoint is intact).
    Preempted: SIGTERM; says whether the current step was saved.
  """
  devices = devices or jax.devices()
  config_checks.validate(config, len(devices))
  workdir = epath.Path(workdir)
  if jax.process_index() == 0:
    _prepare_workdir(workdir)
  with _one_run_per_workdir(workdir), _StopSignal() as stop_signal:
    return _train(config, workdir, devices, stop_signal)


def _train(c: ml_collections.ConfigDict, workdir: epath.Path, devices: list[jax.Device],
           stop_signal: _StopSignal) -> dict[str, Any]:
  is_chief = jax.process_index() == 0
  mesh = Mesh(np.asarray(devices), ('data',))
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))

  model = models.from_config(c.model)
  scales = config_checks.train_scales(c)
  data_dir = c.data.data_dir or None
  # The training set first: a missing set fails before the workdir changes,
  # and its patch grid turns epochs into steps.
  train_sets = run_sets.train_sets(c)
  source = sources.open_training_source(c, train_sets)
  c = _resolve_run_length(c, source, len(devices), workdir)
  steps = int(c.train.steps)

  tx, schedule = optim.build_optimizer(c.optim, steps)
  dummy = jnp.zeros((1, 8, 8, c.model.channels), jnp.float32)

  def init_state(key):
    params = model.init(key, dummy)
    return TrainState(step=jnp.zeros([], jnp.int32), params=params,
                      opt_state=tx.init(params))

  abstract = jax.eval_shape(init_state, jax.random.key(0))
  state_sharding = jax.tree.map(lambda _: replicated, abstract)
  # A new run reads its init_from source before the workdir changes, so a bad
  # one costs nothing; a resumed run no longer needs it.
  init_source = (init_from.load_source(c.train.init_from) if c.train.get('init_from')
                 and runs.checkpoint_step(workdir) is None else None)
  # Evaluation sets too, before the workdir changes.
  benchmark_evaluators = [evaluators.build_evaluator(
      c.eval.kind, dataset=name, scales=scales, channels=c.model.channels,
      data_dir=data_dir, max_images=c.eval.max_images or None,
      max_shapes=c.eval.max_shapes)
      for name in run_sets.eval_sets(c)]

  ckpt = checkpointing.Checkpointer(workdir, keep=c.checkpoint.keep,
                                    use_async=c.checkpoint.use_async)
  writer = None
  try:
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, state_sharding)
    restored = ckpt.restore_newest(target)
    if restored is not None:
      state, start = restored
      logging.info('Resumed from %s at step %d', workdir / 'checkpoints', start)
    else:
      state = jax.jit(init_state, out_shardings=state_sharding)(
          jax.random.key(c.train.seed))
      if c.train.get('init_from'):
        start_from = init_source or init_from.load_source(c.train.init_from)
        state = _initialised_from(state, start_from, c.train.init_from, tx, state_sharding)
      start = 0
    sampler = None
    if start < steps:
      sampler = input_pipeline.training_sampler(
          c, source, batch_sharding, process_index=jax.process_index(),
          process_count=jax.process_count())
    # The run starts: only now may it replace an earlier run's records.
    history = metric_writers.trim_metrics(workdir, start) if is_chief else []
    if is_chief:
      _write_config(workdir, c, source.record, devices)
      if start == 0 and c.train.get('init_from'):
        init_from.save_record(workdir, c.train.init_from)
    writer = metric_writers.MetricWriter(workdir, enabled=is_chief)

    def run_eval(step):
      # Images split over the training mesh; every process scores them all.
      predict = evaluators.model_predict(model, state.params, mesh)
      out = {}
      for ev in benchmark_evaluators:
        result, bicubic = ev.run(predict), ev.bicubic()
        for i, scale in enumerate(scales):
          key = evaluators.scale_key(scale)
          prefixes = [f'eval/{ev.name}'] if i == 0 else []
          if len(scales) > 1:
            prefixes.append(f'eval/{ev.name}/{key}')
          for prefix in prefixes:
            out[f'{prefix}/psnr_y'] = result[key]['psnr_y']
            out[f'{prefix}/ssim_y'] = result[key]['ssim_y']
            out[f'{prefix}/bicubic_psnr_y'] = bicubic[key]['psnr_y']
      first = f'eval/{benchmark_evaluators[0].name}'
      logging.info('step %d: %s PSNR(Y) %.3f dB (bicubic %.3f), SSIM %.4f', step,
                   benchmark_evaluators[0].name, out[f'{first}/psnr_y'],
                   out[f'{first}/bicubic_psnr_y'], out[f'{first}/ssim_y'])
      return out, out[f'{first}/psnr_y']

    if sampler is None:
      if steps == 0 or not history:
        final_metrics, _ = run_eval(start)
        writer.write(start, final_metrics)
      else:
        final_metrics = history[-1]
      ckpt.wait()
      return final_metrics
    if stop_signal.should_stop(sync_point=True):
      raise Preempted('SIGTERM before the first step: nothing new to save; '
                      + _last_checkpoint_text(ckpt, workdir), None)
    elapsed = next((r['train/elapsed_s'] for r in reversed(history)
                    if 'train/elapsed_s' in r), 0.0)
    step_fn = jax.jit(
        functools.partial(train_step, model=model, tx=tx, schedule=schedule,
                          loss_kind=c.train.loss,
                          loss_reduction=c.train.get('loss_reduction', 'mean')),
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=(state_sharding, replicated), donate_argnums=0)
    final_metrics: dict[str, Any] = {}
    pending: list[tuple[int, dict]] = []
    t_mark, step_mark = time.perf_counter(), start
    for step, batch in input_pipeline.prefetch(sampler.batch, range(start, steps),
                                               sampler.to_device, depth=c.data.prefetch):
      state, metrics = step_fn(state, batch)
      done = step + 1  # as the logs count: the state after `done` updates
      pending.append((done, metrics))
      ckpt.check()
      log_now = done % c.train.log_every == 0 or done == steps
      eval_now = done % c.eval.every == 0 or done == steps
      stop = stop_signal.should_stop(sync_point=log_now or eval_now)
      save_now = done % c.checkpoint.every == 0 or done == steps or stop
      if not (log_now or eval_now or save_now):
        continue
      _check_finite(pending, ckpt)
      row = {k: float(v) for k, v in jax.device_get(pending[-1][1]).items()
             if k != 'finite'}
      pending.clear()
      now = time.perf_counter()
      elapsed += now - t_mark
      row['train/steps_per_s'] = (done - step_mark) / max(now - t_mark, 1e-9)
      row['train/elapsed_s'] = elapsed
      eta = (steps - done) / max(row['train/steps_per_s'], 1e-9)
      logging.info('step %d/%d  loss %.5f  %.2f steps/s  ETA %.0f s', done, steps,
                   row['train/loss'], row['train/steps_per_s'], eta)
      psnr = None
      if eval_now:
        eval_row, psnr = run_eval(done)
        row.update(eval_row)
      # The row before the checkpoint: a kill in between leaves a row that
      # the resume drops, never a saved step without its row.
      writer.write(done, row)
      final_metrics = row
      try:
        if psnr is not None:
          ckpt.save_if_best(done, state, psnr)
        if save_now:
          ckpt.save(done, state, force=True)
        if stop and not ckpt.committed(done):
          raise checkpointing.CheckpointError(
              f'step {done} is not in {workdir / "checkpoints"} after its save')
      except checkpointing.CheckpointError as e:
        if stop:
          raise Preempted(f'SIGTERM: did not save step {done}: {e}', None) from None
        raise
      if stop:
        raise Preempted(f'SIGTERM: saved step {done} in {workdir / "checkpoints"}; '
                        'rerun the same command to resume', done)
      t_mark, step_mark = time.perf_counter(), done
    ckpt.wait()
    return final_metrics
  finally:
    try:
      if writer is not None:
        writer.close()
    finally:
      ckpt.close()


def _initialised_from(state: TrainState, source: Any, spec: str, tx,
                      state_sharding) -> TrainState:
  """`state` with the parameters of `source` that fit, and a fresh optimiser."""
  params, copied, kept = init_from.merge(jax.device_get(state.params), source)
  logging.info('init_from %s: copied %d parameters; kept the fresh initialisation of '
               '%d: %s', spec, len(copied), len(kept), ', '.join(kept) or 'none')
  return jax.jit(lambda p: TrainState(step=jnp.zeros([], jnp.int32), params=p,
                                      opt_state=tx.init(p)),
                 out_shardings=state_sharding)(params)


def _last_checkpoint_text(ckpt: checkpointing.Checkpointer, workdir: epath.Path) -> str:
  last = ckpt.latest_step()
  if last is None:
    return 'no checkpoint yet'
  return f'the last checkpoint is step {last} in {workdir / "checkpoints"}'
