r"""SRCNN (Dong et al., ECCV 2014 / TPAMI 2016), 9-1-5 or 9-5-5.

  python -m jaxsr.main --config=configs/srcnn.py --workdir=workdirs/srcnn
  python -m jaxsr.main --config=configs/srcnn.py:variant=955,scale=3 --workdir=workdirs/srcnn955_x3
  python -m jaxsr.main --config=configs/srcnn.py:runlocal --workdir=/tmp/srcnn

Paper: 33×33 HR sub-images of the 91 images, MSE, SGD with lr 1e-4 (1e-5 on
the last layer) for ~1.5e7 back-propagations. Plain SGD at 1e-4 needs days;
we use Adam at 1e-4 (as most reimplementations do) on the 291 set, batch 128.
"""

from configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, variant='915', scale=2, runlocal=False)
  name = common.pick('variant', a.variant, {'915': 'srcnn', '955': 'srcnn_955'})
  c = common.base_config(name, scale=a.scale)
  c.data.hr_patch_size = 33
  c.train.batch_size = 128
  c.train.steps = 200_000
  c.optim.name = 'adam'
  c.optim.lr = 1e-4
  c.checkpoint.every = c.eval.every = 5000
  return common.runlocal(c, on_bicubic=True) if a.runlocal else c


def get_sweep():
  return common.grid(variant=['915', '955'], scale=[2, 3, 4])
