r"""Bicubic interpolation: no parameters, so "training" only evaluates.

  python -m jaxsr.main --config=configs/bicubic.py:scale=3 --workdir=workdirs/bicubic_x3
  python -m jaxsr.evaluate --model=bicubic --sets=set5,set14,b100 --scales=2,3,4
"""

from jaxsr import config_base


def get_config(arg=None):
  a = config_base.parse_arg(arg, scale=2, runlocal=False)
  c = config_base.base_config('bicubic', scale=a.scale)
  c.train.steps = 0
  if a.runlocal:
    config_base.runlocal(c)
    c.train.steps = 0
  return c


def get_sweep():
  return config_base.sweep('model.scale', [2.0, 3.0, 4.0])
