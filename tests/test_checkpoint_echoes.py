"""A failed async save is reported once (CheckpointError), not echoed by asyncio at exit."""

import logging
import sys

from jaxsr import checkpointing  # noqa: F401  (installs the filters)


def _never_retrieved(error: BaseException) -> logging.LogRecord:
  try:
    raise error
  except type(error):
    exc_info = sys.exc_info()
  return logging.LogRecord('asyncio', logging.ERROR, '/usr/lib/python3/asyncio/base_events.py',
                           1, 'Future exception was never retrieved', None, exc_info)


def test_asyncio_echo_of_a_failed_orbax_write_is_dropped_at_its_logger():
  """At interpreter exit absl's handler is gone and asyncio logs through logging's
  last-resort handler, so the filter must sit on the asyncio logger itself."""
  echo = _never_retrieved(ValueError(
      'RESOURCE_EXHAUSTED: Error writing ".../checkpoints/4.orbax-checkpoint-tmp/x"'))
  assert not logging.getLogger('asyncio').filter(echo)


def test_other_asyncio_errors_are_kept():
  other = _never_retrieved(ValueError('something else went wrong'))
  assert logging.getLogger('asyncio').filter(other)
