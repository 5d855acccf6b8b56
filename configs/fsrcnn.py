r"""FSRCNN (Dong, Loy & Tang, ECCV 2016): d=56, s=12, m=4, 9×9 deconvolution.

  python -m jaxsr.main --config=configs/fsrcnn.py:scale=3 --workdir=workdirs/fsrcnn_x3
  python -m jaxsr.main --config=configs/fsrcnn.py:runlocal --workdir=/tmp/fsrcnn

Paper: LR sub-images of 10/7/6 pixels for ×2/×3/×4 (HR 19/19/21 after the
deconvolution's cropping; we keep SAME padding, so HR = s·LR), MSE, SGD
lr 1e-3 (1e-4 on the deconvolution), 91 images then General-100 fine-tuning.
We use Adam at 1e-3 on the 291 set, batch 128. With SAME padding such small
patches train poorly here (x3 at LR 11: Set5 31.3 dB after 10,000 steps, every
output pixel within reach of the zero padding); the shipped weights use LR 24
at batch 32 (launch/train_pretrained.sh fsrcnn).
"""

from configs import common

LR_PATCH = {2: 10, 3: 7, 4: 6}


def get_config(arg=None):
  a = common.parse_arg(arg, scale=2, runlocal=False)
  c = common.base_config('fsrcnn', scale=a.scale)
  c.data.patch_size = common.pick('scale', a.scale, LR_PATCH)
  c.train.batch_size = 128
  common.adam_cosine(c, steps=200_000)
  c.checkpoint.every = c.eval.every = 5000
  return common.runlocal(c, on_bicubic=False) if a.runlocal else c


def get_sweep():
  return common.grid(scale=[2, 3, 4])
