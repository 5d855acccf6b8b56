"""Shipped and exported weights: checksums, damaged records, the list/export CLI."""

import json
import pathlib
import shutil
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest
from PIL import Image

from configs import common
from conftest import save_run
from jaxsr import pretrained
from jaxsr import upscale
from jaxsr.pretrained import __main__ as pretrained_cli

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """(folder, params): a random `ees` x2 run exported by the CLI as `eeds`."""
  workdir = tmp_path_factory.mktemp('run')
  params = save_run(workdir, common.base_config('ees'))
  scores = workdir / 'scores.json'
  scores.write_text(json.dumps({'set5': {'x2': {'psnr_y': 30.5, 'ssim_y': 0.9, 'n': 5}}}))
  folder = tmp_path_factory.mktemp('pretrained')
  assert pretrained_cli.main(['export', f'--workdir={workdir}', '--name=eeds',
                              f'--scores={scores}', f'--out_dir={folder}']) == 0
  return folder, params


def test_a_multi_scale_run_ships_once_and_loads_at_each_scale(tmp_path):
  workdir = tmp_path / 'run'
  cfg = common.base_config('srcnn', scale=2)
  cfg.data.scales = (2, 3, 4)
  params = save_run(workdir, cfg)
  folder = tmp_path / 'shipped'
  assert pretrained_cli.main(['export', f'--workdir={workdir}', f'--out_dir={folder}']) == 0
  assert sorted(p.name for p in folder.iterdir()) == ['srcnn_x2.json', 'srcnn_x2.msgpack']
  assert json.loads((folder / 'srcnn_x2.json').read_text())['scales'] == [2.0, 3.0, 4.0]
  assert pretrained.available(folder) == [('srcnn', 2.0), ('srcnn', 3.0), ('srcnn', 4.0)]
  model, loaded = pretrained.load('srcnn', 4, folder)
  assert model.scale == 4.0
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(pretrained.PretrainedNotFoundError, match='available: srcnn x2, srcnn x3'):
    pretrained.load('srcnn', 5, folder)


def test_the_record_of_a_fine_tuned_run_covers_the_run_it_started_from(tmp_path):
  parent, child = tmp_path / 'x3', tmp_path / 'x2'
  for workdir, init_from, elapsed in ((parent, '', 50.0), (child, str(parent), 7.0)):
    cfg = common.base_config('ees', scale=2)
    cfg.train.init_from = init_from
    save_run(workdir, cfg, step=10)
    (workdir / 'metrics.jsonl').write_text(
        json.dumps({'step': 10, 'train/elapsed_s': elapsed}) + '\n')
  record = json.loads(pretrained.export(child, out_dir=tmp_path / 'out').read_text())
  training = record['training']
  assert training['train']['init_from'] == str(parent)
  assert training['init_from_run']['train_time_s'] == 50.0
  assert training['chain_train_time_s'] == 57.0


@pytest.fixture
def copy(exported, tmp_path):
  """A copy of the exported folder, free to damage."""
  folder = tmp_path / 'weights'
  shutil.copytree(exported[0], folder)
  return folder


def _damage(path, offset=200, length=4000):
  data = bytearray(path.read_bytes())
  data[offset:offset + length] = b'\x07' * length
  path.write_bytes(bytes(data))


def test_export_records_the_checksum_and_load_verifies_it(exported, copy):
  folder, params = exported
  meta = json.loads((folder / 'eeds_x2.json').read_text())
  assert meta['sha256'] == pretrained.sha256((folder / 'eeds_x2.msgpack').read_bytes())
  assert meta['parameters'] == sum(p.size for p in jax.tree.leaves(params))
  _, loaded = pretrained.load('eeds', 2, directory=folder)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
  _damage(copy / 'eeds_x2.msgpack')  # a valid msgpack still, with other numbers
  with pytest.raises(pretrained.PretrainedFileError,
                     match=r'weights/eeds_x2.msgpack: damaged weights file'):
    pretrained.load('eeds', 2, directory=copy)


def test_every_shipped_file_is_small_and_in_the_wheel():
  """Under 3 MB each, and matched by pyproject's package-data (what the wheel installs)."""
  import fnmatch
  import tomllib
  patterns = tomllib.loads((REPO_ROOT / 'pyproject.toml').read_text())[
      'tool']['setuptools']['package-data']['jaxsr']
  shipped = [p for p in pretrained.PACKAGE_DIR.iterdir() if p.suffix in ('.json', '.msgpack')]
  assert len(shipped) >= 6
  for path in shipped:
    assert path.stat().st_size < 3_000_000, path
    assert any(fnmatch.fnmatch(f'pretrained/{path.name}', p) for p in patterns), path


def test_shipped_weights_match_their_checksums():
  records = pretrained.records(pretrained.PACKAGE_DIR)
  assert len(records) >= 3
  for record in records:
    meta = pretrained.read_record(record)
    assert pretrained.weights_status(pretrained.PACKAGE_DIR, record, meta) == 'ok', record
    assert meta['parameters'] > 0


@pytest.mark.parametrize('text,message', [
    ('{"name": "eeds",\n', 'not valid JSON'),
    ('[1, 2]', 'not a jaxsr.pretrained record'),
    ('{"name": "eeds", "scale": 2}',
     r'not a jaxsr.pretrained record \(no model, channels, kwargs\)'),
])
def test_a_damaged_record_names_its_file(text, message, copy):
  (copy / 'eeds_x2.json').write_text(text)
  for call in (lambda: pretrained.load('eeds', 2, directory=copy),
               lambda: pretrained.available(copy)):
    with pytest.raises(pretrained.PretrainedFileError,
                       match=f'weights/eeds_x2.json: {message}'):
      call()


def test_a_record_without_checksum_loads_with_a_warning(copy):
  meta = json.loads((copy / 'eeds_x2.json').read_text())
  del meta['sha256']
  (copy / 'eeds_x2.json').write_text(json.dumps(meta))
  with pytest.warns(pretrained.UnverifiedWeightsWarning, match='eeds_x2.json: no sha256'):
    pretrained.load('eeds', 2, directory=copy)


def test_list_shows_name_scale_size_score_and_status(capsys):
  assert pretrained_cli.main(['list']) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].split()[:5] == ['name', 'scale', 'channels', 'parameters', 'size']
  assert 'Set5 PSNR / SSIM (Y)' in lines[0]
  shipped = json.loads((REPO_ROOT / 'jaxsr' / 'pretrained' / 'eeds_x2.json').read_text())
  psnr, ssim = shipped['scores']['set5']['x2']['psnr_y'], shipped['scores']['set5']['x2']['ssim_y']
  row = next(line.split() for line in lines if line.split()[:2] == ['eeds', 'x2'])
  assert row[2] == 'Y' and row[3] == f"{shipped['parameters']:,}"
  assert row[4:6] == ['1.02', 'MB'] and row[6:9] == [f'{psnr:.2f}', '/', f'{ssim:.4f}']
  # Two phases: 10,000 steps from scratch, then 3,000 from them.
  minutes = (shipped['training']['train_time_s']
             + shipped['training']['init_from_run']['train_time_s']) / 60
  assert row[9:13] == ['13,000', 'steps,', f'{minutes:.0f}', 'min']
  assert row[-1] == 'ok'


def test_list_goes_on_past_a_broken_record(copy, capsys):
  shutil.copy(copy / 'eeds_x2.json', copy / 'other_x2.json')
  (copy / 'other_x2.msgpack').write_bytes((copy / 'eeds_x2.msgpack').read_bytes())
  _damage(copy / 'other_x2.msgpack')
  (copy / 'broken_x2.json').write_text('{')
  assert pretrained_cli.main(['list', f'--dir={copy}']) == 1
  captured = capsys.readouterr()
  rows = [line.split() for line in captured.out.splitlines()[1:]]
  assert [(r[0], r[-1]) for r in rows] == [('eeds', 'ok'), ('eeds', 'damaged')]
  assert rows[0][6:9] == ['30.50', '/', '0.9000']
  assert captured.err.splitlines() == [
      f'error: {copy}/broken_x2.json: not valid JSON (Expecting property name enclosed '
      'in double quotes at line 1, column 2); export the model again']


def test_upscale_with_damaged_weights_is_one_line(copy, tmp_path, monkeypatch, capsys):
  _damage(copy / 'eeds_x2.msgpack')
  monkeypatch.setenv('JAXSR_PRETRAINED_DIR', str(copy))
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'a.png')
  assert upscale.main([str(tmp_path / 'a.png'), f'--out={tmp_path}/out']) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f'error: {copy}/eeds_x2.msgpack: damaged weights file (its sha256 does '
                 'not match the one in eeds_x2.json); reinstall jaxsr or export the '
                 'weights again']
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('args,message', [
    ([], 'expected one command, list or export; got none'),
    (['lst'], 'expected one command, list or export; got lst'),
    (['list', '--workdir=x'], '--workdir: only for export'),
    (['export', '--dir=x', '--workdir=w'], '--dir: only for list'),
    (['export'], 'give exactly one of --workdir and --checkpoint'),
    (['export', '--workdir=/no/such/run'], '--workdir=/no/such/run: no config.json there'),
    (['export', '--wokdir=w'], "Unknown command line flag 'wokdir'"),
])
def test_usage_errors_are_one_line(args, message, capsys):
  assert pretrained_cli.main(args) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: ') and message in err[0]


def test_bad_scores_file_is_named(tmp_path, capsys):
  (tmp_path / 'scores.json').write_text('{"set5": ')
  assert pretrained_cli.main(['export', f'--checkpoint={tmp_path}',
                              f'--scores={tmp_path}/scores.json']) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f'error: --scores={tmp_path}/scores.json: not valid JSON '
                 '(Expecting value at line 1)']


def test_help_lists_the_flags():
  proc = subprocess.run([sys.executable, '-m', 'jaxsr.pretrained', '--help'],
                        cwd=REPO_ROOT, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  for text in ('list', 'export', '--workdir', '--checkpoint', '--scores', '--dir'):
    assert text in proc.stdout, text


def test_commands_keep_working_from_the_shell():
  proc = subprocess.run([sys.executable, '-m', 'jaxsr.pretrained', 'list'],
                        cwd=REPO_ROOT, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  assert ['eeds', 'x3'] in [line.split()[:2] for line in proc.stdout.splitlines()]
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # the shipped records carry their checksum
    pretrained.load('eeds', 2)


def test_the_readme_table_shows_every_shipped_record(monkeypatch):
  monkeypatch.syspath_prepend(str(REPO_ROOT / 'benchmarks'))
  import pretrained_table
  readme = (REPO_ROOT / 'README.md').read_text()
  section = readme.split('<!-- pretrained:start -->\n')[1].split('\n<!-- pretrained:end -->')[0]
  assert section.strip() == pretrained_table.markdown().strip()  # regenerated
