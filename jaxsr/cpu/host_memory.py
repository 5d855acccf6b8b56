"""Keep freed host memory for reuse, so CPU steps do not page-fault anew.

XLA:CPU allocates each execution's temporary buffers as one block and frees
it afterwards; glibc's malloc serves a block that large with a fresh mmap,
so every step touches it page by page again (the page faults and the time
they cost are in benchmarks/RESULTS.md). `keep_freed_memory()` makes glibc
serve every allocation from its main heap and keep freed memory there
(mallopt M_ARENA_MAX=1, M_MMAP_MAX=0, a 2 GB trim threshold), the way
PyTorch's or XLA's GPU allocators cache device memory. The cost: the
process's resident memory stays at its peak. Call it first thing in a
process, before jax starts its threads; the command-line entry points do,
through jaxsr.models.backend (on a CPU run only). JAXSR_KEEP_FREED_MEMORY=0
turns it off.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def keep_freed_memory() -> bool:
  """Whether glibc's allocator was set to keep freed memory (Linux only)."""
  if not sys.platform.startswith('linux') or os.environ.get('JAXSR_KEEP_FREED_MEMORY') == '0':
    return False
  try:
    mallopt = ctypes.CDLL('libc.so.6').mallopt
  except (OSError, AttributeError):  # not glibc (e.g. musl)
    return False
  settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))
  return all(mallopt(option, value) == 1 for option, value in settings)
