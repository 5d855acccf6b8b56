"""oneDNN convolutions for XLA:CPU (the library PyTorch's CPU convolutions use).

XLA:CPU (jaxlib 0.10) runs convolutions with YNNPACK, which on the 2-core
machines measured in benchmarks/RESULTS.md reaches about half of oneDNN's
speed on SR training shapes (16×40×40×64: one thread, 97 vs 213 GFLOP/s).
This module compiles `onednn_conv.cc` (three XLA FFI handlers: forward
with bias and optional ReLU, kernel + bias gradient, input gradient) against
the oneDNN of the `onednn-cpu-gomp` wheels (a dependency on Linux x86-64)
with the system's C++ compiler, once per source/library/jax version, into
the user's cache, and registers them with JAX. `conv2d` is a stride-1
NHWC/HWIO float32 convolution + bias (+ ReLU) whose forward pass and
gradients run there.

`available()` is False, with the reason in `unavailable_reason()`, when
oneDNN is not installed, no compiler is found, the build fails, or
JAXSR_ONEDNN=0 is set; jaxsr.models.conv, which decides where oneDNN is
used, then keeps XLA's convolutions.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.metadata
import logging
import os
import pathlib
import shutil
import subprocess
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

SOURCE = pathlib.Path(__file__).with_name('onednn_conv.cc')
_TARGETS = {'fwd': 'JaxsrConvForward', 'bwd_weights': 'JaxsrConvBackwardWeights',
            'bwd_data': 'JaxsrConvBackwardData'}
_state: dict = {}


def _distribution_file(dist: str, name: str) -> pathlib.Path | None:
  try:
    files = importlib.metadata.files(dist) or []
  except importlib.metadata.PackageNotFoundError:
    return None
  for f in files:
    if f.name == name:
      return pathlib.Path(f.locate()).resolve()
  return None


def _onednn_paths():
  """(include dir, lib dir) of the installed oneDNN, or a reason string."""
  lib = _distribution_file('onednn-cpu-gomp', 'libdnnl.so')
  header = _distribution_file('onednn-devel-cpu-gomp', 'dnnl.hpp')
  if lib is None or header is None:
    return 'oneDNN is not installed (pip install -e ".[onednn]")'
  include = header.parent.parent if header.parent.name == 'dnnl' else header.parent
  return include, lib.parent


def cache_dir() -> pathlib.Path:
  root = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return pathlib.Path(root) / 'jaxsr' / 'kernels'


def _build(include: pathlib.Path, libdir: pathlib.Path) -> pathlib.Path:
  """The compiled library, built once per source, oneDNN and jaxlib version."""
  cxx = os.environ.get('CXX') or shutil.which('g++') or shutil.which('c++')
  if not cxx:
    raise RuntimeError('no C++ compiler (g++ or $CXX) to build the oneDNN kernels')
  tag = hashlib.sha256(b'\0'.join([
      SOURCE.read_bytes(), str(libdir).encode(), jax.__version__.encode(),
      importlib.metadata.version('onednn-cpu-gomp').encode()])).hexdigest()[:16]
  out = cache_dir() / f'onednn_conv_{tag}.so'
  if out.exists():
    return out
  out.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
    part = pathlib.Path(tmp) / out.name
    cmd = [cxx, '-O2', '-std=c++17', '-shared', '-fPIC', '-fopenmp',
           f'-I{jax.ffi.include_dir()}', f'-I{include}', str(SOURCE), '-o', str(part),
           f'-L{libdir}', '-ldnnl', f'-Wl,-rpath,{libdir}']
    logging.info('building the oneDNN convolution kernels: %s', ' '.join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
      raise RuntimeError(f'building {SOURCE.name} failed:\n{done.stderr[-2000:]}')
    part.replace(out)  # whole file or nothing, also with concurrent builds
  return out


def _load() -> None:
  if _state:
    return
  _state['reason'] = None
  if os.environ.get('JAXSR_ONEDNN', '1') == '0':
    _state['reason'] = 'JAXSR_ONEDNN=0'
    return
  paths = _onednn_paths()
  if isinstance(paths, str):
    _state['reason'] = paths
    return
  try:
    lib = ctypes.CDLL(str(_build(*paths)))
    for key, symbol in _TARGETS.items():
      jax.ffi.register_ffi_target(f'jaxsr_onednn_{key}',
                                  jax.ffi.pycapsule(getattr(lib, symbol)), platform='cpu')
  except (OSError, RuntimeError, AttributeError) as e:
    _state['reason'] = str(e)
    logging.warning('jaxsr: oneDNN convolutions unavailable, using XLA\'s: %s', e)
    return
  _state['lib'] = lib


def available() -> bool:
  """Whether the oneDNN kernels are built and registered (builds them once)."""
  _load()
  return 'lib' in _state


def unavailable_reason() -> str | None:
  _load()
  return _state['reason']


def _call(kind, out_shapes, pads, relu, *operands):
  (pt, pb), (pl, pr) = pads
  out = [jax.ShapeDtypeStruct(s, jnp.float32) for s in out_shapes]
  return jax.ffi.ffi_call(f'jaxsr_onednn_{kind}', out, vmap_method='sequential')(
      *operands, pad_top=np.int64(pt), pad_bottom=np.int64(pb),
      pad_left=np.int64(pl), pad_right=np.int64(pr), relu=np.int64(relu))


def output_shape(x_shape, w_shape, pads):
  (pt, pb), (pl, pr) = pads
  return (x_shape[0], x_shape[1] + pt + pb - w_shape[0] + 1,
          x_shape[2] + pl + pr - w_shape[1] + 1, w_shape[3])


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def conv2d(x, w, b, pads, relu=False):
  """Stride-1 conv + bias (+ ReLU): x NHWC, w HWIO, b (K,), float32;
  pads ((top, bottom), (left, right))."""
  return _call('fwd', [output_shape(x.shape, w.shape, pads)], pads, relu, x, w, b)[0]


def _fwd(x, w, b, pads, relu):
  y = conv2d(x, w, b, pads, relu)
  return y, (x, w, y if relu else None)


def _bwd(pads, relu, residuals, dy):
  x, w, y = residuals
  dw, db, masked = _call('bwd_weights', [w.shape, w.shape[-1:], dy.shape if relu else (1,)],
                         pads, relu, x, dy if y is None else y, dy)
  # A separate call, so that XLA drops it where dx is unused (a first layer).
  dx, = _call('bwd_data', [x.shape], pads, relu, masked if relu else dy, w, dw)
  return dx, dw, db


conv2d.defvjp(_fwd, _bwd)
