r"""Training and inference throughput on the CPU: jaxsr against PyTorch.

  python benchmarks/throughput.py                                # all, LR 256 + 1024
  python benchmarks/throughput.py --models=espcn --infer_sizes=256 --repeats=3

For each model (`vdsr`, `eeds`, `edsr_baseline`, `espcn`, ×2 on Y) the same
architecture runs in jaxsr (Flax/XLA) and in PyTorch (benchmarks/
torch_models.py; parameter counts asserted equal and, with --check, outputs
compared on the same weights):

* train: one full step, forward + MSE + backward + SGD momentum 0.9, on a
  fixed batch (--batch LR patches of --patch², HR --patch·scale). jaxsr runs
  the project's own `jaxsr.train.train_step` (which also computes the
  gradient norm and the non-finite guard) with the optimiser from
  `jaxsr.optim.build_optimizer`, jitted with the state donated, as training
  does. Its convolutions are those get_model gives a one-device CPU run
  (jaxsr.models.backend: jaxsr.cpu.conv 'auto', oneDNN where it is available
  and the conv is not tiny); --convs=auto,chunked,xla also times jaxsr with
  XLA's convolutions (kernel gradient chunked over images, or XLA's own as
  before issue 7), and `flax` with Flax's own layers (what a run without
  jaxsr.cpu gets), each alternated with the others in the same process.
  PyTorch: zero_grad(set_to_none), loss.backward(), SGD.step(), eager.
  Reported in patches/s.
* FLOPs are XLA's count of the step compiled with Flax's own layers
  (backend.XLA_FACTORIES: a custom call has no cost analysis), credited to
  every implementation.
* infer: one LR image of --infer_sizes² (batch 1), in megapixels of SR
  output per second; PyTorch under inference_mode().
* VDSR takes the bicubic-upsampled image. jaxsr upsamples inside the model
  (MATLAB imresize as a matmul); PyTorch upsamples with F.interpolate
  (bicubic) inside the timed region too, so both time the same work.

Both run in one process, PyTorch in channels_last with
torch.set_num_threads(--threads), after warm-up; the timed samples
alternate (jaxsr then torch, torch then jaxsr, ...) so that load from other
jobs hits both alike. Values are medians; ratio = jaxsr / PyTorch throughput
(> 1: jaxsr faster). Also reported: XLA's FLOP count of the compiled step
(cost_analysis), the GFLOP/s it implies for each implementation (same FLOPs),
jaxsr's compile time (lower + compile), XLA's static buffer sizes
(memory_analysis: arguments + outputs + temporaries), and for both the peak
RSS growth of the process during one call, sampled every 2 ms from
/proc/self/statm after malloc_trim (allocator caches and
sub-2-ms peaks are not seen).

XLA_FLAGS must be set before jax is imported: use the environment, or
--xla_flags (appended to it by this script before importing jax).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import pathlib
import platform
import statistics
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / 'benchmarks')]
RESULTS = REPO / 'benchmarks' / 'results' / 'throughput.json'
MODELS = ('vdsr', 'eeds', 'edsr_baseline', 'espcn')


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--models', default=','.join(MODELS))
  p.add_argument('--scale', type=int, default=2)
  p.add_argument('--batch', type=int, default=16)
  p.add_argument('--patch', type=int, default=20, help='LR patch side')
  p.add_argument('--infer_sizes', default='256,1024',
                 help='LR sides for inference; "256" skips 1024, "" skips inference')
  p.add_argument('--modes', default='train,infer')
  p.add_argument('--repeats', type=int, default=5, help='timed samples per implementation')
  p.add_argument('--train_steps', type=int, default=2, help='steps in one train sample')
  p.add_argument('--warmup', type=int, default=2)
  p.add_argument('--threads', type=int, default=os.cpu_count())
  p.add_argument('--xla_flags', default='', help='appended to $XLA_FLAGS')
  p.add_argument('--convs', default='auto',
                 help='jaxsr convolution implementations to time (jaxsr.cpu.conv.'
                      'IMPLEMENTATIONS, or flax); the first is "jaxsr" in the ratio rows')
  p.add_argument('--check', action='store_true',
                 help='copy jaxsr weights into torch and compare outputs first')
  p.add_argument('--json_out', default=str(RESULTS))
  return p.parse_args(argv)


class PeakRSS:
  """Peak growth of this process's RSS during a `with` block (2 ms samples)."""
  page = os.sysconf('SC_PAGE_SIZE')

  def _rss(self):
    with open('/proc/self/statm') as f:
      return int(f.read().split()[1]) * self.page

  def __enter__(self):
    try:
      ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError:
      pass
    self.base = self.peak = self._rss()
    self._stop = threading.Event()

    def sample():
      while not self._stop.wait(0.002):
        self.peak = max(self.peak, self._rss())
    self._thread = threading.Thread(target=sample, daemon=True)
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self.peak = max(self.peak, self._rss())
    self.mb = (self.peak - self.base) / 2**20


def conv_factories(impl):
  """The models' conv factories for --convs entry `impl`."""
  from jaxsr.models import backend
  if impl == 'flax':
    return backend.XLA_FACTORIES
  from jaxsr.cpu import conv
  return conv.factories(impl)


def jax_setup(name, mode, args, size=None, impl='auto'):
  """(run(): one call, blocking; FLOPs of one call; compile s; XLA MB; n params; variables)."""
  import functools
  import jax
  import jax.numpy as jnp
  import ml_collections
  import numpy as np
  from jaxsr import models, optim, train

  model, xla_model = (models.get_model(name, scale=args.scale, channels=1, **conv_factories(c))
                      for c in (impl, 'flax'))
  rng = np.random.default_rng(0)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1), jnp.float32))
  n_params = sum(x.size for x in jax.tree.leaves(variables))
  if mode == 'train':
    cfg = ml_collections.ConfigDict({'name': 'sgd', 'lr': 1e-4, 'momentum': 0.9,
                                     'schedule': {'name': 'constant'}})
    tx, schedule = optim.build_optimizer(cfg, 1000)
    state = train.TrainState(step=jnp.zeros([], jnp.int32), params=variables,
                             opt_state=tx.init(variables))
    hr_side = args.patch * args.scale
    batch = {'lr': jnp.asarray(rng.random((args.batch, args.patch, args.patch, 1), np.float32)),
             'hr': jnp.asarray(rng.random((args.batch, hr_side, hr_side, 1), np.float32))}
    make_step = lambda model: jax.jit(functools.partial(
        train.train_step, model=model, tx=tx, schedule=schedule, loss_kind='mse'),
        donate_argnums=0)
    call_args = (state, batch)
    holder = [state]

    def run():
      for _ in range(args.train_steps):
        holder[0], metrics = compiled(holder[0], batch)
      jax.block_until_ready(metrics['train/loss'])
  else:
    x = jnp.asarray(rng.random((1, size, size, 1), np.float32))
    make_step = lambda model: jax.jit(model.apply)
    call_args = (variables, x)

    def run():
      compiled(variables, x).block_until_ready()
  t0 = time.perf_counter()
  compiled = make_step(model).lower(*call_args).compile()
  compile_s = time.perf_counter() - t0
  cost = make_step(xla_model).lower(*call_args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  mem = compiled.memory_analysis()
  xla_mb = (mem.argument_size_in_bytes + mem.output_size_in_bytes
            + mem.temp_size_in_bytes - mem.alias_size_in_bytes) / 2**20
  return run, float(cost.get('flops', float('nan'))), compile_s, xla_mb, n_params, variables


def torch_setup(name, mode, args, size=None):
  import torch
  import torch.nn.functional as F
  import torch_models

  torch.manual_seed(0)
  net = torch_models.build(name, args.scale, 1).to(memory_format=torch.channels_last)
  cl = dict(memory_format=torch.channels_last)
  up = ((lambda x: F.interpolate(x, scale_factor=args.scale, mode='bicubic',
                                 align_corners=False).contiguous(**cl))
        if name == 'vdsr' else (lambda x: x))
  if mode == 'train':
    hr_side = args.patch * args.scale
    lr = torch.rand(args.batch, 1, args.patch, args.patch).contiguous(**cl)
    hr = torch.rand(args.batch, 1, hr_side, hr_side).contiguous(**cl)
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
    net.train()

    def run():
      for _ in range(args.train_steps):
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(net(up(lr)), hr)
        loss.backward()
        opt.step()
  else:
    x = torch.rand(1, 1, size, size).contiguous(**cl)
    net.eval()

    def run():
      with torch.inference_mode():
        net(up(x))
  return run, torch_models.num_params(net), net


def check_same_function(name, variables, net, args):
  """Max |jaxsr - torch| on the same weights and a random 24×20 input."""
  import jax.numpy as jnp
  import numpy as np
  import torch
  import torch.nn.functional as F
  import torch_models
  from jaxsr import models
  from jaxsr.models import sizing

  model = models.get_model(name, scale=args.scale, channels=1)
  x = np.random.default_rng(1).random((2, 24, 20, 1), np.float32)
  want = np.asarray(model.apply(variables, jnp.asarray(x)))
  torch_models.load_flax_params(net, variables)
  if name == 'vdsr':  # the same upsampled input (torch's bicubic is not MATLAB's)
    x = np.asarray(sizing.bicubic_upsample(jnp.asarray(x), args.scale, None))
  with torch.inference_mode():
    got = net(torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
  err = float(np.abs(got - want).max())
  if not err < 1e-4:
    raise AssertionError(f'{name}: torch and jaxsr differ by {err}')
  return err


def jaxsr_label(impl, first):
  return 'jaxsr' if first else f'jaxsr[{impl}]'


def measure(name, mode, args, size=None):
  """Rows for one model and mode: each jaxsr variant, torch, and the ratios."""
  convs = [c for c in args.convs.split(',') if c]
  runs, setup = {}, {}
  for k, impl in enumerate(convs):
    label = jaxsr_label(impl, k == 0)
    run, flops, compile_s, xla_mb, jparams, variables = jax_setup(name, mode, args, size, impl)
    runs[label], setup[label] = run, dict(compile_s=compile_s, xla_buffers_mb=xla_mb,
                                          convs=impl)
  trun, tparams, net = torch_setup(name, mode, args, size)
  runs['torch'] = trun
  assert jparams == tparams, f'{name}: {jparams} parameters in jaxsr, {tparams} in torch'
  if args.check and mode == 'train':
    print(f'  check {name}: max |jaxsr - torch| = {check_same_function(name, variables, net, args):.2e}')
  order = list(runs)
  for _ in range(args.warmup):
    for impl in order:
      runs[impl]()
  times = {impl: [] for impl in order}
  for r in range(args.repeats):
    for impl in (order if r % 2 == 0 else order[::-1]):
      time.sleep(0.2)  # let the other library's idle worker threads go to sleep
      t0 = time.perf_counter()
      runs[impl]()
      times[impl].append(time.perf_counter() - t0)
  peak = {}
  for impl in order:
    with PeakRSS() as p:
      runs[impl]()
    peak[impl] = p.mb
  if mode == 'train':
    work, unit, calls = args.batch * args.train_steps, 'patches/s', args.train_steps
    where = f'batch {args.batch}, LR {args.patch}², HR {args.patch * args.scale}²'
  else:
    work, unit, calls = (size * args.scale) ** 2 / 1e6, 'MP/s', 1
    where = f'LR {size}², SR {size * args.scale}²'
  rows, value = [], {}
  for impl in order:
    med = statistics.median(times[impl])
    value[impl] = work / med
    rows.append({'model': name, 'mode': mode, 'impl': impl, 'value': value[impl],
                 'unit': unit, 'input': where, 'params': jparams,
                 'seconds_per_call': med / calls, 'samples_s': times[impl],
                 'gflop_per_call': flops / 1e9,
                 'gflop_per_s': flops * calls / med / 1e9,
                 'peak_rss_growth_mb': peak[impl], **setup.get(impl, {})})
  for label in order[:-1]:
    row = {'model': name, 'mode': mode, 'input': where,
           'ratio': value[label] / value['torch']}
    if label != 'jaxsr':
      row['impl'] = label
    rows.append(row)
  return rows


def table(rows):
  head = ('| model | mode | input | jaxsr convs | jaxsr | PyTorch | ratio | GFLOP/call '
          '| GFLOP/s jaxsr / torch | compile s | XLA buffers MB '
          '| peak RSS growth MB jaxsr / torch |')
  lines = [head, '|' + '---|' * head.count(' | ') + '---|']
  by = {}
  for r in rows:
    key = r.get('impl', 'jaxsr') if 'ratio' in r else r['impl']
    by.setdefault((r['model'], r['mode'], r['input']), {})[
        ('ratio', key) if 'ratio' in r else key] = r
  for (model, mode, where), d in by.items():
    t = d['torch']
    for label in [k for k in d if isinstance(k, str) and k != 'torch']:
      j = d[label]
      lines.append(
          f"| {model} | {mode} | {where} | {j['convs']} | {j['value']:.4g} {j['unit']} | "
          f"{t['value']:.4g} {t['unit']} | {d[('ratio', label)]['ratio']:.2f} | "
          f"{j['gflop_per_call']:.3g} | {j['gflop_per_s']:.1f} / {t['gflop_per_s']:.1f} | "
          f"{j['compile_s']:.2f} | {j['xla_buffers_mb']:.0f} | "
          f"{j['peak_rss_growth_mb']:.0f} / {t['peak_rss_growth_mb']:.0f} |")
  return '\n'.join(lines)


def ratios(rows):
  """The last measurement's ratios, e.g. '1.05 (jaxsr[chunked] 0.70)'."""
  last = [r for r in rows if 'ratio' in r and r['model'] == rows[-1]['model']
          and r['mode'] == rows[-1]['mode'] and r['input'] == rows[-1]['input']]
  main_ratio = ' '.join(f"{r['ratio']:.2f}" for r in last if 'impl' not in r)
  others = ', '.join(f"{r['impl']} {r['ratio']:.2f}" for r in last if 'impl' in r)
  return main_ratio + (f' ({others})' if others else '')


def main(argv=None):
  args = parse_args(argv)
  if args.xla_flags:
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + args.xla_flags).strip()
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  from jaxsr.models import backend
  # As jaxsr's entry points do; it holds for the whole process, PyTorch too.
  kept = backend.keep_freed_memory()
  import jax
  import torch
  from jaxsr.cpu import onednn_conv
  torch.set_num_threads(args.threads)
  print(f'jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} '
        f'threads), {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, '
        f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}, jaxsr convs {args.convs} '
        f'(oneDNN: {"available" if onednn_conv.available() else onednn_conv.unavailable_reason()}), '
        f'host_memory.keep_freed_memory: {kept}')
  sizes = [int(s) for s in args.infer_sizes.split(',') if s]
  modes = [m for m in args.modes.split(',') if m]
  rows = []
  for name in [m for m in args.models.split(',') if m]:
    if 'train' in modes:
      rows += measure(name, 'train', args)
      print(f'{name} train: ratio {ratios(rows)}', flush=True)
    for size in sizes if 'infer' in modes else []:
      rows += measure(name, 'infer', args, size)
      print(f'{name} infer {size}: ratio {ratios(rows)}', flush=True)
  print(table(rows))
  if args.json_out:
    out = pathlib.Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + '\n')
    print(f'wrote {out}')


if __name__ == '__main__':
  main()
