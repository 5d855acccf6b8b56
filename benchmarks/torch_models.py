"""PyTorch copies of four jaxsr models, for benchmarks/throughput.py only.

Each module mirrors the Flax module's parameter tree: attribute names follow
the Flax names (`body.conv0`, `deep.extract_residual.conv1`, ...), so
`load_flax_params` copies a Flax variable dict into the torch model and the
two can be checked to compute the same function (`throughput.py --check`).

* Conv (Flax kernel (kh, kw, in, out), 'SAME') -> nn.Conv2d(padding=k // 2),
  weight (out, in, kh, kw).
* ConvTranspose (Flax, transpose_kernel=False, explicit padding (p, p) of the
  stride-dilated input) -> nn.ConvTranspose2d(padding=k - 1 - p), weight
  (in, out, kh, kw) flipped in space (torch's transposed conv is the gradient
  of a convolution, i.e. a correlation with the flipped kernel).
* VDSR: jaxsr upsamples with MATLAB bicubic inside the model; here the model
  takes the already upsampled image (the benchmark upsamples it, see there).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from jaxsr.models import edsr as jax_edsr
from jaxsr.models import layers as jax_layers


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
  return nn.Conv2d(cin, cout, k, padding=k // 2)


class ConvChain(nn.Module):
  """jaxsr.models.layers.ConvChain: convs, activation between, last linear."""

  def __init__(self, cin, features, kernel_sizes, out_features, act):
    super().__init__()
    widths = list(features) + [out_features]
    ins = [cin] + list(features)
    for i, (a, b, k) in enumerate(zip(ins, widths, kernel_sizes)):
      self.add_module(f'conv{i}', _conv(a, b, k))
    self.n = len(widths)
    self.act = act

  def forward(self, x):
    for i in range(self.n):
      x = getattr(self, f'conv{i}')(x)
      if i < self.n - 1:
        x = self.act(x)
    return x


class ResidualUnit(nn.Module):
  def __init__(self, features, k=3, res_scale=1.0, post_activation=False):
    super().__init__()
    self.conv0 = _conv(features, features, k)
    self.conv1 = _conv(features, features, k)
    self.res_scale = res_scale
    self.post_activation = post_activation

  def forward(self, x):
    y = self.conv1(torch.relu(self.conv0(x)))
    if self.res_scale != 1.0:
      y = y * self.res_scale
    x = x + y
    return torch.relu(x) if self.post_activation else x


class VDSR(nn.Module):
  """Takes the bicubic-upsampled image (jaxsr does that inside the model)."""

  def __init__(self, channels=1, depth=20, features=64, k=3):
    super().__init__()
    self.body = ConvChain(channels, (features,) * (depth - 1), (k,) * depth,
                          channels, torch.relu)

  def forward(self, x_up):
    return x_up + self.body(x_up)


class ESPCN(nn.Module):
  def __init__(self, scale=2, channels=1, features=(64, 32), kernel_sizes=(5, 3, 3)):
    super().__init__()
    self.body = ConvChain(channels, features, kernel_sizes,
                          channels * scale * scale, torch.tanh)
    self.shuffle = nn.PixelShuffle(scale)

  def forward(self, x):
    return self.shuffle(self.body(x))


class EDSR(nn.Module):
  def __init__(self, scale=2, channels=1, num_blocks=16, features=64,
               res_scale=1.0, k=3):
    super().__init__()
    steps = {2: [2], 3: [3], 4: [2, 2]}[scale]
    mean = (jax_edsr.DIV2K_RGB_MEAN if channels == 3
            else (jax_edsr.DIV2K_Y_MEAN,) * channels)
    self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
    self.head = _conv(channels, features, k)
    for i in range(num_blocks):
      self.add_module(f'block{i}', ResidualUnit(features, k, res_scale))
    self.num_blocks = num_blocks
    self.body_end = _conv(features, features, k)
    for i, r in enumerate(steps):
      self.add_module(f'upsample{i}', _conv(features, features * r * r, k))
    self.steps = steps
    self.shuffles = nn.ModuleList([nn.PixelShuffle(r) for r in steps])
    self.tail = _conv(features, channels, k)

  def forward(self, lr):
    x = self.head(lr - self.mean)
    y = x
    for i in range(self.num_blocks):
      y = getattr(self, f'block{i}')(y)
    x = x + self.body_end(y)
    for i, shuffle in enumerate(self.shuffles):
      x = shuffle(getattr(self, f'upsample{i}')(x))
    return self.tail(x) + self.mean


class LearnedUpsampling(nn.Module):
  """Transposed conv with jaxsr's exact-×s padding (layers.transposed_conv_padding)."""

  def __init__(self, cin, cout, stride, k):
    super().__init__()
    lo, hi = jax_layers.transposed_conv_padding(k, stride)
    assert lo == hi, 'asymmetric padding not needed at x2-x4 with k = s + 12'
    self.deconv = nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k - 1 - lo)

  def forward(self, x):
    return self.deconv(x)


class MultiScaleReconstruction(nn.Module):
  def __init__(self, cin, out_features, branch=16, kernel_sizes=(1, 3, 5, 7)):
    super().__init__()
    self.shrink = _conv(cin, branch, 1)
    self.kernel_sizes = kernel_sizes
    for k in kernel_sizes:
      self.add_module(f'branch{k}x{k}', _conv(branch, branch, k))
    self.output = _conv(branch * len(kernel_sizes), out_features, 1)

  def forward(self, x):
    x = torch.relu(self.shrink(x))
    x = torch.cat([torch.relu(getattr(self, f'branch{k}x{k}')(x))
                   for k in self.kernel_sizes], dim=1)
    return self.output(x)


class DeepBranch(nn.Module):
  def __init__(self, scale, channels, k, features=64, up_features=4, units=2):
    super().__init__()
    self.extract = _conv(channels, features, 3)
    self.extract_residual = ResidualUnit(features, 3, post_activation=True)
    self.shrink = _conv(features, up_features, 1)
    self.upsample = LearnedUpsampling(up_features, up_features, scale, k)
    self.expand = _conv(up_features, features, 1)
    self.units = units
    for i in range(units):
      self.add_module(f'map{i}', ResidualUnit(features, 3, post_activation=True))
    self.reconstruct = MultiScaleReconstruction(features, channels)

  def forward(self, x):
    x = torch.relu(self.extract(x))
    x = self.extract_residual(x)
    x = torch.relu(self.shrink(x))
    x = torch.relu(self.upsample(x))
    x = torch.relu(self.expand(x))
    for i in range(self.units):
      x = getattr(self, f'map{i}')(x)
    return self.reconstruct(x)


class ShallowBranch(nn.Module):
  def __init__(self, scale, channels, k, features=(4, 8)):
    super().__init__()
    self.extract = _conv(channels, features[0], 3)
    self.upsample = LearnedUpsampling(features[0], features[1], scale, k)
    self.reconstruct = _conv(features[1], channels, 5)

  def forward(self, x):
    x = torch.relu(self.extract(x))
    x = torch.relu(self.upsample(x))
    return self.reconstruct(x)


class EEDS(nn.Module):
  def __init__(self, scale=2, channels=1):
    super().__init__()
    k = scale + 12
    self.deep = DeepBranch(scale, channels, k)
    self.shallow = ShallowBranch(scale, channels, k)

  def forward(self, lr):
    return self.deep(lr) + self.shallow(lr)


def build(name: str, scale: int = 2, channels: int = 1) -> nn.Module:
  if name == 'vdsr':
    return VDSR(channels)
  if name == 'espcn':
    return ESPCN(scale, channels)
  if name == 'edsr_baseline':
    return EDSR(scale, channels)
  if name == 'eeds':
    return EEDS(scale, channels)
  raise ValueError(f'no torch copy of {name!r}')


def load_flax_params(module: nn.Module, variables) -> None:
  """Copies a Flax variable dict into `module` (names as in the Flax tree)."""
  import jax
  flat = jax.tree_util.tree_flatten_with_path(variables['params'])[0]
  state = {}
  for path, value in flat:
    keys = [p.key for p in path]
    value = np.asarray(value)
    target = '.'.join(keys[:-1])
    sub = module.get_submodule(target)
    if keys[-1] == 'kernel':
      if isinstance(sub, nn.ConvTranspose2d):
        value = value.transpose(2, 3, 0, 1)[:, :, ::-1, ::-1]
      else:
        value = value.transpose(3, 2, 0, 1)
      state[target + '.weight'] = torch.from_numpy(value.copy())
    else:
      state[f'{target}.{keys[-1]}'] = torch.from_numpy(value.copy())
  missing, unexpected = module.load_state_dict(state, strict=False)
  missing = [m for m in missing if not m.endswith('mean')]
  if missing or unexpected:
    raise ValueError(f'parameter trees differ: missing {missing}, unexpected {unexpected}')


def num_params(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())
