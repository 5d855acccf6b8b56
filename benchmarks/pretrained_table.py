r"""The README's table of shipped pretrained models, next to their papers' figures.

  python benchmarks/pretrained_table.py

Reads `jaxsr/pretrained/*.json` (scores stored by `python -m jaxsr.pretrained
export --scores=...`, measured by `jaxsr.evaluate`, whole images) and
rewrites the `pretrained` section of README.md: per model and scale, PSNR /
SSIM (Y) on Set5, Set14 and B100, the published PSNR and our gap to it.

Published PSNR (Y, shaved border, the same protocol): Set5 for SRCNN 9-5-5,
FSRCNN and ESPCN from their papers (SRCNN TPAMI 2016; FSRCNN ECCV 2016,
Table 4; ESPCN CVPR 2016, ImageNet-trained); Set14 and B100 for SRCNN and
VDSR from VDSR's Table 3 (CVPR 2016). A figure a paper does not give is
'-' (ESPCN reports no x2; FSRCNN and ESPCN report BSD200/BSD300, not B100).
"""

from __future__ import annotations

import readme_section
from jaxsr import evaluators
from jaxsr import pretrained

SETS = ('set5', 'set14', 'b100')

# (name, scale) -> published PSNR per set.
PAPER = {
    ('srcnn_955', 2): {'set5': 36.66, 'set14': 32.42, 'b100': 31.36},
    ('srcnn_955', 3): {'set5': 32.75, 'set14': 29.28, 'b100': 28.41},
    ('srcnn_955', 4): {'set5': 30.48, 'set14': 27.49, 'b100': 26.90},
    ('fsrcnn', 2): {'set5': 37.00},
    ('fsrcnn', 3): {'set5': 33.16},
    ('fsrcnn', 4): {'set5': 30.72},
    ('espcn', 3): {'set5': 33.00},
    ('espcn', 4): {'set5': 30.90},
    ('vdsr', 2): {'set5': 37.53, 'set14': 33.03, 'b100': 31.90},
    ('vdsr', 3): {'set5': 33.66, 'set14': 29.77, 'b100': 28.82},
    ('vdsr', 4): {'set5': 31.35, 'set14': 28.01, 'b100': 27.29},
}


def _cell(got: dict | None, paper: float | None) -> str:
  ours = f"{got['psnr_y']:.2f} / {got['ssim_y']:.4f}" if got else 'n/a'
  if paper is None:
    return f'{ours} | -'
  gap = f"{got['psnr_y'] - paper:+.2f}" if got else '-'
  return f'{ours} | {paper:.2f} ({gap})'


def markdown() -> str:
  header = ' | '.join(f'{s} PSNR / SSIM | paper (gap)' for s in SETS)
  lines = [f'| model | scale | {header} |', '|---|---|' + '---|---|' * len(SETS)]
  for name, scale in pretrained.available():
    meta = pretrained.read_meta(name, scale)
    key = evaluators.scale_key(scale)
    paper = PAPER.get((name, scale), {})
    cells = [_cell(meta['scores'].get(s, {}).get(key), paper.get(s)) for s in SETS]
    lines.append(f'| `{name}` | ×{scale:g} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


if __name__ == '__main__':
  print(markdown())
  print('wrote', readme_section.replace_section('pretrained', markdown()))
