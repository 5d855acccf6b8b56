"""The one door to the optional CPU fast path (jaxsr.cpu).

Models are plain Flax: they build their convolutions from `conv` and
`conv_transpose` factory fields (nn.Conv and nn.ConvTranspose by default),
as Flax's ResNet example does. `get_model` fills those fields from
`conv_factories(dtype)`: jaxsr.cpu's on the CPU backend when it can be
imported and the model computes in float32, Flax's own elsewhere (GPU, TPU,
bfloat16) or without it. The factories compute the
same function with the same parameters, so checkpoints do not depend on the
choice, and as module fields they are part of what jit traces.

`keep_freed_memory()` is the entry points' other use of jaxsr.cpu: the
malloc setting, on a CPU run only.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# Flax's own layers: XLA's convolutions on every backend.
XLA_FACTORIES: dict[str, Any] = {'conv': nn.Conv, 'conv_transpose': nn.ConvTranspose}


def _fast_path():
  try:
    import jaxsr.cpu
  except ImportError:
    return None
  return jaxsr.cpu


def conv_factories(dtype: Any = jnp.float32) -> dict[str, Any]:
  """{'conv': ..., 'conv_transpose': ...} for models computing in `dtype` on
  the default backend. jaxsr.cpu's convolutions are float32 oneDNN: other
  dtypes (bfloat16, for accelerators) get Flax's own on the CPU too."""
  fast_path = (_fast_path() if jax.default_backend() == 'cpu'
               and jnp.dtype(dtype) == jnp.float32 else None)
  if fast_path is None:
    return dict(XLA_FACTORIES)
  return fast_path.conv_factories(jax.device_count())


def _runs_on_cpu() -> bool:
  """Whether jax will pick the CPU backend, decided without starting it
  (multi-host runs must call jax.distributed.initialize first)."""
  platforms = jax.config.jax_platforms
  if platforms:
    return platforms.split(',')[0].strip() == 'cpu'
  # GPU plugins install the `jax_plugins` namespace package; TPUs need libtpu.
  return not (importlib.util.find_spec('jax_plugins') or importlib.util.find_spec('libtpu')
              or importlib.metadata.entry_points(group='jax_plugins')
              or os.environ.get('PJRT_NAMES_AND_LIBRARY_PATHS'))


def keep_freed_memory() -> bool:
  """jaxsr.cpu.host_memory.keep_freed_memory() on a CPU run (call it first
  thing in a process); False, doing nothing, elsewhere or without jaxsr.cpu."""
  if not _runs_on_cpu() or _fast_path() is None:
    return False
  from jaxsr.cpu import host_memory
  return host_memory.keep_freed_memory()
