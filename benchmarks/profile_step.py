r"""Where a jaxsr training step spends its time on the CPU.

  python benchmarks/profile_step.py --models=eeds,edsr_baseline,vdsr,espcn

For each model, on one fixed batch (as benchmarks/throughput.py), times three
jitted functions, alternated, medians of --repeats: the forward pass + MSE
loss, value_and_grad of it, and the project's full `train.train_step` (grad
+ gradient norm + SGD momentum + the non-finite guard), and prints XLA's FLOP
count of each. --trace also records 3 train steps with jax.profiler (XLA's
per-thunk TraceMe events, --xla_cpu_enable_xprof_traceme) and prints the
thunks (fusions, ynn_fusion = convolutions and dots run by YNNPACK,
ffi_call = jaxsr's oneDNN convolutions) that take most of the time; map their names to layers with an HLO dump
(XLA_FLAGS=--xla_dump_to=DIR --xla_dump_hlo_as_text, file
*jit_train_step.cpu_after_optimizations.txt).
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build(name, args, convs='auto'):
  """{label: (compiled fn, args)} for one model, its convolutions by `convs`
  (jaxsr.cpu.conv.IMPLEMENTATIONS: 'auto', 'onednn', 'chunked', 'xla')."""
  import jax
  import jax.numpy as jnp
  import ml_collections
  import numpy as np
  from jaxsr import models, optim, train
  from jaxsr.cpu import conv
  model = models.get_model(name, scale=args.scale, channels=1, **conv.factories(convs))
  rng = np.random.default_rng(0)
  hr_side = args.patch * args.scale
  batch = {'lr': jnp.asarray(rng.random((args.batch, args.patch, args.patch, 1), np.float32)),
           'hr': jnp.asarray(rng.random((args.batch, hr_side, hr_side, 1), np.float32))}
  params = model.init(jax.random.key(0), batch['lr'])
  cfg = ml_collections.ConfigDict({'name': 'sgd', 'lr': 1e-4, 'momentum': 0.9,
                                   'schedule': {'name': 'constant'}})
  tx, schedule = optim.build_optimizer(cfg, 1000)
  state = train.TrainState(step=jnp.zeros([], jnp.int32), params=params,
                           opt_state=tx.init(params))

  def loss(p, b):
    return train.compute_loss(model.apply(p, b['lr'], output_size=b['hr'].shape[1:3]),
                              b['hr'], 'mse')

  step = functools.partial(train.train_step, model=model, tx=tx, schedule=schedule,
                           loss_kind='mse')
  fns = {'forward+loss': (jax.jit(loss), (params, batch)),
         'value_and_grad': (jax.jit(jax.value_and_grad(loss)), (params, batch)),
         'train_step': (jax.jit(step), (state, batch))}
  return {label: (fn.lower(*a).compile(), a) for label, (fn, a) in fns.items()}


def time_all(variants, repeats):
  import jax
  times = {k: [] for k in variants}
  for fn, a in variants.values():  # warm-up
    jax.block_until_ready(fn(*a))
  for r in range(repeats):
    for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
      fn, a = variants[k]
      time.sleep(0.1)
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*a))
      times[k].append(time.perf_counter() - t0)
  return {k: statistics.median(v) for k, v in times.items()}


def trace(fn, a, top, directory):
  """Prints the `top` thunks by time per step over 3 traced steps."""
  import collections
  import glob
  import gzip
  import json
  import jax
  jax.block_until_ready(fn(*a))
  with jax.profiler.trace(directory, create_perfetto_trace=True):
    for _ in range(3):
      jax.block_until_ready(fn(*a))
  path = sorted(glob.glob(f'{directory}/**/*perfetto_trace.json.gz', recursive=True))[-1]
  events = json.load(gzip.open(path))
  events = events['traceEvents'] if isinstance(events, dict) else events
  per_op = collections.Counter()
  for e in events:
    if e.get('ph') == 'X' and not e['name'].startswith(('$', 'Thunk', 'Pjit', 'Common')):
      per_op[e['name']] += e['dur'] / 1e3 / 3
  total = sum(per_op.values())
  print(f'  thunks: {total:.0f} ms per step in all; top {top}:')
  for name, ms in per_op.most_common(top):
    print(f'  {ms:8.1f} ms  {100 * ms / total:4.1f}%  {name}')


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--models', default='eeds,edsr_baseline,vdsr,espcn')
  p.add_argument('--scale', type=int, default=2)
  p.add_argument('--batch', type=int, default=16)
  p.add_argument('--patch', type=int, default=20)
  p.add_argument('--repeats', type=int, default=5)
  p.add_argument('--compare_convs', default='',
                 help='e.g. auto,chunked,xla: time the train step with each')
  p.add_argument('--trace', type=int, default=0, help='print the N slowest thunks')
  p.add_argument('--trace_dir', default='/tmp/jaxsr_profile')
  args = p.parse_args(argv)
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  if args.trace:
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                               + ' --xla_cpu_enable_xprof_traceme=true').strip()
  print(f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}')
  print('| model | function | median s | GFLOP (XLA) | GFLOP/s |')
  print('|---|---|---|---|---|')
  for name in args.models.split(','):
    variants = {f'{name} {k}': v for k, v in build(name, args).items()}
    if args.compare_convs:
      variants = {f'{name} train_step (convs {c})': build(name, args, c)['train_step']
                  for c in args.compare_convs.split(',')}
    medians = time_all(variants, args.repeats)
    for label, (fn, _) in variants.items():
      gflop = fn.cost_analysis()['flops'] / 1e9  # oneDNN's custom calls count 0
      model, what = label.split(' ', 1)
      print(f'| {model} | {what} | {medians[label]:.3f} | {gflop:.2f} | '
            f'{gflop / medians[label]:.1f} |', flush=True)
    if args.trace and not args.compare_convs:
      trace(*variants[f'{name} train_step'], args.trace, f'{args.trace_dir}/{name}')


if __name__ == '__main__':
  main()
