r"""ESPCN (Shi et al., CVPR 2016): 5-3-3 with 64/32 filters and pixel shuffle.

  python -m jaxsr.main --config=configs/espcn.py:scale=3 --workdir=workdirs/espcn_x3
  python -m jaxsr.main --config=configs/espcn.py:runlocal --workdir=/tmp/espcn

Paper: 17r×17r HR sub-images (LR 17×17), MSE, lr 0.01 decayed to 1e-4 when
the loss plateaus; 91 images (ImageNet for the final models). We use Adam at
1e-3 with cosine decay on the 291 set, batch 64.
"""

from configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, scale=3, runlocal=False)
  c = common.base_config('espcn', scale=a.scale)
  c.data.patch_size = 17
  common.adam_cosine(c, steps=100_000)
  c.checkpoint.every = c.eval.every = 5000
  return common.runlocal(c, on_bicubic=False) if a.runlocal else c


def get_sweep():
  return common.grid(scale=[2, 3, 4])
