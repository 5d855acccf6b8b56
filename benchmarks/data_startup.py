"""Data start-up: process start to the first training batch, tfds vs folders.

  python -m jaxsr.prepare --sets=t91,bsd200 --scales=2,3,4 \
      --manual_dir=../shared/datasets --data_dir=/tmp/jaxsr_tfds
  python benchmarks/data_startup.py --folders_dir=../shared/datasets \
      --tfds_dir=/tmp/jaxsr_tfds --json_out=benchmarks/results/data_startup.json

Each row is a fresh `python` process that does what train.py does before its
first step: resolve the 291 set (t91 + bsd200), open its TrainingSource
(config.data.source), build the patch sampler and cut batch 0. The patches
are cut on the host (data.sampler=host) so that no compilation is counted;
`total_s` is from the process's spawn to batch 0 in hand, `imports_s` the
part spent importing jax, tfds and jaxsr, `open_s` opening the source,
`sampler_s` building the pool (reading or degrading every image) and
`batch_s` cutting batch 0. Configs: EEDS ×2 (LR 20² patches) and
multi-scale VDSR (HR 41², ×2/3/4), batch 64.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

CHILD = r'''
import sys, time, json
t0 = time.time()
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
from configs import common
from jaxsr import input_pipeline, train  # train: counted, as a run imports it
from jaxsr.datasets import run_sets, sources
if sys.argv[2] == 'tfds':
  import tensorflow_datasets  # counted in the imports, as a tfds run imports it
t1 = time.time()
model, data_dir, source = sys.argv[1], sys.argv[3], sys.argv[2]
c = common.base_config(model, scale=2)
if model == 'vdsr':
  c.data.scales, c.data.hr_patch_size = (2, 3, 4), 41
else:
  c.data.patch_size = 20
c.data.data_dir, c.data.source, c.data.sampler = data_dir, source, 'host'
c.train.batch_size = 64
sets = run_sets.train_sets(c)
src = sources.open_training_source(c, sets)
t2 = time.time()
sharding = NamedSharding(Mesh(np.asarray(jax.devices()[:1]), ('data',)), P('data'))
sampler = input_pipeline.training_sampler(c, src, sharding)
t3 = time.time()
batch = sampler.batch(0)
t4 = time.time()
print(json.dumps({'end': t4, 'imports_s': t1 - t0, 'open_s': t2 - t1, 'sampler_s': t3 - t2,
                  'batch_s': t4 - t3, 'record': src.record}))
'''


def run_row(model: str, source: str, data_dir: str) -> dict:
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, JAX_PLATFORMS=os.environ.get('JAX_PLATFORMS', 'cpu'))
  start = time.time()
  out = subprocess.run([sys.executable, '-c', CHILD, model, source, data_dir], cwd=repo,
                       env=env, capture_output=True, text=True, check=True)
  row = json.loads(out.stdout.strip().splitlines()[-1])
  row['total_s'] = row.pop('end') - start
  return {'model': model, 'source': source, **row}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--folders_dir', required=True, help='data root with t91/, bsd200/')
  parser.add_argument('--tfds_dir', required=True, help='where jaxsr.prepare wrote sr_pairs/')
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--json_out')
  args = parser.parse_args()
  rows = []
  print(f'{"model":6} {"source":8} {"total_s":>8} {"imports_s":>9} {"open_s":>7} '
        f'{"sampler_s":>9} {"batch_s":>8}')
  for model in ('eeds', 'vdsr'):
    for source, data_dir in (('tfds', args.tfds_dir), ('folders', args.folders_dir)):
      for _ in range(args.repeats):
        row = run_row(model, source, data_dir)
        rows.append(row)
        print(f'{model:6} {source:8} {row["total_s"]:8.2f} {row["imports_s"]:9.2f} '
              f'{row["open_s"]:7.2f} {row["sampler_s"]:9.2f} {row["batch_s"]:8.2f}',
              flush=True)
  if args.json_out:
    with open(args.json_out, 'w') as f:
      json.dump({'machine': platform.node(), 'cpus': os.cpu_count(),
                 'load_average': os.getloadavg(), 'rows': rows}, f, indent=2)
    print(f'wrote {args.json_out}')


if __name__ == '__main__':
  main()
