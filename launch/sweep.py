r"""Expands a config's sweep (`get_sweep()`) into runs, one workdir per point.

  python launch/sweep.py --config=configs/eeds.py --workdir_root=workdirs/eeds_sweep
  python launch/sweep.py --config=configs/eeds.py:runlocal --workdir_root=/tmp/s \
      --only=model.name=ees --seeds=3 --parallel=2   # EES at 3 seeds, 2 runs at a time
  python launch/sweep.py --config=configs/eeds.py:runlocal --workdir_root=/tmp/s \
      --print -- --config.train.steps=2000      # one command per line, for a cluster

A sweep point names `get_config` arguments (variant, scale, ...) and
overrides; its run gets them as `--config=FILE:ARGS` so that its config
re-derives what depends on them. Workdirs are named by the model, the scale
and what else the point sets (eeds_x2, eeds_x2_unpool, vdsr_x2-3-4), plus
_seedN with --seeds. Flags after `--` go to every run.

Every run's config is first built here as jaxsr.main will build it (same
flags, same parser) and validated, so a typo or a bad value is reported once,
before any run starts. A run whose workdir already finished is resumed by
jaxsr.main, i.e. skipped quickly, so an interrupted sweep is continued by
running the same command again.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib.util
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import threading
from typing import Any, Sequence

# The repository root, so configs and jaxsr import when it is not installed.
REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import jax  # noqa: E402
import ml_collections  # noqa: E402

from configs import common  # noqa: E402
from jaxsr import config_checks  # noqa: E402

_CONFIG = flags.DEFINE_string(
    'config', None, 'Config file defining get_sweep(), with an optional :ARGS given '
    'to every point (e.g. configs/eeds.py:runlocal).')
_WORKDIR_ROOT = flags.DEFINE_string('workdir_root', None, 'Folder of the runs\' workdirs.')
_PRINT = flags.DEFINE_bool('print', False, 'Print one jaxsr.main command per run, '
                           'run nothing (for a cluster\'s scheduler).')
_ONLY = flags.DEFINE_multi_string(
    'only', [], 'KEY=VALUE: keep the points whose config has this value, e.g. '
    'model.scale=2 (repeatable: all must match).')
_SEEDS = flags.DEFINE_integer('seeds', 1, 'Runs per point, with train.seed, '
                              'train.seed + 1, ...', lower_bound=1)
_PARALLEL = flags.DEFINE_integer('parallel', 1, 'Runs at a time on this machine.',
                                 lower_bound=1)
flags.mark_flags_as_required(['config', 'workdir_root'])


class SweepError(ValueError):
  """A sweep that cannot start; the message is one line naming the cause."""


@dataclasses.dataclass(frozen=True)
class Run:
  name: str
  argv: tuple[str, ...]   # jaxsr.main's flags
  config: ml_collections.ConfigDict

  def command(self) -> list[str]:
    return [sys.executable, '-m', 'jaxsr.main', *self.argv]


def load_sweep(path: pathlib.Path) -> list[common.Point]:
  if not path.is_file():
    raise SweepError(f'config file {path} not found')
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # A config's own bug, reported in one line.
    raise SweepError(f'{path}: cannot be loaded: {type(e).__name__}: {e}') from None
  if not hasattr(module, 'get_sweep'):
    raise SweepError(f'{path} defines no get_sweep()')
  points = module.get_sweep()
  if not points or not all(isinstance(p, common.Point) for p in points):
    raise SweepError(f'{path}: get_sweep() must return a non-empty list of '
                     'configs.common.Point')
  return points


def _flag_value(v: Any) -> str:
  if isinstance(v, (tuple, list)):
    return '(' + ','.join(_flag_value(x) for x in v) + (',)' if len(v) == 1 else ')')
  return repr(v) if isinstance(v, float) else str(v)


def _name_part(v: Any) -> str:
  text = '-'.join(map(_name_part, v)) if isinstance(v, (tuple, list)) else (
      f'{v:g}' if isinstance(v, float) else str(v))
  return re.sub(r'[^A-Za-z0-9.+-]+', '-', text)


def _parse(config_arg: str, overrides: Sequence[str]) -> ml_collections.ConfigDict:
  argv = ['jaxsr.main', f'--config={config_arg}', *overrides]
  flag_values = flags.FlagValues()
  holder = config_checks.define_config_flag('config', 'Training config file.',
                                            flag_values=flag_values, sys_argv=argv)
  try:
    flag_values(argv)
    return holder.value
  except flags.Error as e:
    lines = str(e).strip().splitlines()
    if 'Traceback' not in str(e):
      raise SweepError(lines[0]) from None
    # An exception of get_config, wrapped with its traceback: keep its message.
    raise SweepError(re.sub(r'^[\w.]+: ', '', lines[-1])) from None


def parse_config(config_arg: str, overrides: Sequence[str]) -> ml_collections.ConfigDict:
  """The config jaxsr.main builds from `--config=config_arg` and `--config.*` flags.

  An override of a key the config lacks is an error naming the valid keys.
  """
  config = _parse(config_arg, ())
  for flag in overrides:
    key = flag.lstrip('-').partition('=')[0].partition('.')[2]
    try:
      common.check_key(config, key)
    except common.ConfigArgumentError as e:
      raise SweepError(f'{flag}: {e}') from None
  return _parse(config_arg, overrides) if overrides else config


def run_name(config: ml_collections.ConfigDict, point: common.Point) -> str:
  """eeds_x2, eeds_x2_unpool, vdsr_x2-3-4, ..., plus the point's overrides."""
  parts = [config.model.name, 'x' + _name_part(config_checks.train_scales(config))]
  for key, value in point.args.items():
    if key not in ('variant', 'scale'):
      parts.append(key if value is True else f'no{key}' if value is False
                   else _name_part(value))
  parts += [f'{key.rpartition(".")[2]}-{_name_part(v)}' for key, v in point.overrides.items()]
  return '_'.join(parts)


def _matches(config: ml_collections.ConfigDict, key: str, value: str) -> bool:
  try:
    node = common.check_key(config, key)
  except common.ConfigArgumentError as e:
    raise SweepError(f'--only={key}=...: the config has no key {key} ({e})') from None
  try:
    return float(node) == float(value)
  except (TypeError, ValueError):
    return _flag_value(node) == value


def point_command(config: str, point: common.Point) -> tuple[str, list[str]]:
  """jaxsr.main's `--config=FILE:ARGS` flag and `--config.*` overrides for a point."""
  path, _, base_arg = config.partition(':')
  try:
    arg = point.config_arg(base_arg)
  except common.ConfigArgumentError as e:
    raise SweepError(f'--config={config}: {e}') from None
  overrides = [f'--config.{k}={_flag_value(v)}' for k, v in point.overrides.items()]
  return (f'--config={path}:{arg}' if arg else f'--config={path}'), overrides


def plan(config: str, workdir_root: str, extra: Sequence[str], only: Sequence[str] = (),
         seeds: int = 1) -> list[Run]:
  """Every run of the sweep, each config built and validated; SweepError otherwise."""
  path = config.partition(':')[0]
  points = load_sweep(pathlib.Path(path))
  config_flags_extra = [f for f in extra if re.match(r'--?(no)?config\.', f)]
  wanted = []
  for item in only:
    key, sep, value = item.partition('=')
    if not sep:
      raise SweepError(f'--only={item!r}: expected key=value, e.g. model.scale=2')
    wanted.append((key, value))
  # Flags common to every run are checked once, on the config without a point.
  parse_config(config, config_flags_extra)
  runs = []
  for point in points:
    config_flag, point_flags = point_command(config, point)
    try:
      c = parse_config(config_flag.partition('=')[2], point_flags + config_flags_extra)
      config_checks.validate(c, device_count=1)
    except (SweepError, config_checks.ConfigError) as e:
      raise SweepError(f'{config_flag}: {e}') from None
    if all(_matches(c, k, v) for k, v in wanted):
      run = Run(run_name(c, point), (config_flag, *point_flags, *extra), c)
      runs += _seeded(run, pathlib.Path(workdir_root), seeds)
  if not runs:
    raise SweepError(f'--only={",".join(only)} matches no point of the sweep')
  names = [run.name for run in runs]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise SweepError(f'{path}: several points get the workdir name(s) {repeated}')
  return runs


def _seeded(run: Run, workdir_root: pathlib.Path, seeds: int) -> list[Run]:
  """The run once per seed (train.seed, + 1, ...), each with its workdir."""
  config_flag, *rest = run.argv
  if seeds == 1:
    return [Run(run.name, (config_flag, f'--workdir={workdir_root / run.name}', *rest),
                run.config)]
  first = run.config.train.seed
  return [Run(f'{run.name}_seed{seed}',
              (config_flag, f'--workdir={workdir_root / f"{run.name}_seed{seed}"}', *rest,
               f'--config.train.seed={seed}'), run.config)
          for seed in range(first, first + seeds)]


class _Launcher:
  """Runs commands `parallel` at a time; a stop lets running ones checkpoint."""

  def __init__(self, parallel: int, env: dict[str, str]):
    self.parallel = parallel
    self.env = env
    self.lock = threading.Lock()
    self.running: dict[str, subprocess.Popen] = {}
    self.signalled: set[str] = set()
    self.stopped = False

  def run(self, index: int, total: int, name: str, cmd: list[str]) -> int | None:
    """The exit status, or None when the sweep stopped before this run began."""
    prefix = self.parallel > 1
    with self.lock:
      if self.stopped:
        return None
      print(f'[{index}/{total}] {name}', flush=True)
      # With several runs at a time, each line is prefixed by the run's name.
      # Its own process group: a Ctrl-C reaches the sweep only, which stops
      # the runs with SIGTERM, on which they checkpoint.
      proc = subprocess.Popen(cmd, env=self.env, text=True, process_group=0,
                              stdout=subprocess.PIPE if prefix else None,
                              stderr=subprocess.STDOUT if prefix else None)
      self.running[name] = proc
    if prefix:
      for line in proc.stdout:
        print(f'[{name}] {line}', end='', flush=True)
    status = proc.wait()
    with self.lock:
      del self.running[name]
    return status

  def stop(self) -> None:
    """No new runs; running ones get SIGTERM, which jaxsr.main saves on."""
    with self.lock:
      if self.stopped:
        return
      self.stopped = True
      print('interrupted: stopping the running runs (they save a checkpoint)',
            file=sys.stderr, flush=True)
      for name, proc in self.running.items():
        if proc.poll() is None:
          proc.send_signal(signal.SIGTERM)
          self.signalled.add(name)


def run_all(commands: Sequence[tuple[str, list[str]]], parallel: int,
            env: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
  """Runs (name, command) pairs; (names of failed runs, names left unfinished).

  A Ctrl-C or SIGTERM stops the sweep: no new runs, the running ones get
  SIGTERM and are left unfinished, not failed.
  """
  launcher = _Launcher(parallel, dict(os.environ if env is None else env))
  with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
    futures = {pool.submit(launcher.run, i + 1, len(commands), name, cmd): name
               for i, (name, cmd) in enumerate(commands)}
    pending = set(futures)
    while pending:
      try:
        _, pending = concurrent.futures.wait(pending, timeout=0.5)
      except KeyboardInterrupt:  # a Ctrl-C where main() did not install _interrupt
        _STOP_REQUESTED[0] = True
      if _STOP_REQUESTED[0]:
        launcher.stop()
  status = {name: f.result() for f, name in futures.items()}
  unfinished = [n for n, s in status.items() if s is None or n in launcher.signalled]
  return [n for n, s in status.items() if s and n not in unfinished], unfinished


# Set by _interrupt, acted on by run_all's loop. Raising from the handler
# instead could land inside concurrent.futures' lock handling in the main
# thread ("RuntimeError: release unlocked lock"), and a handler that takes a
# lock (threading.Event.set) deadlocks when a second signal lands inside it.
_STOP_REQUESTED = [False]


def _interrupt(signum, frame):
  del signum, frame
  _STOP_REQUESTED[0] = True


def main(argv: Sequence[str]) -> int:
  extra = list(argv[1:])
  stray = [a for a in extra if not a.startswith('-')]
  if stray:
    raise app.UsageError(f'unexpected arguments {stray}; flags for every run go after --')
  # Validation only traces models: keep accelerators free for the runs.
  jax.config.update('jax_platforms', 'cpu')
  try:
    runs = plan(_CONFIG.value, _WORKDIR_ROOT.value, extra, _ONLY.value, _SEEDS.value)
  except (SweepError, common.ConfigArgumentError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if _PRINT.value:
    for run in runs:
      print(shlex.join(['python', *run.command()[1:]]))
    return 0
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
  signal.signal(signal.SIGTERM, _interrupt)
  signal.signal(signal.SIGINT, _interrupt)
  failed, unfinished = run_all([(run.name, run.command()) for run in runs],
                               _PARALLEL.value, env)
  if failed:
    print(f'failed runs: {failed}', file=sys.stderr)
  if unfinished:
    print(f'sweep interrupted, unfinished runs: {unfinished}; run the same command '
          'again to continue', file=sys.stderr)
    return 130
  return 1 if failed else 0


if __name__ == '__main__':
  try:
    app.run(main)
  except SystemExit as e:
    # absl's --help prints the flags, then exits 1; asking for help is no error.
    if e.code == 1 and any(a.split('=')[0] in ('--help', '-help', '--helpshort',
                                               '--helpfull', '-?') for a in sys.argv[1:]):
      sys.exit(0)
    raise
