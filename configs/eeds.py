r"""EEDS and its ablations (Wang et al., arXiv:1607.07680): deep + shallow nets.

  python -m jaxsr.main --config=configs/eeds.py --workdir=workdirs/eeds
  python -m jaxsr.main --config=configs/eeds.py:variant=ees --workdir=workdirs/ees
  python -m jaxsr.main --config=configs/eeds.py:variant=eed,scale=3,upsampling=unpool \
      --workdir=workdirs/eed_x3_unpool
  python -m jaxsr.main --config=configs/eeds.py:runlocal --workdir=/tmp/eeds

variant: eeds (deep + shallow, outputs summed, trained jointly), eed (deep
only), ees (shallow only). upsampling: deconv (transposed convolution) or
unpool (zero-insertion then convolution).

Training, after the paper: the 291 set (T91 + BSD200) with flips and
rotations, MSE loss, "a high learning rate with gradient clipping" in the
manner of VDSR, which the paper follows. Its exact numbers are not given in
the text we have, so the defaults are ours: SGD momentum 0.9, lr 0.1 with a
÷10 step every 20 epochs for 60 epochs, global-norm clipping at 0.1, weight
decay 1e-4, batch 64, LR patches of 20×20. Change any of them with
--config.optim.* overrides. Epochs become steps at run time (jaxsr.epochs):
one epoch is the LR 20×20 patch grid of the training set (22,009 patches of
the 291 set at ×2, so 344 steps at batch 64); --config.train.steps=N
overrides the length in steps.

Regime: VDSR's, because the paper says it trains as VDSR does. So the loss
is VDSR's ½‖·‖² summed over each (40×40 HR) patch, averaged over the batch
(`train.loss_reduction='sum_per_sample'`), the convention in which "lr 0.1"
is a high learning rate; on the per-pixel mean its gradients, and so its
steps, would be 800× smaller. The global-norm clip of 0.1 then bounds every
step (lr × 0.1 before momentum) as VDSR's clipping does. runlocal is Adam
1e-3 on the per-pixel mean instead (`configs/common.runlocal`), the regime of
the committed short comparisons. `regime=adam` is that regime at full size
(all 291 images, batch 16, 20,000 steps unless --config.train.steps says
otherwise), which the shipped weights train with.
"""

from configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, variant='eeds', scale=2, upsampling='deconv',
                       regime='paper', runlocal=False)
  c = common.base_config(a.variant, scale=a.scale)
  c.model.upsampling = a.upsampling
  c.data.patch_size = 20
  common.vdsr_sgd(c, epochs=60)
  c.optim.grad_clip_norm = 0.1
  c.train.loss_reduction = 'sum_per_sample'
  c.checkpoint.every = c.eval.every = 2000
  common.apply_regime(c, a.regime, steps=20_000)
  return common.runlocal(c, on_bicubic=False) if a.runlocal else c


def get_sweep():
  """The paper's ablations: EED vs EES vs EEDS, deconv vs unpooling, scales."""
  return (common.grid(variant=['eed', 'ees', 'eeds'], scale=[2, 3, 4])
          + common.grid(variant=['eeds'], upsampling=['unpool']))
