r"""EDSR (Lim et al., CVPRW 2017): residual blocks without batch norm, RGB.

  python -m jaxsr.main --config=configs/edsr.py --workdir=workdirs/edsr_baseline_x2
  python -m jaxsr.main --config=configs/edsr.py:variant=edsr,scale=4 --workdir=workdirs/edsr_x4
  python -m jaxsr.main --config=configs/edsr.py:runlocal --workdir=/tmp/edsr

Paper: DIV2K (use --config.data.train=div2k), RGB, LR 48×48 patches, batch
16, L1 loss, Adam (0.9, 0.999) lr 1e-4 halved every 2·10^5 steps, 3·10^5
steps for the baseline. Defaults to the 291 set so it runs on the data here.
"""

from configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, variant='baseline', scale=2, runlocal=False)
  name = common.pick('variant', a.variant, {'baseline': 'edsr_baseline', 'edsr': 'edsr'})
  c = common.base_config(name, scale=a.scale, channels=3)
  c.data.patch_size = 48
  c.train.batch_size = 16
  c.train.loss = 'l1'
  c.train.steps = 300_000
  c.optim.lr = 1e-4
  c.optim.schedule.name = 'step'
  c.optim.schedule.every_steps = 200_000
  c.optim.schedule.factor = 0.5
  c.checkpoint.every = c.eval.every = 10_000
  return common.runlocal(c, on_bicubic=False, batch_size=8, patch_size=16) if a.runlocal else c


def get_sweep():
  return common.grid(variant=['baseline'], scale=[2, 3, 4])
