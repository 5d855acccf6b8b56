"""jaxsr.cpu.host_memory: glibc keeps freed memory, so steps stop page-faulting;
through jaxsr.models.backend, on a CPU run only."""

import subprocess
import sys

import pytest

pytest.importorskip('jaxsr.cpu.host_memory')  # the optional fast path

# A fresh process: the setting is process-wide. 8 steps of a 64 MB block
# (above glibc's mmap threshold) then fault ~16k pages each without it.
SCRIPT = '''
import ctypes, resource, sys
if sys.argv[1] == 'backend':  # as the entry points call it
  from jaxsr.models import backend as host_memory
else:
  from jaxsr.cpu import host_memory
print(host_memory.keep_freed_memory())
libc = ctypes.CDLL('libc.so.6')
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size, faults = 64 * 2**20, []
for _ in range(8):  # as XLA: malloc, write, free (numpy would ask for huge pages)
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  block = libc.malloc(size)
  ctypes.memset(block, 1, size)
  libc.free(block)
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults[1:]))
'''


def _run(env_value, via='host_memory', platforms='cpu'):
  env = {'JAXSR_KEEP_FREED_MEMORY': env_value, 'PATH': '/usr/bin:/bin',
         'JAX_PLATFORMS': platforms}
  out = subprocess.run([sys.executable, '-c', SCRIPT, via], capture_output=True, text=True,
                       env=env, check=True).stdout.split()
  return out[0] == 'True', int(out[1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc only')
def test_freed_memory_is_reused_without_page_faults():
  kept, faults = _run('1')
  assert kept and faults < 100
  kept, faults = _run('0')  # switched off: every new block is faulted in again
  assert not kept and faults > 10000


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc only')
def test_the_entry_points_keep_freed_memory_on_a_cpu_run_only():
  kept, faults = _run('1', via='backend', platforms='cpu')
  assert kept and faults < 100
  kept, faults = _run('1', via='backend', platforms='cuda')  # GPU hosts: allocator untouched
  assert not kept and faults > 10000
