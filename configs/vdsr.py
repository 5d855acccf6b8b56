r"""VDSR (Kim, Lee & Lee, CVPR 2016), the paper's training setting.

  python -m jaxsr.main --config=configs/vdsr.py --workdir=workdirs/vdsr
  python -m jaxsr.main --config=configs/vdsr.py:scale=3 --workdir=workdirs/vdsr_x3
  python -m jaxsr.main --config=configs/vdsr.py:runlocal --workdir=/tmp/vdsr

Paper (section 4.1): the 291 set with flips and rotations, 41×41 patches,
batch 64, SGD momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 every
20 epochs for 80 epochs, adjustable gradient clipping to [-θ/γ, θ/γ] (θ = 0.01
here: the paper gives no value; 0.01 is the public reimplementations'), one
network trained on ×2, ×3 and ×4 together. Global-norm clipping is available
too (`--config.optim.grad_clip_norm=0.4`). Epochs become steps at run time
(jaxsr.epochs): one epoch is the 41×41 patch grid of the training set at each
scale (54,192 patches of the 291 set at ×2, ×3 and ×4; 847 steps at batch 64);
augmentations are drawn per step.

The loss is the paper's ½‖r − f(x)‖² summed over each 41×41 patch and averaged
over the batch (`train.loss_reduction='sum_per_sample'`, the Caffe
convention): its gradients are 840.5× those of the per-pixel mean, so lr 0.1
and the θ/γ bound are the paper's optimisation, not one 840× gentler.
runlocal goes back to the per-pixel mean, for which its Adam lr is tuned.
`regime=adam` trains the full-size run in that regime (Adam 1e-3 decayed by a
cosine over 20,000 steps unless --config.train.steps says otherwise, batch
16, the per-pixel mean), as the shipped weights were: at the paper's SGD 0.1
our runs collapsed or diverged (docs/results, regime_vdsr).
"""

from configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, scale=0, regime='paper', runlocal=False)
  scales = (a.scale,) if a.scale else (2, 3, 4)
  c = common.base_config('vdsr', scale=scales[0])
  c.data.scales = scales
  c.data.hr_patch_size = 41
  common.vdsr_sgd(c, epochs=80)
  c.optim.grad_clip_theta = 0.01
  c.train.loss_reduction = 'sum_per_sample'
  c.checkpoint.every = c.eval.every = 5000
  common.apply_regime(c, a.regime, steps=20_000)
  return common.runlocal(c, on_bicubic=True) if a.runlocal else c


def get_sweep():
  """One network per scale, and one for the three together (scale=0)."""
  return common.grid(scale=[2, 3, 4, 0])
