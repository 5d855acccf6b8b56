r"""SRCNN (Dong et al., ECCV 2014 / TPAMI 2016), 9-1-5 or 9-5-5.

  python -m jaxsr.main --config=configs/srcnn.py --workdir=workdirs/srcnn
  python -m jaxsr.main --config=configs/srcnn.py:variant=955,scale=3 --workdir=workdirs/srcnn955_x3
  python -m jaxsr.main --config=configs/srcnn.py:runlocal --workdir=/tmp/srcnn

Paper: 33×33 HR sub-images of the 91 images, MSE, SGD with lr 1e-4 (1e-5 on
the last layer) for ~1.5e7 back-propagations. Plain SGD at 1e-4 needs days;
we use Adam at 1e-4 (as most reimplementations do) on the 291 set, batch 128.
"""

from jaxsr import config_base


def get_config(arg=None):
  a = config_base.parse_arg(arg, variant='915', scale=2, runlocal=False)
  name = {'915': 'srcnn', '955': 'srcnn_955'}[a.variant]
  c = config_base.base_config(name, scale=a.scale)
  c.data.hr_patch_size = 33
  c.train.batch_size = 128
  c.train.steps = 200_000
  c.optim.name = 'adam'
  c.optim.lr = 1e-4
  c.checkpoint.every = c.eval.every = 5000
  if a.runlocal:
    config_base.runlocal(c)
  return c


def get_sweep():
  return config_base.product(config_base.sweep('model.name', ['srcnn', 'srcnn_955']),
                             config_base.sweep('model.scale', [2.0, 3.0, 4.0]))
