"""launch/sweep.py: points re-derived by get_config, names, seeds, parallel runs, errors once."""

import importlib.util
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import jax
import pytest

from configs import common
from jaxsr import config_checks

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted(p for p in (REPO / 'configs').glob('*.py')
                 if p.stem not in ('__init__', 'common'))


def _load_launcher():
  # Once per process: the module defines absl flags.
  if 'sweep_launcher' not in sys.modules:
    spec = importlib.util.spec_from_file_location('sweep_launcher', REPO / 'launch' / 'sweep.py')
    sys.modules['sweep_launcher'] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules['sweep_launcher'])
  return sys.modules['sweep_launcher']


sweep = _load_launcher()


def run_sweep(*args: str) -> int:
  """launch/sweep.py's main with these command-line arguments, as app.run calls it."""
  sweep.flags.FLAGS.unparse_flags()
  platforms = jax.config.jax_platforms
  try:
    return sweep.main(sweep.flags.FLAGS(['sweep.py', *args]))
  finally:  # main keeps its process on the CPU; the tests' process is not its
    jax.config.update('jax_platforms', platforms)


def printed_commands(capsys, *args: str) -> list[str]:
  assert run_sweep('--print', *args) == 0
  return capsys.readouterr().out.splitlines()


def workdirs(lines: list[str], root: str) -> list[str]:
  return [line.split(f'--workdir={root}/')[1].split()[0] for line in lines]


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize('base', ['', 'runlocal'])
def test_every_point_is_get_config_of_its_args_plus_its_overrides(path, base):
  """The config a run gets (its flags, parsed as jaxsr.main parses them)."""
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = f'configs/{path.stem}.py' + (f':{base}' if base else '')
  for point in module.get_sweep():
    config_flag, overrides = sweep.point_command(config, point)
    run_config = sweep.parse_config(config_flag.partition('=')[2], overrides)
    expected = common.apply_overrides(module.get_config(point.config_arg(base)),
                                      point.overrides)
    # jaxsr.main adds the model's other fields (None: the model's default).
    assert run_config.to_dict() == config_checks.with_model_fields(expected).to_dict()


def test_fsrcnn_points_derive_their_lr_patch_from_their_scale():
  runs = sweep.plan('configs/fsrcnn.py', 'w', extra=[])
  assert {r.name: r.config.data.patch_size for r in runs} == {
      'fsrcnn_x2': 10, 'fsrcnn_x3': 7, 'fsrcnn_x4': 6}
  assert runs[1].argv[:2] == ('--config=configs/fsrcnn.py:scale=3', '--workdir=w/fsrcnn_x3')


def test_print_writes_one_readable_command_per_run(capsys):
  lines = printed_commands(capsys, '--config=configs/eeds.py', '--workdir_root=/tmp/sw',
                           '--', '--config.train.steps=5')
  assert len(lines) == 10  # (eed, ees, eeds) × (2, 3, 4), then eeds with unpooling
  names = workdirs(lines, '/tmp/sw')
  assert names[:4] == ['eed_x2', 'eed_x3', 'eed_x4', 'ees_x2']
  assert names[-1] == 'eeds_x2_unpool' and len(set(names)) == 10
  assert lines[0] == ('python -m jaxsr.main --config=configs/eeds.py:variant=eed,scale=2 '
                      '--workdir=/tmp/sw/eed_x2 --config.train.steps=5')
  assert all(line.endswith(' --config.train.steps=5') for line in lines)
  assert printed_commands(capsys, '--config=configs/vdsr.py:runlocal', '--workdir_root=w'
                          )[-1] == ('python -m jaxsr.main --config=configs/vdsr.py:'
                                    'runlocal,scale=0 --workdir=w/vdsr_x2-3-4')


def test_seeds_multiply_points_from_the_configs_seed(capsys):
  lines = printed_commands(capsys, '--config=configs/eeds.py:runlocal', '--workdir_root=w',
                           '--only=model.name=ees', '--only=model.scale=2', '--seeds=3',
                           '--', '--config.train.seed=5')
  assert workdirs(lines, 'w') == ['ees_x2_seed5', 'ees_x2_seed6', 'ees_x2_seed7']
  assert [line.split()[-1] for line in lines] == [
      f'--config.train.seed={s}' for s in (5, 6, 7)]


def test_only_keeps_points_whose_config_matches(capsys):
  lines = printed_commands(capsys, '--config=configs/eeds.py:runlocal', '--workdir_root=w',
                           '--only=model.scale=2')
  # The unpooling point sets no scale: it keeps the config's ×2 and is kept.
  assert workdirs(lines, 'w') == ['eed_x2', 'ees_x2', 'eeds_x2', 'eeds_x2_unpool']
  assert len(printed_commands(capsys, '--config=configs/eeds.py', '--workdir_root=w',
                              '--only=model.name=ees', '--only=model.scale=3')) == 1


@pytest.mark.parametrize('args,message', [
    (['--only=model.scale'], "--only='model.scale': expected key=value"),
    (['--only=model.sclae=2'], "no key model.sclae (config.model has no key 'sclae'"),
    (['--only=model.scale=5'], '--only=model.scale=5 matches no point of the sweep'),
    (['--', '--config.train.stepz=5'],
     "--config.train.stepz=5: config.train has no key 'stepz'; valid: ['batch_size', "),
    (['--', '--config.train.steps=abc'], 'flag --config.train.steps=abc: invalid literal'),
    (['--', '--config.train.batch_size=0'],
     'variant=eed,scale=2: config.train.batch_size=0 is not a positive multiple'),
])
def test_a_config_error_is_one_line_before_any_run(monkeypatch, capsys, args, message):
  monkeypatch.setattr(sweep, 'run_all', lambda *a, **k: pytest.fail('a run was started'))
  assert run_sweep('--config=configs/eeds.py', '--workdir_root=w', *args) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and message in err and err.count('\n') == 1, err


@pytest.mark.parametrize('config,message', [
    ('configs/nope.py', 'config file configs/nope.py not found'),
    ('configs/eeds.py:varaint=ees', "config argument 'varaint' is not one of"),
    ('configs/eeds.py:scale=3', 'sets scale, which the sweep varies'),
])
def test_a_bad_config_argument_is_one_line(capsys, config, message):
  assert run_sweep(f'--config={config}', '--workdir_root=w') == 2
  err = capsys.readouterr().err
  assert message in err and err.count('\n') == 1, err


def test_main_runs_every_point_and_reports_failures(monkeypatch, capsys):
  calls = []

  def fake_run_all(commands, parallel, env):
    calls.extend(commands)
    assert parallel == 2 and str(REPO) in env['PYTHONPATH']
    return ['vdsr_x3'], []
  monkeypatch.setattr(sweep, 'run_all', fake_run_all)
  assert run_sweep('--config=configs/vdsr.py', '--workdir_root=w', '--parallel=2',
                   '--', '--config.train.steps=1') == 1
  assert [name for name, _ in calls] == ['vdsr_x2', 'vdsr_x3', 'vdsr_x4', 'vdsr_x2-3-4']
  assert all(cmd[1:3] == ['-m', 'jaxsr.main'] and cmd[-1] == '--config.train.steps=1'
             for _, cmd in calls)
  assert "failed runs: ['vdsr_x3']" in capsys.readouterr().err


def python_command(code: str) -> list[str]:
  return [sys.executable, '-c', textwrap.dedent(code)]


def test_run_all_runs_in_parallel_prefixes_lines_and_collects_failures(capfd):
  sleeper = python_command('import time; print("hello", flush=True); time.sleep(1)')
  commands = [('a', sleeper), ('b', sleeper), ('bad', python_command('raise SystemExit(3)'))]
  start = time.monotonic()
  failed, unfinished = sweep.run_all(commands, parallel=3)
  assert time.monotonic() - start < 1.9  # the two 1 s runs overlapped
  assert (failed, unfinished) == (['bad'], [])
  out = capfd.readouterr().out
  assert '[a] hello' in out and '[b] hello' in out and '[3/3] bad' in out
  # One at a time, a run writes to the terminal itself.
  assert sweep.run_all(commands[:1], parallel=1) == ([], [])
  assert 'hello\n' in capfd.readouterr().out


def _start_sweep_driver(tmp_path) -> tuple[subprocess.Popen, list[str]]:
  """A sweep of runs a, b, c, two at a time, under sweep's SIGTERM handler;
  returns once a and b have started, with the lines read so far."""
  run = """
      import signal, sys, time
      def save(*_):
        print('saved', sys.argv[1], flush=True)
        sys.exit(143)
      signal.signal(signal.SIGTERM, save)
      print('started', sys.argv[1], flush=True)
      time.sleep(60)
  """
  script = tmp_path / 'driver.py'
  script.write_text(textwrap.dedent(f"""
      import importlib.util, signal, sys
      spec = importlib.util.spec_from_file_location('s', {str(REPO / 'launch' / 'sweep.py')!r})
      sweep = sys.modules['s'] = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(sweep)
      signal.signal(signal.SIGTERM, sweep._interrupt)
      run = {python_command(run)!r}
      print(sweep.run_all([(n, run + [n]) for n in ('a', 'b', 'c')], parallel=2), flush=True)
  """))
  proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  lines = []
  while lines.count('[a] started a') + lines.count('[b] started b') < 2:
    line = proc.stdout.readline()
    assert line, lines
    lines.append(line.strip())
  return proc, lines


def _assert_stopped_cleanly(lines: list[str]) -> None:
  assert '[a] saved a' in lines and '[b] saved b' in lines, lines
  assert not any('started c' in line for line in lines), lines
  assert lines[-1] == "([], ['a', 'b', 'c'])", lines


def test_sigterm_stops_the_sweep_and_lets_running_runs_save(tmp_path):
  """The running runs get SIGTERM (jaxsr.main checkpoints on it); no new run starts."""
  proc, lines = _start_sweep_driver(tmp_path)
  proc.terminate()
  out, _ = proc.communicate(timeout=60)
  _assert_stopped_cleanly(lines + out.strip().splitlines())


def test_repeated_sigterms_do_not_hang_the_sweep(tmp_path):
  """A second signal can land while the handler of the first runs (a cluster
  repeating SIGTERM, Ctrl-C pressed twice); a handler that took a lock then
  waited on itself forever."""
  proc, lines = _start_sweep_driver(tmp_path)
  try:
    for _ in range(2000):
      if proc.poll() is not None:
        break
      proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
  finally:
    proc.kill()
  _assert_stopped_cleanly(lines + out.strip().splitlines())


def test_help_lists_the_flags():
  result = subprocess.run([sys.executable, str(REPO / 'launch' / 'sweep.py'), '--help'],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0  # asking for help is no error, as in every jaxsr command
  out = result.stdout
  for flag in ('config', 'workdir_root', '[no]print', 'only', 'seeds', 'parallel'):
    assert f'  --{flag}:' in out, out
