"""Training-data throughput: patches cut on the host vs on the device.

  python benchmarks/input_pipeline.py --data_dir=../shared/datasets \
      --json_out=benchmarks/results/input_pipeline.json

For each config (EEDS ×2, LR 20², and multi-scale VDSR, HR 41², both batch
64 on the 291 set) this loads and degrades the set once (`startup_s`), then
times each pipeline through what train.py runs: the prefetch thread, the
transfer to the devices and the wait for the batch (`patches_per_s`). The
host pipeline is the one-patch-at-a-time NumPy loop the trainer always had;
`speedup` is each row against it, in the same process. `peak_rss_mb` is the
process's peak resident memory after the row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxsr import input_pipeline  # noqa: E402

CONFIGS = {
    'eeds_x2': dict(scales=(2.0,), side=20, on_bicubic=False),
    'vdsr_multiscale': dict(scales=(2.0, 3.0, 4.0), side=41, on_bicubic=True),
}


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_pipeline(sampler, steps: int, prefetch: int) -> float:
  """Patches per second over `steps` batches, after one warm-up batch."""
  jax.block_until_ready(sampler.to_device(sampler.batch(0)))
  t0 = time.perf_counter()
  last = None
  for _, last in input_pipeline.prefetch(sampler.batch, range(1, steps + 1),
                                         sampler.to_device, depth=prefetch):
    pass
  jax.block_until_ready(last)
  return steps * sampler.global_batch_size / (time.perf_counter() - t0)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default=os.environ.get('JAXSR_DATA_DIR', ''))
  parser.add_argument('--configs', default=','.join(CONFIGS))
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--steps', type=int, default=200, help='batches per host row')
  parser.add_argument('--device_steps', type=int, default=2000)
  parser.add_argument('--max_images', type=int, default=0, help='per set; 0: all')
  parser.add_argument('--synthetic', type=int, default=0,
                      help='N random 321x481 images instead of the 291 set (no data needed)')
  parser.add_argument('--json_out', default='')
  args = parser.parse_args(argv)

  sharding = NamedSharding(Mesh(jax.devices(), ('data',)), P('data'))
  rows = []
  t0 = time.perf_counter()
  if args.synthetic:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(321, 481, 3), dtype=np.uint8)
              for _ in range(args.synthetic)]
  else:
    images = input_pipeline.load_training_images(['t91', 'bsd200'], args.data_dir or None,
                                                 args.max_images or None)
  load_s = time.perf_counter() - t0
  for name in args.configs.split(','):
    spec = CONFIGS[name]
    patch_sizes = {s: spec['side'] for s in spec['scales']}
    t0 = time.perf_counter()
    pools = input_pipeline.degrade_all(images, spec['scales'], 1, patch_sizes,
                                       spec['on_bicubic'])
    degrade_s = time.perf_counter() - t0
    reference = None
    for pipeline in ('host', 'device'):
      t0 = time.perf_counter()
      sampler = input_pipeline.PatchSampler(
          pools, global_batch_size=args.batch_size, patch_sizes=patch_sizes, seed=0,
          sharding=sharding, on_device=pipeline == 'device')
      build_s = time.perf_counter() - t0
      steps = args.steps if pipeline == 'host' else args.device_steps
      rate = time_pipeline(sampler, steps, prefetch=2)
      reference = reference or rate
      rows.append({'config': name, 'pipeline': pipeline, 'patches_per_s': round(rate),
                   'speedup': round(rate / reference, 2),
                   'startup_s': round(load_s + degrade_s + build_s, 2),
                   'load_s': round(load_s, 2), 'degrade_s': round(degrade_s, 2),
                   'pool_mb': round(input_pipeline.device_pool_bytes(pools) / 2**20),
                   'peak_rss_mb': round(peak_rss_mb())})
      print(' '.join(f'{k}={v}' for k, v in rows[-1].items()), flush=True)
      del sampler

  print(f'\n| config | pipeline | patches/s | × host | start-up s | peak RSS MB |')
  print('|---|---|---|---|---|---|')
  for r in rows:
    print(f"| {r['config']} | {r['pipeline']} | {r['patches_per_s']:,} | {r['speedup']} | "
          f"{r['startup_s']} | {r['peak_rss_mb']} |")
  if args.json_out:
    record = {'machine': platform.processor() or platform.machine(),
              'data': f'synthetic {args.synthetic}' if args.synthetic else '291 set',
              'cpus': os.cpu_count(), 'devices': [str(d) for d in jax.devices()],
              'images': len(images), 'batch_size': args.batch_size, 'rows': rows}
    with open(args.json_out + '.tmp', 'w') as f:
      json.dump(record, f, indent=2)
    os.replace(args.json_out + '.tmp', args.json_out)
  return 0


if __name__ == '__main__':
  sys.exit(main())
