"""Trains a model: python -m jaxsr.main --config=configs/eeds.py --workdir=DIR.

Config overrides: --config.train.steps=2000 --config.optim.lr=0.01 ...
Multi-host (TPU pods, GPU clusters): jax.distributed is initialised when
--multihost is given (TPU VMs and SLURM detect their peers themselves) or
when --coordinator_address is given (any cluster, or localhost processes).
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from jaxsr.cpu import host_memory

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Training config file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for checkpoints and metrics.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'Data root holding set5/, t91/, ... (default: $JAXSR_DATA_DIR, '
    'else the per-user cache). Same as --config.data.data_dir.')
_MULTIHOST = flags.DEFINE_bool('multihost', False, 'Call jax.distributed.initialize().')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process index.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  host_memory.keep_freed_memory()
  if _MULTIHOST.value or _COORDINATOR.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  # After jax.distributed, which must precede any use of devices.
  from jaxsr import config_checks
  from jaxsr import datasets
  from jaxsr import image_io
  from jaxsr import train
  config = _CONFIG.value
  if _DATA_DIR.value:
    with config.unlocked():
      config.data.data_dir = _DATA_DIR.value
  logging.info('process %d/%d, %d local / %d global devices (%s)',
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count(), jax.devices()[0].platform)
  try:
    metrics = train.train_and_evaluate(config, _WORKDIR.value)
  except (config_checks.ConfigError, datasets.DatasetError, image_io.ImageReadError,
          train.NonFiniteError) as e:
    logging.error('%s', e)
    raise SystemExit(f'error: {e}') from None
  if jax.process_index() == 0:
    summary = {k: round(v, 4) for k, v in metrics.items()
               if k.startswith('eval/') and isinstance(v, float)}
    print('final:', summary, flush=True)


if __name__ == '__main__':
  jax.config.config_with_absl()
  app.run(main)
