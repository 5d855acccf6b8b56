"""Regenerates the README's model-zoo table: parameters and GFLOPs per model.

  python benchmarks/model_zoo_table.py

For every registered model (channels=1, ×2, one 256×256 LR input) it counts
parameters from `jax.eval_shape` and FLOPs from XLA's cost analysis of the
compiled forward pass (nothing is run: a multiply-add counts as 2 FLOPs, the
bicubic upsampling inside a model included), the model built with Flax's own
layers (XLA's convolutions: a custom call has no FLOP count). Prints a Markdown table, writes
benchmarks/results/model_zoo.json and replaces README.md's section between
`<!-- model-zoo:start -->` and `<!-- model-zoo:end -->` (docs/model_zoo.md
when the README has no such markers).
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import readme_section  # noqa: E402
from jaxsr import models  # noqa: E402
from jaxsr.models import backend  # noqa: E402

SCALE = 2
LR_SIZE = 256


def total_flops(cost: Any) -> float:
  """The 'flops' of cost_analysis(), a dict (or, in older jax, a list)."""
  if isinstance(cost, dict):
    cost = [cost]
  return float(sum(c.get('flops', 0.0) for c in cost or []))


def measure(name: str) -> dict[str, Any]:
  model = models.get_model(name, scale=SCALE, channels=1, **backend.XLA_FACTORIES)
  lr = jax.ShapeDtypeStruct((1, LR_SIZE, LR_SIZE, 1), jnp.float32)
  params = jax.eval_shape(model.init, jax.random.key(0), lr)
  num_params = sum(int(np.prod(p.shape))
                   for p in jax.tree_util.tree_leaves(params))
  compiled = jax.jit(model.apply).lower(params, lr).compile()
  info = models.model_info(name)
  return {
      'name': name,
      'params': num_params,
      'gflops': total_flops(compiled.cost_analysis()) / 1e9,
      'scales': info.scales if info.scales == 'any' else list(info.scales),
      'works_on_bicubic': info.works_on_bicubic,
      'paper': info.paper,
  }


def markdown(rows: list[dict[str, Any]]) -> str:
  lines = [
      f'| Model | Parameters | GFLOPs ({LR_SIZE}×{LR_SIZE} LR, ×{SCALE}) '
      '| Scales | Paper |',
      '| --- | ---: | ---: | --- | --- |',
  ]
  for row in rows:
    scales = ('any (bicubic input)' if row['scales'] == 'any'
              else ', '.join(f'×{s}' for s in row['scales']))
    lines.append(f"| `{row['name']}` | {row['params']:,} | "
                 f"{row['gflops']:.2f} | {scales} | {row['paper']} |")
  return '\n'.join(lines)


def section(table: str) -> str:
  return (f'{table}\n\nY channel (channels=1); FLOPs from XLA\'s cost analysis '
          f'of the compiled forward pass on {jax.default_backend().upper()} '
          '(a multiply-add is 2 FLOPs). Regenerate with '
          '`python benchmarks/model_zoo_table.py`.')


def main() -> None:
  rows = []
  for name in models.list_models():
    rows.append(measure(name))
    print(f"measured {name}: {rows[-1]['params']:,} parameters, "
          f"{rows[-1]['gflops']:.2f} GFLOPs", file=sys.stderr, flush=True)
  table = markdown(rows)
  print(table)
  results = REPO_ROOT / 'benchmarks' / 'results' / 'model_zoo.json'
  results.parent.mkdir(parents=True, exist_ok=True)
  results.write_text(json.dumps({
      'scale': SCALE, 'lr_size': [LR_SIZE, LR_SIZE], 'channels': 1,
      'backend': jax.default_backend(), 'jax_version': jax.__version__,
      'models': rows}, indent=2) + '\n')
  print(f'wrote {results} and {readme_section.replace_section("model-zoo", section(table))}',
        file=sys.stderr)


if __name__ == '__main__':
  main()
