r"""The decomposition model: LR = smooth (convolutional sparse coding) + residual.

  python -m jaxsr.main --config=configs/csc_decomp.py --workdir=workdirs/csc_decomp
  python -m jaxsr.main --config=configs/csc_decomp.py:runlocal --workdir=/tmp/csc

The smooth part S is bicubic-upscaled, the residual R is upscaled by a CNN on
its bicubic-upscaled version; outputs are summed. Φ and φ (the horizontal and
vertical gradient weights of the closed-form FFT solve) are model fields:
--config.model.phi_h=... Training is ours: Adam 1e-3, cosine, 291 set.
"""

from configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, scale=2, runlocal=False)
  c = common.base_config('csc_decomp', scale=a.scale)
  c.data.hr_patch_size = 41
  common.adam_cosine(c, steps=100_000)
  c.optim.grad_clip_norm = 1.0
  c.checkpoint.every = c.eval.every = 5000
  return common.runlocal(c, on_bicubic=True) if a.runlocal else c


def get_sweep():
  return common.grid(scale=[2, 3, 4])
