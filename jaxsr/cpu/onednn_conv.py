"""oneDNN convolutions for XLA:CPU (the library PyTorch's CPU convolutions use).

XLA:CPU runs convolutions with YNNPACK, which on the 2-core machines of
benchmarks/RESULTS.md reaches about half of oneDNN's speed on SR training
shapes. This module compiles `onednn_conv.cc` (three XLA FFI handlers:
forward, kernel gradient, input gradient) against the oneDNN of the
`onednn-cpu-gomp` wheels (a dependency on Linux x86-64) with the system's
C++ compiler, once per source/library/jax version, into the user's cache,
and registers them with JAX.

`conv2d` is a stride-1 NHWC/HWIO float32 convolution without bias (nn.Conv
adds it; XLA fuses the bias with the activation). It is a JAX primitive
whose derivative is a second, linear primitive (`_tangent_p`): forward-mode
autodiff evaluates that one by oneDNN forward calls, reverse mode transposes
it into the kernel gradient followed by the input gradient (one after the
other: two oneDNN thread teams at once share the cores badly; XLA drops the
input gradient where nothing needs it, a first layer). A `custom_vjp` would
be simpler but breaks `jax.jvp`.

`available()` is False, with the reason in `unavailable_reason()`, when
oneDNN is not installed, no compiler is found, the build fails, or
JAXSR_ONEDNN=0 is set; jaxsr.cpu.conv, which decides where oneDNN is used,
then keeps XLA's convolutions.
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
from jax.extend.core import Primitive
from jax.interpreters import ad
from jax.interpreters import batching
from jax.interpreters import mlir
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
    return ('oneDNN is not installed (pip install onednn-cpu-gomp==2023.2.0 '
            'onednn-devel-cpu-gomp==2023.2.0; Linux x86-64 only)')
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


def output_shape(x_shape, w_shape, pads):
  (pt, pb), (pl, pr) = pads
  return (x_shape[0], x_shape[1] + pt + pb - w_shape[0] + 1,
          x_shape[2] + pl + pr - w_shape[1] + 1, w_shape[3])


def _call(kind, out_shape, pads, *operands):
  (pt, pb), (pl, pr) = pads
  out = jax.ShapeDtypeStruct(out_shape, jnp.float32)
  return jax.ffi.ffi_call(f'jaxsr_onednn_{kind}', out, vmap_method='sequential')(
      *operands, pad_top=np.int64(pt), pad_bottom=np.int64(pb),
      pad_left=np.int64(pl), pad_right=np.int64(pr))


def _forward(x, w, pads):
  return _call('fwd', output_shape(x.shape, w.shape, pads), pads, x, w)


def _tangent(*operands, pads, has_dx, has_dw):
  """conv(dx, w) + conv(x, dw) for the tangents present: operands are
  ([dx], [dw], x, w)."""
  *tangents, x, w = operands
  tangents = iter(tangents)
  terms = ([_forward(next(tangents), w, pads)] if has_dx else []) + (
      [_forward(x, next(tangents), pads)] if has_dw else [])
  return functools.reduce(jnp.add, terms)


_conv_p = Primitive('jaxsr_onednn_conv')
_tangent_p = Primitive('jaxsr_onednn_conv_tangent')


def conv2d(x, w, pads):
  """Stride-1 conv: x NHWC, w HWIO, float32; pads ((top, bottom), (left, right))."""
  return _conv_p.bind(x, w, pads=tuple(tuple(int(p) for p in pair) for pair in pads))


def _abstract(*operands, pads, **unused):
  *_, x, w = operands
  return jax.core.ShapedArray(output_shape(x.shape, w.shape, pads), jnp.float32)


def _conv_jvp(primals, tangents, *, pads):
  x, w = primals
  present = [type(t) is not ad.Zero for t in tangents]
  y = _conv_p.bind(x, w, pads=pads)
  if not any(present):  # JAX skips the rule then; kept for clarity
    return y, jnp.zeros_like(y)
  operands = [t for t, p in zip(tangents, present) if p]
  return y, _tangent_p.bind(*operands, x, w, pads=pads, has_dx=present[0],
                            has_dw=present[1])


def _tangent_transpose(dy, *operands, pads, has_dx, has_dw):
  """The kernel gradient, then the input gradient, of the tangents present."""
  *tangents, x, w = operands
  wanted = iter(ad.is_undefined_primal(t) for t in tangents)
  want_dx, want_dw = has_dx and next(wanted), has_dw and next(wanted)
  dx = dw = None
  if type(dy) is not ad.Zero:
    if want_dw:
      dw = _call('bwd_weights', w.shape, pads, x, dy)
    if want_dx:
      after = jnp.zeros((1,), jnp.float32) if dw is None else dw
      dx = _call('bwd_data', x.shape, pads, dy, w, after)
  return ([dx] if has_dx else []) + ([dw] if has_dw else []) + [None, None]


def _batch_by_map(primitive):
  """vmap as a loop over the batch (lax.map), each step the primitive itself
  (so that the result stays differentiable)."""
  def rule(operands, dims, **params):
    mapped = [i for i, d in enumerate(dims) if d is not None]

    def one(slices):
      args = list(operands)
      for i, s in zip(mapped, slices):
        args[i] = s
      return primitive.bind(*args, **params)
    return jax.lax.map(one, [jnp.moveaxis(operands[i], dims[i], 0) for i in mapped]), 0
  return rule


for _p, _impl in ((_conv_p, lambda x, w, *, pads: _forward(x, w, pads)),
                  (_tangent_p, _tangent)):
  _p.def_impl(_impl)
  _p.def_abstract_eval(_abstract)
  mlir.register_lowering(_p, mlir.lower_fun(_impl, multiple_results=False), platform='cpu')
  batching.primitive_batchers[_p] = _batch_by_map(_p)
ad.primitive_jvps[_conv_p] = _conv_jvp
ad.primitive_transposes[_tangent_p] = _tangent_transpose
