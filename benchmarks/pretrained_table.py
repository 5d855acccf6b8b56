r"""The README's table of shipped pretrained models, from their stored scores.

  python benchmarks/pretrained_table.py

Reads `jaxsr/pretrained/*.json` (scores stored by `python -m jaxsr.pretrained
export --scores=...`, measured by `jaxsr.evaluate`) and bicubic's from
benchmarks/results/bicubic.json; rewrites the `pretrained` section of README.md.
"""

from __future__ import annotations

import json

import readme_section
from jaxsr import evaluators
from jaxsr import pretrained

SETS = ('set5', 'set14', 'b100')


def markdown() -> str:
  bicubic = json.loads((readme_section.REPO_ROOT / 'benchmarks' / 'results' /
                        'bicubic.json').read_text())
  lines = ['| model | scale | ' + ' | '.join(f'{s} PSNR / SSIM (bicubic)' for s in SETS) + ' |',
           '|---|---|' + '---|' * len(SETS)]
  for name, scale in pretrained.available():
    meta = pretrained._read_meta(None, name, scale)
    key = evaluators.scale_key(scale)
    cells = []
    for s in SETS:
      got = meta['scores'].get(s, {}).get(key)
      ref = bicubic.get(s, {}).get(key)
      cell = f"{got['psnr_y']:.2f} / {got['ssim_y']:.4f}" if got else 'n/a'
      if ref:
        cell += f" ({ref['psnr_y']:.2f} / {ref['ssim_y']:.4f})"
      cells.append(cell)
    lines.append(f'| `{name}` | ×{scale:g} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


if __name__ == '__main__':
  print(markdown())
  print('wrote', readme_section.replace_section('pretrained', markdown()))
