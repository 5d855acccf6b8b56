"""Trains a model: python -m jaxsr.main --config=configs/eeds.py [--workdir=DIR].

Without --workdir the run goes to output/<config name>[_<config args>] (e.g.
output/eeds, output/eeds_runlocal_scale3), printed at the start; the same
command run again resumes there. DIR may be on gs:// (TPU pods).

Config overrides: --config.train.steps=2000 --config.optim.lr=0.01 ...
Multi-host (TPU pods, GPU clusters): jax.distributed is initialised when
--multihost is given (TPU VMs and SLURM detect their peers themselves) or
when --coordinator_address is given (any cluster, or localhost processes).

Exit codes: 0 done; 1 the run failed (one `error:` line: data, checkpoint,
divergence, a busy workdir); 2 a bad flag or config (one `error:` line, before
anything starts); 143 stopped by SIGTERM (one line saying whether the current
step was saved; rerun the same command to resume); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import ast
import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
import jax

from jaxsr import config_checks
from jaxsr.models import backend

# Every field of the config's model is a key too: --config.model.<field>=...
_CONFIG = config_checks.define_config_flag('config', 'Training config file.')
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Folder for checkpoints and metrics, local or gs:// (default: '
    'output/<config name>[_<config args>]).')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'Data root holding set5/, t91/, ... (default: $JAXSR_DATA_DIR, '
    'else the per-user cache). Same as --config.data.data_dir.')
_MULTIHOST = flags.DEFINE_bool('multihost', False, 'Call jax.distributed.initialize().')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process index.')
flags.mark_flags_as_required(['config'])

_EXCEPTION_NAME = re.compile(r'^[\w.]*(Error|Exception): ')


def _one_line(e: BaseException, argv: list[str]) -> str:
  """A flag-parsing error as one line (absl and ml_collections embed
  tracebacks and hints on later lines)."""
  text = str(e.args[0]) if isinstance(e, (KeyError, AttributeError)) and e.args else str(e)
  if text.startswith(("'", '"')):  # ml_collections' AttributeError holds a repr
    try:
      text = str(ast.literal_eval(text))
    except (ValueError, SyntaxError):
      pass
  lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
  if isinstance(e, (KeyError, AttributeError)):
    # An override of a key the config lacks: "'stepz'", 'Did you mean ...'.
    key = lines[0].strip("'\"") if lines else '?'
    # Else get_config itself reads a missing key.
    flag = next((a.split('=')[0] for a in argv[1:] if a.startswith('--config.')
                 and key in a.split('=')[0].split('.')),
                next((a for a in argv[1:] if a.startswith('--config=')), '--config'))
    hint = f' ({lines[1][0].lower()}{lines[1][1:]})' if len(lines) > 1 else ''
    return f'{flag}: the config has no key {key!r}{hint}'
  if 'Traceback (most recent call last)' in text:
    # get_config raised: "flag --config=X: Error whilst parsing ...", then its traceback.
    where = lines[0].split(': Error whilst parsing')[0]
    return f'{where}: {_EXCEPTION_NAME.sub("", lines[-1])}'
  config_file = next((a.split('=', 1)[1].split(':')[0] for a in argv[1:]
                      if a.startswith('--config=')), None)
  if isinstance(e, OSError) and config_file and not os.path.isfile(config_file):
    return f'--config: no config file {config_file}'
  return ' '.join(lines)


def _workdir() -> str:
  if _WORKDIR.value:
    return _WORKDIR.value
  from jaxsr import runs
  # The flag's text as given (file and arguments), not the loaded config.
  return runs.default_workdir(flags.FLAGS['config'].config_filename)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with a bad flag, config file or override as one line."""
  try:
    remaining = flags.FLAGS(argv)
    _CONFIG.value.get('train')  # a config file that failed to load raises here
  except SystemExit:
    # absl's --help prints the flags, then exits 1; asking for help is no error.
    if any(a.split('=')[0] in ('--help', '-help', '--helpshort', '--helpfull', '-?')
           for a in argv[1:]):
      sys.exit(0)
    raise
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError, OSError) as e:
    print(f'error: {_one_line(e, argv)}', file=sys.stderr)
    sys.exit(2)
  return remaining


def main(argv):
  if len(argv) > 1:
    print(f'error: unexpected arguments: {argv[1:]} (flags are --name=value)',
          file=sys.stderr)
    return 2
  backend.keep_freed_memory()
  if _MULTIHOST.value or _COORDINATOR.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  # After jax.distributed, which must precede any use of devices.
  from jaxsr import config_checks
  from jaxsr import datasets
  from jaxsr import image_io
  from jaxsr import metric_writers
  from jaxsr import train
  config = _CONFIG.value
  if _DATA_DIR.value:
    with config.unlocked():
      config.data.data_dir = _DATA_DIR.value
  logging.info('process %d/%d, %d local / %d global devices (%s)',
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count(), jax.devices()[0].platform)
  workdir = _workdir()
  if not _WORKDIR.value and jax.process_index() == 0:
    print(f'workdir: {workdir} (no --workdir given; the same command resumes there)',
          flush=True)
  try:
    metrics = train.train_and_evaluate(config, workdir)
  except train.Preempted as e:
    print(e, file=sys.stderr, flush=True)
    return 143
  except config_checks.ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  # OSError: checkpoints, the workdir and its lock, unwritable files.
  except (datasets.DatasetError, image_io.ImageReadError, metric_writers.MetricsFileError,
          train.NonFiniteError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print('interrupted: rerun the same command to resume from the last checkpoint',
          file=sys.stderr)
    return 130
  if jax.process_index() == 0:
    summary = {k: round(v, 4) for k, v in metrics.items()
               if k.startswith('eval/') and isinstance(v, float)}
    print('final:', summary, flush=True)
  return 0


if __name__ == '__main__':
  jax.config.config_with_absl()
  app.run(main, flags_parser=_parse_flags)
