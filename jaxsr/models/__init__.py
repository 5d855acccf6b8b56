"""The model zoo: every SR model by name, with one construction contract.

  model = get_model('vdsr', scale=3, channels=1)
  params = model.init(key, lr)             # lr: (B, h, w, C) in [0, 1]
  sr = model.apply(params, lr)             # (B, round(3h), round(3w), C)
  sr = model.apply(params, lr, output_size=(H, W))  # bicubic-input models

Models on the bicubic input (scales 'any') upsample inside the model with the
MATLAB-compatible `imresize_jax`, so data, loss and evaluation are the same
for every model. channels=1 is the papers' Y-channel setting, 3 is RGB. The
contract's fields and input checks are `sizing.SRModel`'s; get_model fills
the convolution factories from `backend` (the CPU fast path's door).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsr.models import backend
from jaxsr.models.bicubic import Bicubic
from jaxsr.models.csc_decomp import CSCDecomp
from jaxsr.models.dcnn import DCNN
from jaxsr.models.edsr import EDSR
from jaxsr.models.eeds import EEDS
from jaxsr.models.espcn import ESPCN
from jaxsr.models.fsrcnn import FSRCNN
from jaxsr.models.srcnn import SRCNN
from jaxsr.models.vdsr import VDSR

VALID_CHANNELS = (1, 3)
_FIXED = (2, 3, 4)

_SRCNN = ('Dong et al., Image Super-Resolution Using Deep Convolutional '
          'Networks, ECCV 2014 / TPAMI 2016')
_EDSR = ('Lim et al., Enhanced Deep Residual Networks for Single Image '
         'Super-Resolution, CVPRW 2017')
_EEDS = ('Wang et al., End-to-End Image Super-Resolution via Deep and Shallow '
         'Convolutional Networks, 2017 (arXiv:1607.07680)')

_ABLATION = ('this project: EEDS (Wang et al. 2017) ablation on the bicubic '
             'input')


class _Entry(NamedTuple):
  module: type[nn.Module]
  defaults: dict[str, Any]
  scales: str | tuple[int, ...]  # 'any' (bicubic input) or integer factors
  paper: str


_REGISTRY: dict[str, _Entry] = {
    'bicubic': _Entry(
        Bicubic, {}, 'any',
        'Keys, Cubic Convolution Interpolation for Digital Image Processing, '
        'IEEE TASSP 1981 (MATLAB imresize)'),
    'srcnn': _Entry(SRCNN, {'kernel_sizes': (9, 1, 5)}, 'any', _SRCNN),
    'srcnn_955': _Entry(SRCNN, {'kernel_sizes': (9, 5, 5)}, 'any', _SRCNN),
    'fsrcnn': _Entry(
        FSRCNN, {}, _FIXED,
        'Dong, Loy & Tang, Accelerating the Super-Resolution Convolutional '
        'Neural Network, ECCV 2016'),
    'espcn': _Entry(
        ESPCN, {}, _FIXED,
        'Shi et al., Real-Time Single Image and Video Super-Resolution Using '
        'an Efficient Sub-Pixel Convolutional Neural Network, CVPR 2016'),
    'vdsr': _Entry(
        VDSR, {}, 'any',
        'Kim, Lee & Lee, Accurate Image Super-Resolution Using Very Deep '
        'Convolutional Networks, CVPR 2016'),
    'edsr_baseline': _Entry(
        EDSR, {'num_blocks': 16, 'features': 64, 'res_scale': 1.0}, _FIXED,
        _EDSR),
    'edsr': _Entry(
        EDSR, {'num_blocks': 32, 'features': 256, 'res_scale': 0.1}, _FIXED,
        _EDSR),
    'csc_decomp': _Entry(
        CSCDecomp, {}, 'any',
        'decomposition of Gu et al., Convolutional Sparse Coding for Image '
        'Super-resolution, ICCV 2015; residual by SRCNN'),
    'eed': _Entry(EEDS, {'use_deep': True, 'use_shallow': False}, _FIXED,
                  _EEDS),
    'ees': _Entry(EEDS, {'use_deep': False, 'use_shallow': True}, _FIXED,
                  _EEDS),
    'eeds': _Entry(EEDS, {'use_deep': True, 'use_shallow': True}, _FIXED,
                   _EEDS),
    'dcnn': _Entry(
        DCNN, {'with_shallow': False}, 'any',
        _ABLATION),
    'dscnn': _Entry(
        DCNN, {'with_shallow': True}, 'any',
        _ABLATION),
    'dcnn_plain': _Entry(
        DCNN, {'with_shallow': False, 'deep': 'plain', 'features': 32}, 'any',
        _ABLATION),
    'dscnn_plain': _Entry(
        DCNN, {'with_shallow': True, 'deep': 'plain', 'features': 32}, 'any',
        _ABLATION),
}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  name: str
  paper: str
  scales: str | tuple[int, ...]
  works_on_bicubic: bool


def list_models() -> list[str]:
  """Registered model names, in registry order."""
  return list(_REGISTRY)


def _entry(name: str) -> _Entry:
  if name not in _REGISTRY:
    raise ValueError(f'unknown model {name!r}; valid names: {list_models()}')
  return _REGISTRY[name]


def model_info(name: str) -> ModelInfo:
  entry = _entry(name)
  return ModelInfo(name=name, paper=entry.paper, scales=entry.scales,
                   works_on_bicubic=entry.scales == 'any')


def config_fields(name: str) -> list[str]:
  """The fields settable through get_model's **overrides."""
  module = _entry(name).module
  return [f.name for f in dataclasses.fields(module)
          if f.init and f.name not in ('parent', 'name', 'scale', 'channels',
                                       *backend.XLA_FACTORIES)]


def _check_scale(name: str, scales: str | tuple[int, ...], scale: Any) -> float:
  """The scale as the float every model holds, or a ValueError."""
  is_real = (isinstance(scale, numbers.Real) and not isinstance(scale, bool)
             and math.isfinite(scale) and scale > 0)
  if scales == 'any' and not is_real:
    raise ValueError(f'{name}: scale must be a positive real number '
                     f'(valid scales: any), got {scale!r}')
  if scales != 'any' and not (is_real and scale in scales):
    raise ValueError(f'{name}: unsupported scale {scale!r}; valid scales: '
                     f'{list(scales)}')
  return float(scale)


def get_model(name: str, *, scale: float, channels: int = 1,
              **overrides: Any) -> nn.Module:
  """Builds registered model `name` for ×scale on `channels` channels.

  overrides set module fields (see `config_fields(name)`) on top of the
  registry's defaults, e.g. get_model('eeds', scale=2, upsampling='unpool'),
  and may replace the convolution factories (`conv`, `conv_transpose`:
  `backend.conv_factories()` by default; `**backend.XLA_FACTORIES` for
  Flax's own). Raises a ValueError listing what is valid for an unknown
  name, an unsupported scale, channels other than 1 or 3, or an unknown field.
  """
  entry = _entry(name)
  checked_scale = _check_scale(name, entry.scales, scale)
  if channels not in VALID_CHANNELS or isinstance(channels, bool):
    raise ValueError(f'{name}: channels must be 1 (Y) or 3 (RGB), got '
                     f'{channels!r}')
  valid = config_fields(name)
  unknown = sorted(set(overrides) - set(valid) - set(backend.XLA_FACTORIES))
  if unknown:
    raise ValueError(f'{name}: unknown override field(s) {unknown}; valid '
                     f'fields: {valid}')
  # Kept as given ('bfloat16' from a config): Flax takes names and types alike.
  dtype = compute_dtype(overrides.get('dtype', jnp.float32), name)
  kwargs = {**backend.conv_factories(dtype), **entry.defaults, **overrides}
  return entry.module(scale=checked_scale, channels=int(channels), **kwargs)


# The `dtype` field: what the layers compute in. Parameters stay float32
# (Flax's param_dtype), so optimizer states and checkpoints do too.
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(value: Any, name: str = 'model') -> Any:
  """'float32' or 'bfloat16' (or either jnp type) as the jnp type, else a ValueError.

  With `jax.enable_x64`, also 'float64': the numerical checks' reference.
  """
  valid = dict(COMPUTE_DTYPES, **({'float64': jnp.float64} if jax.config.jax_enable_x64 else {}))
  for key, dtype in valid.items():
    if value is dtype or value == key or (not isinstance(value, str)
                                          and _same_dtype(value, dtype)):
      return dtype
  raise ValueError(f'{name}: dtype {value!r}; valid: {list(valid)}')


def _same_dtype(value: Any, dtype: Any) -> bool:
  try:
    return jnp.dtype(value) == jnp.dtype(dtype)
  except TypeError:
    return False


def config_kwargs(model_config) -> dict[str, Any]:
  """The fields a config's `model` group sets (a ConfigDict or its JSON dict).

  Fields are keys of the group, None keeping the model's default; workdirs
  written before that hold them under `kwargs`.
  """
  group = model_config.to_dict() if hasattr(model_config, 'to_dict') else dict(model_config)
  fields = {k: v for k, v in group.items()
            if k not in ('name', 'scale', 'channels', 'kwargs') and v is not None}
  # JSON gives lists where the fields hold tuples; Flax modules must hash.
  return {k: tuple(v) if isinstance(v, list) else v
          for k, v in {**fields, **(group.get('kwargs') or {})}.items()}


def from_config(model_config) -> nn.Module:
  """The model of a config's `model` group (a ConfigDict or its JSON dict)."""
  return get_model(model_config['name'], scale=model_config['scale'],
                   channels=model_config['channels'], **config_kwargs(model_config))


def at_scale(name: str, model: nn.Module, scale: float) -> nn.Module:
  """`model` for ×scale: only models on the bicubic input share weights across scales."""
  scale = _check_scale(name, 'any', scale)
  if scale == model.scale:
    return model
  if not model_info(name).works_on_bicubic:
    raise ValueError(f'{name} was trained for x{model.scale:g} (learned upsampling) '
                     f'and cannot upscale x{scale:g}; use x{model.scale:g}')
  return model.clone(scale=scale)


def abstract_variables(model: nn.Module):
  """The variables' shapes and dtypes (jax.ShapeDtypeStruct), nothing computed."""
  import jax
  import jax.numpy as jnp
  return jax.eval_shape(model.init, jax.random.key(0),
                        jnp.zeros((1, 8, 8, model.channels), jnp.float32))


__all__ = ['COMPUTE_DTYPES', 'ModelInfo', 'abstract_variables', 'at_scale', 'compute_dtype',
           'config_fields', 'config_kwargs', 'from_config', 'get_model', 'list_models', 'model_info', 'VALID_CHANNELS']
