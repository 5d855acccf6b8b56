r"""Expands a config's sweep (`get_sweep()`) into runs, one workdir per point.

  python launch/sweep.py --config=configs/eeds.py --workdir_root=workdirs/eeds_sweep
  python launch/sweep.py --config=configs/eeds.py:runlocal --workdir_root=/tmp/s \
      --print -- --config.train.steps=2000      # one command per line, for a cluster
  python launch/sweep.py --config=configs/eeds.py:runlocal --workdir_root=/tmp/s \
      --only=model.scale=2                       # the points with scale 2 only

Runs execute one after another here; flags after `--` go to every run. A run
whose workdir already finished is resumed by jaxsr.main, i.e. skipped quickly,
so an interrupted sweep is continued by running the same command again.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import shlex
import subprocess
import sys

# The repository root, so configs can import jaxsr when it is not installed.
REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))


def load_module(config: str):
  path = pathlib.Path(config.split(':', 1)[0])
  if not path.is_file():
    raise SystemExit(f'error: config file {path} not found')
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, 'get_sweep'):
    raise SystemExit(f'error: {path} defines no get_sweep()')
  return module


def _value(v) -> str:
  if isinstance(v, (tuple, list)):
    return '(' + ','.join(_value(x) for x in v) + (',)' if len(v) == 1 else ')')
  return repr(v) if isinstance(v, float) else str(v)


def run_name(point: dict) -> str:
  """'model.name=eed, model.scale=3.0' -> 'name-eed_scale-3'."""
  parts = []
  for key, v in point.items():
    short = key.split('.')[-1]
    text = _value(v).strip('()').replace(',', '-').rstrip('-')
    if text.endswith('.0'):
      text = text[:-2]
    parts.append(f'{short}-{text}')
  return '_'.join(parts) or 'default'


def select(module, arg: str, points: list[dict], only: list[str]) -> list[dict]:
  """The points whose config, with the point's overrides, has every `key=value`."""
  if not only:
    return points
  from jaxsr import config_base
  wanted = []
  for item in only:
    key, sep, value = item.partition('=')
    if not sep:
      raise SystemExit(f'error: --only={item!r}: expected key=value, e.g. model.scale=2')
    wanted.append((key, value))
  base = module.get_config(arg or None)

  def matches(config, key, value):
    node = config
    for part in key.split('.'):
      if part not in node:
        raise SystemExit(f'error: --only={key}=...: the config has no key {key}')
      node = node[part]
    try:
      return float(node) == float(value)
    except (TypeError, ValueError):
      return _value(node) == value

  picked = []
  for point in points:
    config = config_base.apply_overrides(base, point)
    if all(matches(config, k, v) for k, v in wanted):
      picked.append(point)
  if not picked:
    raise SystemExit(f'error: --only={",".join(only)} matches no point of the sweep')
  return picked


def commands(config: str, workdir_root: str, extra: list[str],
             only: list[str] = ()) -> list[tuple[str, list[str]]]:
  out = []
  module = load_module(config)
  for point in select(module, config.partition(':')[2], module.get_sweep(), list(only)):
    name = run_name(point)
    cmd = [sys.executable, '-m', 'jaxsr.main', f'--config={config}',
           f'--workdir={pathlib.Path(workdir_root) / name}']
    cmd += [f'--config.{k}={_value(v)}' for k, v in point.items()] + extra
    out.append((name, cmd))
  return out


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  extra = argv[argv.index('--') + 1:] if '--' in argv else []
  argv = argv[:argv.index('--')] if '--' in argv else argv
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', required=True)
  parser.add_argument('--workdir_root', required=True)
  parser.add_argument('--print', action='store_true', help='print the commands only')
  parser.add_argument('--only', action='append', default=[], metavar='KEY=VALUE',
                      help='keep the points with this value (repeatable)')
  args = parser.parse_args(argv)
  runs = commands(args.config, args.workdir_root, extra, args.only)
  if args.print:
    for _, cmd in runs:
      print(shlex.join(['python'] + cmd[1:]))
    return 0
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
  failed = []
  for i, (name, cmd) in enumerate(runs):
    print(f'[{i + 1}/{len(runs)}] {name}', flush=True)
    if subprocess.run(cmd, env=env).returncode != 0:
      failed.append(name)
  if failed:
    print(f'failed runs: {failed}', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
