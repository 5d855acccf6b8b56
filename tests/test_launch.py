"""launch/tpu_pod.sh and launch/slurm.sh: --dry_run prints each worker's exact command."""

import shlex
import subprocess

import pytest

from conftest import REPO_ROOT

COMMON = ['--config=configs/eeds.py', '--workdir=gs://b/runs/eeds', '--data_dir=gs://b/data']
# Every host reads the same prepared tfds data from --data_dir.
DATA = ['--config.data.source=tfds']


def _run(script, *args):
  return subprocess.run(['bash', str(REPO_ROOT / 'launch' / script), *args],
                        capture_output=True, text=True, timeout=60)


def _train_args(command: str) -> list[str]:
  words = shlex.split(command)
  return words[words.index('jaxsr.main') - 2:]


def test_tpu_pod_dry_run_prints_every_worker():
  result = _run('tpu_pod.sh', '--tpu=pod', '--zone=us-central2-b', *COMMON, '--dry_run',
                '--num_workers=4', '--', '--config.train.steps=10')
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert [line.split(':')[0] for line in lines] == [f'worker {i}' for i in range(4)]
  for i, line in enumerate(lines):
    words = shlex.split(line.split(': ', 1)[1])
    assert words[:6] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'pod']
    assert f'--worker={i}' in words
    remote = next(w for w in words if w.startswith('--command='))[len('--command='):]
    assert "pip install -q -e '.[tpu]'" in remote
    assert _train_args(remote) == ['python', '-m', 'jaxsr.main', *COMMON, *DATA,
                                   '--multihost', '--config.train.steps=10']


@pytest.mark.parametrize('script,extra', [
    ('tpu_pod.sh', ['--tpu=pod', '--zone=z', '--num_workers=2']),
    ('slurm.sh', ['--nodes=2', '--gpus_per_node=8'])])
def test_launchers_require_a_data_dir(script, extra):
  result = _run(script, *extra, *COMMON[:2], '--dry_run')
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == ['error: --data_dir is required (see --help)']


def test_slurm_dry_run_prints_the_batch_script_and_every_node():
  result = _run('slurm.sh', '--nodes=3', '--gpus_per_node=8', '--partition=gpu', *COMMON,
                '--dry_run')
  assert result.returncode == 0, result.stderr
  out = result.stdout
  for line in ('#SBATCH --nodes=3', '#SBATCH --ntasks-per-node=1', '#SBATCH --gpus-per-node=8',
               '#SBATCH --partition=gpu', '#SBATCH --signal=TERM@120', '#SBATCH --requeue'):
    assert line in out.splitlines()
  srun = next(line for line in out.splitlines() if line.startswith('srun '))
  assert _train_args(srun) == ['python', '-m', 'jaxsr.main', *COMMON, *DATA, '--multihost']
  nodes = [line for line in out.splitlines() if line.startswith('node ')]
  assert len(nodes) == 3
  assert nodes[2].startswith('node 2: SLURM_PROCID=2 SLURM_NTASKS=3 python -m jaxsr.main')


def test_slurm_rejects_a_bad_node_count():
  result = _run('slurm.sh', '--nodes=two', '--gpus_per_node=8', *COMMON, '--dry_run')
  assert result.returncode == 2
  assert 'error: --nodes=two: expected a positive whole number' in result.stderr


@pytest.mark.parametrize('script', ['tpu_pod.sh', 'slurm.sh'])
def test_launchers_help_exits_0_with_the_usage(script):
  result = _run(script, '--help')
  assert result.returncode == 0
  assert f'launch/{script}' in result.stderr


def test_the_tpu_launcher_documents_the_one_time_prepare_command():
  header = (REPO_ROOT / 'launch' / 'tpu_pod.sh').read_text()
  assert ('python -m jaxsr.prepare --sets=t91,bsd200,set5,set14,b100 --scales=2,3,4 \\\n'
          '#       --manual_dir=PNG_ROOT --data_dir=gs://BUCKET/tfds') in header


@pytest.mark.parametrize('stage', ['srcnn', 'espcn', 'fsrcnn', 'vdsr', 'eeds', 'checks'])
def test_every_shipped_weights_command_builds_a_valid_config(stage, tmp_path):
  """launch/train_pretrained.sh, with `python` recording its arguments: every
  run's flags parse as jaxsr.main parses them and the config validates."""
  fake = tmp_path / 'bin' / 'python'
  fake.parent.mkdir()
  fake.write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$RECORD.$(date +%s%N)"\n')
  fake.chmod(0o755)
  env = {'PATH': f'{fake.parent}:/usr/bin:/bin', 'JAXSR_DATA_DIR': str(tmp_path),
         'RECORD': str(tmp_path / 'call')}
  result = subprocess.run(['bash', str(REPO_ROOT / 'launch' / 'train_pretrained.sh'), stage,
                           str(tmp_path / 'runs')], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  configs = recorded_configs(tmp_path)
  assert configs
  for config in configs:
    assert config.eval.max_shapes == 0  # whole images, as the shipped scores are


def recorded_configs(tmp_path):
  """The validated config of each jaxsr.main command a fake python recorded."""
  from jaxsr import config_checks
  from tests.test_configs import parse_main_flags
  configs = []
  for call in sorted(tmp_path.glob('call.*')):
    argv = call.read_text().splitlines()
    assert argv[:2] == ['-m', 'jaxsr.main']
    flags = [a.replace('--config=configs/', f'--config={REPO_ROOT}/configs/')
             for a in argv[2:] if not a.startswith('--workdir=')]
    configs.append(parse_main_flags(*flags))
    config_checks.validate(configs[-1], 1)
  return configs


def test_the_shipped_weights_script_names_a_bad_stage():
  result = subprocess.run(['bash', str(REPO_ROOT / 'launch' / 'train_pretrained.sh'), 'nosuch'],
                          env={'JAXSR_DATA_DIR': '/x', 'PATH': '/usr/bin:/bin'},
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 2
  assert result.stderr.strip() == "train_pretrained.sh: unknown stage 'nosuch'"


def test_the_gpu_script_runs_each_shipped_recipe_with_a_valid_config(tmp_path):
  """launch/gpu_pretrained.sh run, with `python3` and `tar` recording their
  arguments (and the step-rate arithmetic answering 1000): every training
  command parses as jaxsr.main parses it, validates, starts from the shipped
  x3 weights and trains on T91 with the scale augmentation."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  (bin_dir / 'python3').write_text(
      '#!/bin/bash\nif [ "$1" = -c ]; then echo 1000; exit 0; fi\n'
      'if [ "$2" = pip ]; then exit 0; fi\n'
      'printf "%s\\n" "$@" > "$RECORD.$(date +%s%N)"\n')
  (bin_dir / 'tar').write_text('#!/bin/bash\nexit 0\n')
  for tool in bin_dir.iterdir():
    tool.chmod(0o755)
  env = {'PATH': f'{bin_dir}:/usr/bin:/bin', 'RECORD': str(tmp_path / 'call'),
         'OUT': str(tmp_path / 'out')}
  result = subprocess.run(['bash', str(REPO_ROOT / 'launch' / 'gpu_pretrained.sh'), 'run', '60'],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ['srcnn_955:', '1000', 'steps', 'fsrcnn:', '1000', 'steps',
                                   'espcn:', '1000', 'steps']
  configs = recorded_configs(tmp_path)
  assert len(configs) == 6  # a step-rate run and the run, per model
  for config in configs:
    assert config.train.init_from == f'{config.model.name}_x3'
    assert config.data.train == 't91' and tuple(config.data.hr_downscales) == (0.9, 0.8, 0.7, 0.6)
    assert config.eval.max_shapes == 0
