"""One training loop for every model: data parallel over a device Mesh."""

from __future__ import annotations

import functools
import json
import signal
import time
from typing import Any

from absl import logging
from etils import epath
import flax.struct
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import optax

from jaxsr import checkpointing
from jaxsr import config_checks
from jaxsr import datasets
from jaxsr import evaluators
from jaxsr import input_pipeline
from jaxsr import metric_writers
from jaxsr import models
from jaxsr import optim


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  opt_state: Any


class NonFiniteError(RuntimeError):
  pass


def compute_loss(sr: jax.Array, hr: jax.Array, kind: str) -> jax.Array:
  diff = sr.astype(jnp.float32) - hr
  return jnp.mean(diff * diff) if kind == 'mse' else jnp.mean(jnp.abs(diff))


def train_step(state: TrainState, batch: dict[str, jax.Array], *, model, tx,
               schedule, loss_kind: str) -> tuple[TrainState, dict[str, jax.Array]]:
  """One update. A non-finite loss or gradient leaves the state unchanged."""
  output_size = batch['hr'].shape[1:3]

  def loss_fn(params):
    sr = model.apply(params, batch['lr'], output_size=output_size)
    return compute_loss(sr, batch['hr'], loss_kind)

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


def _resolve_train_sets(c: ml_collections.ConfigDict) -> list[str]:
  if c.data.train != 'auto':
    return [s for s in c.data.train.split(',') if s]
  data_dir = c.data.data_dir or None
  if datasets.has_dataset('t91', data_dir) and datasets.has_dataset('bsd200', data_dir):
    return ['t91', 'bsd200']
  logging.warning('t91/bsd200 not found under %s: training on the embedded photos',
                  datasets.data_root(data_dir))
  return ['embedded_train']


def _resolve_eval_sets(c: ml_collections.ConfigDict) -> list[str]:
  if c.eval.sets != 'auto':
    return [s for s in c.eval.sets.split(',') if s]
  has_set5 = datasets.has_dataset('set5', c.data.data_dir or None)
  return ['set5'] if has_set5 else ['embedded_test']


class _Preemption:
  """Turns SIGTERM into a flag the loop checks, so it can checkpoint first."""

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


def _check_finite(pending: list[tuple[int, dict]], ckpt) -> None:
  for step, metrics in pending:
    if not bool(jax.device_get(metrics['finite'])):
      loss = float(jax.device_get(metrics['train/loss']))
      gnorm = float(jax.device_get(metrics['train/grad_norm']))
      raise NonFiniteError(
          f'non-finite loss or gradient at step {step} (loss={loss}, '
          f'grad_norm={gnorm}); the update was not applied and the run stops. '
          f'Last checkpoint: step {ckpt.latest_step()} (intact). Lower '
          'config.optim.lr or set config.optim.grad_clip_norm.')


def _host_params(params):
  """A process-local copy of replicated parameters (for evaluation)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), params)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       devices: list[jax.Device] | None = None) -> dict[str, Any]:
  """Trains `config` in `workdir`, resuming if it holds a checkpoint.

  `devices` defaults to every device of every process (the data axis).
  """
  devices = devices or jax.devices()
  config_checks.validate(config, len(devices))
  workdir = epath.Path(workdir)
  is_chief = jax.process_index() == 0
  if is_chief:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2))

  mesh = Mesh(np.asarray(devices), ('data',))
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))

  c = config
  model = models.get_model(c.model.name, scale=c.model.scale, channels=c.model.channels,
                           **c.model.kwargs.to_dict())
  scales = config_checks.train_scales(c)
  data_dir = c.data.data_dir or None
  patch_sizes = {s: input_pipeline.lr_patch_size(s, c.data.patch_size, c.data.hr_patch_size)
                 for s in scales}
  steps = int(c.train.steps)

  tx, schedule = optim.build_optimizer(c.optim, steps)
  dummy = jnp.zeros((1, 8, 8, c.model.channels), jnp.float32)

  def init_state(key):
    params = model.init(key, dummy)
    return TrainState(step=jnp.zeros([], jnp.int32), params=params,
                      opt_state=tx.init(params))

  abstract = jax.eval_shape(init_state, jax.random.key(0))
  state_sharding = jax.tree.map(lambda _: replicated, abstract)
  ckpt = checkpointing.Checkpointer(workdir, keep=c.checkpoint.keep,
                                    use_async=c.checkpoint.use_async)
  start = ckpt.latest_step()
  if start is not None:
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, state_sharding)
    state = ckpt.restore(target)
    logging.info('Resumed from %s at step %d', workdir / 'checkpoints', start)
  else:
    state = jax.jit(init_state, out_shardings=state_sharding)(
        jax.random.key(c.train.seed))
    start = 0
  history = _trim_history(workdir, start) if is_chief else []
  elapsed = next((r['train/elapsed_s'] for r in reversed(history)
                  if 'train/elapsed_s' in r), 0.0)

  writer = metric_writers.MetricWriter(workdir, enabled=is_chief)
  benchmark_evaluators = [evaluators.build_evaluator(
      'benchmark', dataset=name, scales=scales, channels=c.model.channels,
      data_dir=data_dir, max_images=c.eval.max_images or None,
      max_shapes=c.eval.max_shapes)
      for name in _resolve_eval_sets(c)]

  def run_eval(step):
    predict = evaluators.model_predict(model, _host_params(state.params))
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

  final_metrics: dict[str, Any] = {}
  if start < steps:
    sampler = input_pipeline.PatchSampler(
        input_pipeline.degrade_all(
            input_pipeline.load_training_images(
                _resolve_train_sets(c), data_dir, c.data.max_train_images or None),
            scales, c.model.channels, max(patch_sizes.values())),
        global_batch_size=c.train.batch_size, patch_sizes=patch_sizes,
        seed=c.train.seed, augment=c.data.augment, process_index=jax.process_index(),
        process_count=jax.process_count())
    step_fn = jax.jit(
        functools.partial(train_step, model=model, tx=tx, schedule=schedule,
                          loss_kind=c.train.loss),
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=(state_sharding, replicated), donate_argnums=0)
    to_device = lambda b: {k: jax.make_array_from_process_local_data(batch_sharding, v)
                           for k, v in b.items()}
    pending: list[tuple[int, dict]] = []
    t_mark, step_mark = time.perf_counter(), start
    with _Preemption() as preempt:
      for step, batch in input_pipeline.prefetch(sampler.batch, range(start, steps),
                                                 to_device, depth=c.data.prefetch):
        state, metrics = step_fn(state, batch)
        pending.append((step, metrics))
        done = step + 1
        log_now = done % c.train.log_every == 0 or done == steps
        eval_now = done % c.eval.every == 0 or done == steps
        save_now = done % c.checkpoint.every == 0 or done == steps or preempt.requested
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
        if eval_now:
          eval_row, psnr = run_eval(done)
          row.update(eval_row)
          ckpt.save_if_best(done, state, psnr)
        if save_now:
          ckpt.save(done, state, force=True)
        writer.write(done, row)
        final_metrics = row
        if preempt.requested:
          logging.warning('SIGTERM: saved step %d, exiting', done)
          ckpt.wait()
          ckpt.close()
          writer.close()
          raise SystemExit(143)
        t_mark, step_mark = time.perf_counter(), done
  elif steps == 0 or not history:
    final_metrics, _ = run_eval(start)
    writer.write(start, final_metrics)
  else:
    final_metrics = history[-1]
  ckpt.wait()
  ckpt.close()
  writer.close()
  return final_metrics


def _trim_history(workdir: epath.Path, step: int) -> list[dict]:
  """Drops metrics.jsonl rows logged after the checkpoint we resume from."""
  rows = metric_writers.read_metrics(workdir)
  kept = [r for r in rows if r['step'] <= step]
  if len(kept) != len(rows):
    path = workdir / 'metrics.jsonl'
    tmp = path.parent / 'metrics.jsonl.tmp'
    tmp.write_text(''.join(json.dumps(r) + '\n' for r in kept))
    tmp.replace(path)
  return kept
