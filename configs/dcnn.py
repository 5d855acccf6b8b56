r"""DCNN vs DSCNN: the deep/shallow ablation on the bicubic-upsampled input.

  python -m jaxsr.main --config=configs/dcnn.py --workdir=workdirs/dcnn
  python -m jaxsr.main --config=configs/dcnn.py:variant=dscnn --workdir=workdirs/dscnn
  python -m jaxsr.main --config=configs/dcnn.py:variant=dcnn_plain --workdir=workdirs/dcnn_plain
  python -m jaxsr.main --config=configs/dcnn.py:runlocal --workdir=/tmp/dcnn

DCNN is a deep CNN on the bicubic input; DSCNN adds a 3-layer SRCNN-like
shallow network and sums the outputs: the second ablation of the seed (does
a shallow branch help a deep net on the bicubic input?). variant: dcnn and
dscnn use EED's residual deep net (so they differ from eed/eeds only in the
upsampling); dcnn_plain and dscnn_plain a plain 8-layer 3×3 net of SRCNN
9-5-5's window and size, the seed's "deep CNN comparable to SRCNN"
(jaxsr.models.dcnn).
Training as configs/eeds.py (high lr, SGD, global-norm clipping, the loss
summed per patch as VDSR's), 41×41 bicubic-space patches, 60 epochs (one:
18,075 patches of the 291 set at ×2, 283 steps at batch 64; jaxsr.epochs).
"""

from configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, variant='dcnn', scale=2, runlocal=False)
  c = common.base_config(a.variant, scale=a.scale)
  c.data.hr_patch_size = 41
  common.vdsr_sgd(c, epochs=60)
  c.optim.grad_clip_norm = 0.1
  c.train.loss_reduction = 'sum_per_sample'
  c.checkpoint.every = c.eval.every = 2000
  return common.runlocal(c, on_bicubic=True) if a.runlocal else c


def get_sweep():
  return (common.grid(variant=['dcnn', 'dscnn'], scale=[2, 3, 4])
          + common.grid(variant=['dcnn_plain', 'dscnn_plain'], scale=[2, 3, 4]))
