r"""XLA compilations, time and PSNR of benchmark evaluation, with and without
shape bucketing (`BenchmarkEvaluator(max_shapes=...)`, `evaluators.plan_buckets`).

  JAXSR_DATA_DIR=/work/shared/datasets python benchmarks/compile_counts.py \
      --model=espcn --scales=2,3,4 --sets=set5,set14,b100 --max_shapes=legacy,0,3
  ... --workdir=workdirs/eeds_x2 --sets=set5,set14 --max_shapes=0,3   # trained weights

For each set, scale and max_shapes (0: every LR shape as it is), scores the
set twice with a new `model_predict` each time, as training does at every
evaluation, and reports the backend compilations (jax.monitoring's
'/jax/core/compile/backend_compile_duration' events) and their seconds in
each pass, the wall time of the second pass (no compilation: the model's
compute on the padded images), the padded LR pixels as a fraction of the
set's, and PSNR(Y). 'legacy' is model_predict as it was before issue 7 (a
new jit of a closure over the weights for every predict function, so every
evaluation compiles every shape again). Random weights unless --workdir:
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
  """evaluators.model_predict before issue 7 (commit f8df699)."""
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
  p.add_argument('--max_shapes', default='legacy,0,3')
  args = p.parse_args(argv)
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jaxsr import evaluators, models, runs

  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, secs, **kw: compiles.append(secs)
      if event == '/jax/core/compile/backend_compile_duration' else None)
  if args.workdir:
    name, trained, params, _ = runs.load_trained(args.workdir, None, None)
    scales = [float(trained.scale)]
  else:
    name, scales = args.model, [float(s) for s in args.scales.split(',')]
  print(f'model {name} ({"trained: " + args.workdir if args.workdir else "random weights"}), '
        f'EVAL_MAX_SHAPES={evaluators.EVAL_MAX_SHAPES}')
  print('| set | scale | images | LR shapes | max_shapes | compiles (s) 1st eval | compiles 2nd '
        'eval | 2nd eval s | padded pixels | PSNR(Y) |')
  print('|---|---|---|---|---|---|---|---|---|---|')
  for set_name in args.sets.split(','):
    for scale in scales:
      if args.workdir:
        model = trained
      else:
        model = models.get_model(name, scale=scale, channels=1)
        params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
      base = evaluators.BenchmarkEvaluator(set_name, [scale], channels=1)
      lr_shapes = [pair.lr.shape[:2] for pair in base.pairs[scale]]
      psnr = {}
      for setting in [m if m == 'legacy' else int(m) for m in args.max_shapes.split(',')]:
        ev = evaluators.BenchmarkEvaluator(set_name, [scale], channels=1,
                                           max_shapes=0 if setting == 'legacy' else setting)
        plan = ev.padded_shapes(scale)
        padded = sum(int(np.prod(plan.get(s, s))) for s in lr_shapes)
        evaluators.benchmark._jitted_apply.cache_clear()  # each setting starts cold
        passes = []
        for _ in range(2):
          n0, c0, t0 = len(compiles), sum(compiles), time.perf_counter()
          result = ev.run(legacy_predict(model, params) if setting == 'legacy' else
                          evaluators.model_predict(model, params))
          passes.append((len(compiles) - n0, sum(compiles) - c0, time.perf_counter() - t0))
        key = evaluators.scale_key(scale)
        psnr[setting] = result[key]['psnr_y']
        print(f'| {ev.name} | x{scale:g} | {result[key]["n"]} | {len(set(lr_shapes))} | '
              f'{setting} | {passes[0][0]} ({passes[0][1]:.1f}) | {passes[1][0]} | '
              f'{passes[1][2]:.1f} | {padded / sum(int(np.prod(s)) for s in lr_shapes):.3f} | '
              f'{psnr[setting]:.4f} |', flush=True)
      if 0 in psnr and len(psnr) > 1:
        print('|  |  |  |  | PSNR change vs 0: ' + ', '.join(
            f'{m}: {v - psnr[0]:+.4f} dB' for m, v in psnr.items() if m != 0) + ' ||||||')


if __name__ == '__main__':
  main()
