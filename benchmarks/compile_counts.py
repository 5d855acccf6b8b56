r"""XLA compilations, time and PSNR of benchmark evaluation, with and without
shape bucketing (`evaluation.model_predict(bucket=...)`).

  JAXSR_DATA_DIR=/work/shared/datasets python benchmarks/compile_counts.py \
      --model=espcn --scales=2,3,4 --sets=set5,set14,b100 --buckets=legacy,0,128
  ... --workdir=workdirs/eeds_x2 --sets=set5,set14 --buckets=0,128   # trained weights

For each set, scale and bucket (0: every LR shape as it is), scores the set
twice with a new `model_predict` each time, as training does at every
evaluation, and reports the backend compilations (jax.monitoring's
'/jax/core/compile/backend_compile_duration' events) and their seconds in
each pass, the wall time of the second pass (no compilation: the model's
compute on the padded images) and PSNR(Y). Bucket 'legacy' is model_predict
as it was before issue 7 (a new jit of a closure over the weights for every
predict function, so every evaluation compiles every shape again). Random
weights unless --workdir:
compilations and time do not depend on them; PSNR differences do.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def legacy_predict(model, params):
  """evaluation.model_predict before issue 7 (commit f8df699)."""
  import functools
  import jax
  import numpy as np

  @functools.partial(jax.jit, static_argnums=1)
  def apply(lr, output_size):
    return model.apply(params, lr, output_size=output_size)

  def predict(lr, output_size):
    return np.asarray(apply(lr, tuple(int(v) for v in output_size)))
  return predict


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--model', default='espcn')
  p.add_argument('--workdir', default=None, help='trained run (overrides --model/--scales)')
  p.add_argument('--scales', default='2,3,4')
  p.add_argument('--sets', default='set5,set14,b100')
  p.add_argument('--buckets', default='legacy,0,128')
  args = p.parse_args(argv)
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  import jax
  import jax.numpy as jnp
  from jaxsr import evaluate, evaluation, models

  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, secs, **kw: compiles.append(secs)
      if event == '/jax/core/compile/backend_compile_duration' else None)
  if args.workdir:
    name, trained, params, _ = evaluate.load_trained(args.workdir, None, None)
    scales = [float(trained.scale)]
  else:
    name, scales = args.model, [float(s) for s in args.scales.split(',')]
  print(f'model {name} ({"trained: " + args.workdir if args.workdir else "random weights"}), '
        f'EVAL_BUCKET={evaluation.EVAL_BUCKET}')
  print('| set | scale | images | LR shapes | bucket | compiles (s) 1st eval | compiles 2nd '
        'eval | 2nd eval s | PSNR(Y) |')
  print('|---|---|---|---|---|---|---|---|---|')
  for set_name in args.sets.split(','):
    for scale in scales:
      if args.workdir:
        model = trained
      else:
        model = models.get_model(name, scale=scale, channels=1)
        params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
      ev = evaluation.BenchmarkEvaluator(set_name, [scale], channels=1)
      shapes = {pair.lr.shape[:2] for pair in ev.pairs[scale]}
      psnr = {}
      for bucket in [b if b == 'legacy' else int(b) for b in args.buckets.split(',')]:
        evaluation._jitted_apply.cache_clear()  # each bucket setting starts cold
        passes = []
        for _ in range(2):
          n0, c0, t0 = len(compiles), sum(compiles), time.perf_counter()
          result = ev.run(legacy_predict(model, params) if bucket == 'legacy' else
                          evaluation.model_predict(model, params, bucket=bucket))
          passes.append((len(compiles) - n0, sum(compiles) - c0, time.perf_counter() - t0))
        key = evaluation.scale_key(scale)
        psnr[bucket] = result[key]['psnr_y']
        print(f'| {ev.name} | x{scale:g} | {result[key]["n"]} | {len(shapes)} | {bucket} | '
              f'{passes[0][0]} ({passes[0][1]:.1f}) | {passes[1][0]} | {passes[1][2]:.1f} | '
              f'{psnr[bucket]:.4f} |', flush=True)
      if 0 in psnr and len(psnr) > 1:
        print('|  |  |  |  | PSNR change vs bucket 0: ' + ', '.join(
            f'{b}: {v - psnr[0]:+.4f} dB' for b, v in psnr.items() if b != 0) + ' |||||')


if __name__ == '__main__':
  main()
