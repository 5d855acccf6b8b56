"""python tests/save_fails_on_one_process.py PROCESS CALL WHERE [jaxsr.main flags]:
jaxsr.main, where process PROCESS fails its part of the CALL-th checkpoint
save (its array writes raise, as on a full disk) and the others' succeed.
WHERE: 'main' (while the save is started, on the main thread) or
'background' (in Orbax's background writes of an asynchronous save)."""

import runpy
import sys

import jax
from orbax.checkpoint._src.futures import future
from orbax.checkpoint._src.serialization import jax_array_handlers

process, failing_call, where = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
del sys.argv[1:4]
serialize = jax_array_handlers.ArrayHandler.serialize
calls = 0


async def _full_disk():
  raise OSError(28, 'No space left on device')


async def failing_serialize(self, *args, **kwargs):
  global calls
  if jax.process_index() == process:
    calls += 1
    if calls == failing_call and where == 'main':
      await _full_disk()
    if calls == failing_call:
      return [*await serialize(self, *args, **kwargs), future.CommitFuture(_full_disk())]
  return await serialize(self, *args, **kwargs)


jax_array_handlers.ArrayHandler.serialize = failing_serialize
runpy.run_module('jaxsr.main', run_name='__main__', alter_sys=True)
