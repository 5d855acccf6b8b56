r"""Bicubic interpolation: no parameters, so "training" only evaluates.

  python -m jaxsr.main --config=configs/bicubic.py:scale=3 --workdir=workdirs/bicubic_x3
  python -m jaxsr.evaluate --model=bicubic --sets=set5,set14,b100 --scales=2,3,4
"""

from configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, scale=2, runlocal=False)
  c = common.base_config('bicubic', scale=a.scale)
  if a.runlocal:
    common.runlocal(c, on_bicubic=True)
  c.train.steps = 0
  return c


def get_sweep():
  return common.grid(scale=[2, 3, 4])
