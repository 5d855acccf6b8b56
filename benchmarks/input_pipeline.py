"""Training-data throughput and memory: the old host loop vs the new pipelines.

  python benchmarks/input_pipeline.py --data_dir=../shared/datasets \
      --json_out=benchmarks/results/input_pipeline.json

Rows, each in its own process so that `peak_rss_mb` (the process's peak
resident memory) is the row's own:

* the 291 set (t91 + bsd200, Y channel) for EEDS ×2 (LR 20²) and multi-scale
  VDSR (HR 41², ×2/3/4 mixed in a batch), batch 64: `old`, the one-patch-at-a-
  time NumPy loop over the whole set's degraded images (the trainer's until
  issue 14), then the new `host` (the pool in host memory, one NumPy gather
  per batch) and `device` (the pool in accelerator memory, one jitted gather)
  pipelines, whole set resident;
* a DIV2K-sized synthetic set (2040×~1356 PNGs, generated once into
  --div2k_dir) streamed through windows of --div2k_window images, for
  --div2k_counts images: resident memory should not grow with the count.

`startup_s`: from opening the source to the first batch ready (the set's
decoding and degradation, and the gather's compilation). `patches_per_s`:
after it, through what train.py runs (the prefetch thread, the transfer to
the devices and the wait for the last batch); for the streamed rows it
includes waiting for windows still loading (`window_load_s`: the mean time
to load one, on its thread). `speedup`: against the `old`
row of the same config in the same run. With --repeats=N the 291-set rows
run N times, interleaved (old, host, device, old, ...), so that a change in
the machine's load hits every pipeline alike; the summary gives each row's
median rate and the median of its per-repeat speedups.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIGS = {
    'eeds_x2': dict(scales=(2.0,), side=20, on_bicubic=False),
    'vdsr_multiscale': dict(scales=(2.0, 3.0, 4.0), side=41, on_bicubic=True),
}


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_div2k_like(folder: str, count: int) -> None:
  """`count` random-ish 2040-wide PNGs (blocks of noise), made once."""
  from PIL import Image
  os.makedirs(folder, exist_ok=True)
  for k in range(count):
    path = os.path.join(folder, f'{k:04d}.png')
    if os.path.exists(path):
      continue
    rng = np.random.default_rng(k)
    h, w = int(rng.integers(1300, 1400)), 2040
    small = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    img = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)[:h, :w]
    Image.fromarray(img).save(path + '.tmp.png', compress_level=1)
    os.replace(path + '.tmp.png', path)


class OldLoop:
  """The pre-issue-14 pipeline: every image degraded up front into a list,
  and each patch cut, flipped and stacked by a Python loop."""

  def __init__(self, pools, side, batch_size, seed=0):
    from jaxsr import input_pipeline
    self.input_pipeline = input_pipeline
    self.scales = sorted(pools)
    self.entries = [img for s in self.scales for img in pools[s]]
    self.counts = np.array([len(pools[s]) for s in self.scales])
    self.first = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
    self.heights = np.array([img.lr.shape[0] for img in self.entries])
    self.widths = np.array([img.lr.shape[1] for img in self.entries])
    self.side, self.hr_side = side, side * self.entries[0].step
    self.global_batch_size, self.seed = batch_size, seed

  def batch(self, step):
    from jaxsr import patch_pools
    rng = np.random.default_rng([self.seed, step])
    n = self.global_batch_size
    which = rng.integers(len(self.scales), size=n)
    u = rng.random((n, 3))
    entry = self.first[which] + (u[:, 0] * self.counts[which]).astype(np.int64)
    top = (u[:, 1] * (self.heights[entry] - self.side + 1)).astype(np.int64)
    left = (u[:, 2] * (self.widths[entry] - self.side + 1)).astype(np.int64)
    flip = rng.integers(8, size=n)
    lr_batch, hr_batch = [], []
    for b in range(n):
      img = self.entries[entry[b]]
      i, j, st = top[b], left[b], img.step
      lr = img.lr[i:i + self.side, j:j + self.side]
      hr = img.hr[st * i:st * i + self.hr_side, st * j:st * j + self.hr_side]
      lr_batch.append(patch_pools.dihedral(lr, flip[b]))
      hr_batch.append(patch_pools.dihedral(hr, flip[b]))
    return {'lr': np.ascontiguousarray(np.stack(lr_batch)),
            'hr': np.ascontiguousarray(np.stack(hr_batch))}


def run_row(spec: dict) -> dict:
  """One row, in this process."""
  import jax
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  from jaxsr import input_pipeline
  from jaxsr.datasets import training_source
  sharding = NamedSharding(Mesh(jax.devices(), ('data',)), P('data'))
  config = CONFIGS[spec['config']]
  sides = {s: config['side'] for s in config['scales']}
  t0 = time.perf_counter()
  source = training_source.FolderSource(
      spec['sets'], spec['data_dir'] or None, channels=1, on_bicubic=config['on_bicubic'],
      max_images=spec.get('max_images') or None)
  to_device = input_pipeline.HostCutter(sharding, (0, 0)).to_device
  if spec['pipeline'] == 'old':
    pools = input_pipeline.load_pools(source, config['scales'], sides, config['on_bicubic'])
    sampler = OldLoop(pools, config['side'], spec['batch_size'])
    resident = sum(e.lr.nbytes for p in pools.values() for e in p) + sum(
        {id(e.hr): e.hr.nbytes for p in pools.values() for e in p}.values())
  else:
    sampler = input_pipeline.PatchSampler(
        source, scales=config['scales'], on_bicubic=config['on_bicubic'], patch_sizes=sides,
        global_batch_size=spec['batch_size'], seed=0, window_images=spec.get('window', 0),
        window_steps=spec.get('window_steps', 1000), sharding=sharding,
        on_device=spec['pipeline'] == 'device')
    to_device = sampler.to_device
    load, load_s = sampler._load, []

    def timed_load(layout):
      t = time.perf_counter()
      pool = load(layout)
      load_s.append(time.perf_counter() - t)
      return pool
    sampler._load = timed_load
  jax.block_until_ready(to_device(sampler.batch(0)))
  startup_s = time.perf_counter() - t0
  if spec['pipeline'] != 'old':
    resident = sampler.resident_bytes
  steps = spec['steps']
  t0 = time.perf_counter()
  last = None
  for _, last in input_pipeline.prefetch(sampler.batch, range(1, steps + 1), to_device,
                                         depth=spec['prefetch']):
    pass
  jax.block_until_ready(last)
  rate = steps * spec['batch_size'] / (time.perf_counter() - t0)
  if spec['pipeline'] != 'old':
    resident = max(resident, sampler.resident_bytes)
  return {'config': spec['config'], 'pipeline': spec['pipeline'], 'data': spec['data'],
          'repeat': spec.get('repeat', 0),
          'images': len(source), 'window_images': spec.get('window', 0) or len(source),
          'patches_per_s': round(rate), 'startup_s': round(startup_s, 2),
          'resident_mb': round(resident / 2**20), 'peak_rss_mb': round(peak_rss_mb()),
          'steps': steps,
          'window_load_s': round(float(np.mean(load_s)), 2) if spec['pipeline'] != 'old'
                           and load_s else None}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default=os.environ.get('JAXSR_DATA_DIR', ''))
  parser.add_argument('--configs', default=','.join(CONFIGS))
  parser.add_argument('--pipelines', default='old,host,device')
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--old_steps', type=int, default=300)
  parser.add_argument('--steps', type=int, default=3000, help='batches of a new-pipeline row')
  parser.add_argument('--prefetch', type=int, default=2)
  parser.add_argument('--repeats', type=int, default=1, help='runs of each 291-set row, interleaved')
  parser.add_argument('--div2k_dir', default='/tmp/jaxsr_div2k_synthetic')
  parser.add_argument('--div2k_counts', default='200,400,800', help='empty: no DIV2K rows')
  parser.add_argument('--div2k_configs', default='eeds_x2,vdsr_multiscale')
  parser.add_argument('--div2k_window', type=int, default=8, help='images per window')
  parser.add_argument('--div2k_window_steps', type=int, default=100)
  parser.add_argument('--div2k_windows', type=int, default=3, help='windows each row crosses')
  parser.add_argument('--row', default='', help=argparse.SUPPRESS)
  parser.add_argument('--json_out', default='')
  args = parser.parse_args(argv)
  if args.row:
    print(json.dumps(run_row(json.loads(args.row))), flush=True)
    return 0

  specs = []
  for repeat in range(args.repeats):
    for name in args.configs.split(','):
      for pipeline in args.pipelines.split(','):
        specs.append(dict(config=name, pipeline=pipeline, data='291 set', sets=['t91', 'bsd200'],
                          data_dir=args.data_dir, batch_size=args.batch_size,
                          prefetch=args.prefetch, repeat=repeat,
                          steps=args.old_steps if pipeline == 'old' else args.steps))
  counts = [int(n) for n in args.div2k_counts.split(',') if n]
  if counts:
    make_div2k_like(args.div2k_dir, max(counts))
  for name in args.div2k_configs.split(',') if counts else ():
    for n in counts:
      specs.append(dict(config=name, pipeline='device', data='DIV2K-sized synthetic',
                        sets=[args.div2k_dir], data_dir='', max_images=n,
                        window=args.div2k_window, window_steps=args.div2k_window_steps,
                        batch_size=args.batch_size, prefetch=args.prefetch,
                        steps=args.div2k_windows * args.div2k_window_steps - 1))
  rows = []
  for spec in specs:
    out = subprocess.run([sys.executable, __file__, '--row', json.dumps(spec)],
                         capture_output=True, text=True)
    if out.returncode:
      sys.stderr.write(out.stderr[-3000:])
      return out.returncode
    row = json.loads(out.stdout.strip().splitlines()[-1])
    old = next((r for r in rows if r['config'] == row['config'] and r['pipeline'] == 'old'
                and r['data'] == row['data'] and r['repeat'] == row['repeat']), None)
    row['speedup'] = round(row['patches_per_s'] / old['patches_per_s'], 2) if old else None
    rows.append(row)
    print(' '.join(f'{k}={v}' for k, v in row.items()), flush=True)

  print('\n| data | config | pipeline | images (window) | patches/s | × old | start-up s '
        '| resident MB | peak RSS MB |')
  print('|---|---|---|---|---|---|---|---|---|')
  for r in rows:
    print(f"| {r['data']} | {r['config']} | {r['pipeline']} | {r['images']} "
          f"({r['window_images']}) | {r['patches_per_s']:,} | {r['speedup'] or ''} | "
          f"{r['startup_s']} | {r['resident_mb']} | {r['peak_rss_mb']} |")
  summary = summarise(rows) if args.repeats > 1 else []
  if summary:
    print(f'\nMedians of {args.repeats} interleaved repeats:\n')
    print('| data | config | pipeline | patches/s (median) | × old (median) | × old per repeat |')
    print('|---|---|---|---|---|---|')
    for r in summary:
      print(f"| {r['data']} | {r['config']} | {r['pipeline']} | {r['patches_per_s']:,} | "
            f"{r['speedup'] or ''} | {', '.join(str(x) for x in r['speedups'])} |")
  if args.json_out:
    import jax
    record = {'machine': platform.processor() or platform.machine(),
              'cpu_model': _cpu_model(), 'cpus': os.cpu_count(),
              'devices': [str(d) for d in jax.devices()], 'batch_size': args.batch_size,
              'repeats': args.repeats, 'rows': rows, 'summary': summary}
    with open(args.json_out + '.tmp', 'w') as f:
      json.dump(record, f, indent=2)
    os.replace(args.json_out + '.tmp', args.json_out)
  return 0


def summarise(rows: list[dict]) -> list[dict]:
  """One row per (data, config, pipeline) over its repeats: the median rate,
  the per-repeat speedups and their median."""
  out = {}
  for r in rows:
    out.setdefault((r['data'], r['config'], r['pipeline']), []).append(r)
  return [{'data': d, 'config': c, 'pipeline': p,
           'patches_per_s': round(float(np.median([r['patches_per_s'] for r in rs]))),
           'speedups': [r['speedup'] for r in rs if r['speedup'] is not None],
           'speedup': (round(float(np.median([r['speedup'] for r in rs])), 2)
                       if all(r['speedup'] is not None for r in rs) else None)}
          for (d, c, p), rs in out.items()]


def _cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    return ''


if __name__ == '__main__':
  sys.exit(main())
