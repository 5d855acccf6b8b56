"""Prepared training pairs in tfds: python -m jaxsr.prepare, TfdsSource, data.source."""

import json
import pathlib

import jax
import numpy as np
import pytest

from configs import common
from jaxsr import config_checks
from jaxsr import datasets
from jaxsr import metric_writers
from jaxsr import prepare
from jaxsr import train
from jaxsr.datasets import prepared
from jaxsr.datasets import run_sets
from jaxsr.datasets import sources
from jaxsr.datasets import tfds_pairs
from jaxsr.datasets import training_source

SCALES = (2, 3)


@pytest.fixture(scope='module')
def roots(photo_dirs, tmp_path_factory):
  """(manual dir holding t91/ and bsd200/, data dir with both prepared at x2, x3)."""
  manual = tmp_path_factory.mktemp('manual')
  for name, photos in (('t91', ['astronaut', 'rocket']), ('bsd200', ['coffee'])):
    (manual / name).mkdir()
    for photo in photos:
      (manual / name / f'{photo}.png').write_bytes(
          (photo_dirs / 'train' / f'{photo}.png').read_bytes())
  out = tmp_path_factory.mktemp('tfds')
  assert prepare.main(['--sets=t91,bsd200', '--scales=2,3', f'--manual_dir={manual}',
                       f'--data_dir={out}']) == 0
  return manual, out


def test_prepare_writes_hr_and_both_inputs_then_says_already_prepared(roots, capsys):
  manual, out = roots
  for name in ('t91_y_lr_x2_3', 't91_y_bicubic_x2_3', 'bsd200_y_lr_x2_3'):
    assert (out / 'sr_pairs' / name / '1.0.0' / 'dataset_info.json').is_file()
  assert (out / 'sr_training' / 't91' / '1.0.0' / 'dataset_info.json').is_file()
  capsys.readouterr()
  assert prepare.main(['--sets=t91', '--scales=2,3', f'--manual_dir={manual}',
                       f'--data_dir={out}']) == 0
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 3 and all(' already prepared ' in line for line in lines)
  # A subset of the prepared scales is found; a missing scale is not.
  assert prepared.prepared_dir(str(out), 't91', 1, 'lr', (3,))
  assert prepared.prepared_dir(str(out), 't91', 1, 'lr', (4,)) is None


def test_prepare_help_and_bad_flags_are_one_line(capsys, tmp_path):
  assert prepare.main(['--help']) == 0
  assert 'python -m jaxsr.prepare' in capsys.readouterr().out
  assert prepare.main(['--scales=2.5']) == 2
  assert prepare.main(['--sets=t91,nope']) == 2
  assert prepare.main(['--inputs=hr']) == 2
  assert prepare.main(['--sets=t91', f'--manual_dir={tmp_path}',
                       f'--data_dir={tmp_path}/out']) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 4 and all(e.startswith('error: ') for e in err), err
  assert 'nope' in err[1] and '--inputs' in err[2] and 't91' in err[3]


@pytest.mark.parametrize('on_bicubic', [False, True])
def test_tfds_source_equals_the_folder_source(roots, on_bicubic):
  manual, out = roots
  sets = ['t91', 'bsd200']
  want = training_source.FolderSource(sets, str(manual), channels=1, on_bicubic=on_bicubic)
  got = tfds_pairs.TfdsSource(sets, str(out), channels=1, on_bicubic=on_bicubic,
                              scales=SCALES)
  assert len(got) == len(want) == 3
  for i in range(3):
    assert got.hr_shape(i) == want.hr_shape(i)
    for s in SCALES:
      a, b = got.load(i, s), want.load(i, s)
      # Exact: the inputs are stored as computed, the target as its uint8 levels.
      np.testing.assert_array_equal(a.lr, b.lr)
      np.testing.assert_array_equal(a.hr, b.hr)
      assert a.lr.dtype == a.hr.dtype == np.float32 and a.step == b.step
  assert got.record == {**want.record, 'source': 'tfds'}
  assert got.record['sets'] == {'t91': 2, 'bsd200': 1}


def config_for(data_dir, source='auto', model='espcn'):
  c = common.base_config(model, scale=2)
  c.data.train, c.data.data_dir, c.data.source = 't91,bsd200', str(data_dir), source
  c.data.scales = SCALES
  return c


def test_data_source_resolution(roots):
  manual, out = roots
  open_source = sources.open_training_source
  sets = ['t91', 'bsd200']
  assert isinstance(open_source(config_for(out), sets), tfds_pairs.TfdsSource)
  assert isinstance(open_source(config_for(manual), sets), training_source.FolderSource)
  assert isinstance(open_source(config_for(manual, 'folders'), sets),
                    training_source.FolderSource)
  c = config_for(out, 'tfds')
  c.data.scales = (2, 4)  # x4 not prepared
  with pytest.raises(datasets.DatasetError,
                     match=r'no prepared pairs of t91, bsd200 .*x4.*python -m jaxsr.prepare '
                           r'--sets=t91,bsd200 --scales=2,4'):
    open_source(c, sets)
  with pytest.raises(datasets.DatasetError, match='config.data.source=folders'):
    open_source(config_for(out, 'tfds'), [str(manual / 't91')])


def test_source_tfds_without_prepared_data_names_the_command(roots):
  manual, _ = roots
  c = config_for(manual, 'tfds')
  c.data.train = 'auto'
  with pytest.raises(datasets.DatasetError, match=r'^config.data.source=tfds: .* holds no '
                     r'prepared pairs of t91, bsd200 .*--sets=t91,bsd200 --scales=2,3'):
    run_sets.train_sets(c)
  c.data.source, c.data.scales = 'tfdss', ()
  with pytest.raises(config_checks.ConfigError, match=r"config.data.source='tfdss'"):
    config_checks.validate(c, 1)


def tiny_run_config(data_dir, source, photo_dirs):
  c = config_for(data_dir, source)
  c.data.train = 'auto'
  c.model.features = (8, 8)
  c.data.scales = ()
  c.data.patch_size = 6
  c.train.steps, c.train.batch_size, c.train.log_every = 3, 8, 1
  c.optim.name, c.optim.lr = 'sgd', 0.05
  c.checkpoint.use_async = False
  c.eval.sets, c.eval.every = str(photo_dirs / 'test'), 1000
  return c


def test_training_on_tfds_equals_training_on_folders(roots, photo_dirs, tmp_path):
  manual, out = roots
  runs = {}
  for name, root, source in (('tfds', out, 'tfds'), ('folders', manual, 'folders')):
    train.train_and_evaluate(tiny_run_config(root, source, photo_dirs), tmp_path / name,
                             devices=jax.devices()[:1])
    runs[name] = [r['train/loss'] for r in metric_writers.read_metrics(tmp_path / name)
                  if 'train/loss' in r]
    recorded = json.loads((tmp_path / name / 'config.json').read_text())['resolved_data']
    assert recorded['source'] == source and recorded['sets'] == {'t91': 2, 'bsd200': 1}
    runs[name + '_fingerprint'] = recorded['fingerprint']
  assert len(runs['tfds']) == 3 and runs['tfds'] == runs['folders']
  assert runs['tfds_fingerprint'] == runs['folders_fingerprint']


def test_no_silent_fallback_to_the_embedded_photos(tmp_path, monkeypatch):
  monkeypatch.delenv(datasets.ENV_VAR, raising=False)
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))  # an empty default data root
  c = common.base_config('espcn', scale=2)
  with pytest.raises(datasets.DatasetError, match='config.data.train=embedded'):
    run_sets.train_sets(c)
  with pytest.raises(datasets.DatasetError, match='config.eval.sets=embedded_test'):
    run_sets.eval_sets(c)
  c.data.train = 'embedded'
  assert run_sets.train_sets(c) == ['embedded_train']
  assert run_sets.eval_sets(c) == ['embedded_test']
  quick = common.runlocal(common.base_config('espcn', scale=2), on_bicubic=False)
  assert run_sets.train_sets(quick) == ['embedded_train']


def test_prepare_to_gcs_and_read_back(roots, gcs_workdir, tmp_path, monkeypatch):
  manual, out = roots
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  assert prepare.main(['--sets=t91', '--scales=2', f'--manual_dir={manual}',
                       f'--data_dir={gcs_workdir}']) == 0
  remote = tfds_pairs.TfdsSource(['t91'], gcs_workdir, channels=1, on_bicubic=False,
                                 scales=(2,))
  local = tfds_pairs.TfdsSource(['t91'], str(out), channels=1, on_bicubic=False, scales=(2,))
  np.testing.assert_array_equal(remote.load(1, 2).lr, local.load(1, 2).lr)
  assert remote.record == local.record
  assert list((tmp_path / 'cache').rglob('dataset_info.json'))


def test_a_stale_local_copy_of_a_remote_dataset_is_replaced(roots, tmp_path, monkeypatch):
  _, out = roots
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  folder = prepared.prepared_dir(str(out), 't91', 1, 'lr', (2,))
  local = tfds_pairs._local_copy(folder)
  assert local != pathlib.Path(folder) and tfds_pairs._local_copy(folder) == local
  (local / 'dataset_info.json').write_text('{}')  # prepared again since
  assert tfds_pairs._local_copy(folder) == local
  assert (local / 'dataset_info.json').read_bytes() == (folder / 'dataset_info.json').read_bytes()
  assert sorted(p.name for p in local.parent.iterdir()) == [local.name, f'{local.name}.lock']


def test_processes_of_one_host_copy_a_remote_dataset_once(roots, tmp_path, monkeypatch):
  """Processes of one host (a pod host's, or one per GPU) that find the local
  copy stale at once: one copies, the others wait for it and use its copy
  (each used to copy it, at once, and one's rename of its copy into place
  could fail or set aside another's). Threads stand in for processes: they
  contend for the copy's file lock as processes do."""
  import threading
  import time
  _, out = roots
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  folder = prepared.prepared_dir(str(out), 't91', 1, 'lr', (2,))
  local = tfds_pairs._local_copy(folder)
  (local / 'dataset_info.json').write_text('{}')  # stale: prepared again since
  copies, running, most = [], [], []
  copy = tfds_pairs._copy_folder

  def slow_copy(src, dst):
    running.append(dst)
    most.append(len(running))
    time.sleep(0.3)  # long enough for every thread to find the copy stale
    copy(src, dst)
    copies.append(dst)
    running.remove(dst)

  monkeypatch.setattr(tfds_pairs, '_copy_folder', slow_copy)
  start = threading.Barrier(3)
  results, errors = [], []

  def process():
    start.wait()
    try:
      results.append(tfds_pairs._local_copy(folder))
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)

  threads = [threading.Thread(target=process) for _ in range(3)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=30)
  assert not errors and results == [local] * 3
  assert len(copies) == 1 and max(most) == 1
  assert (local / 'dataset_info.json').read_bytes() == (folder / 'dataset_info.json').read_bytes()
  assert sorted(p.name for p in local.parent.iterdir()) == [local.name, f'{local.name}.lock']


def test_evaluation_reads_prepared_hr_sets(photo_dirs, tmp_path):
  """A data root holding only the prepared datasets evaluates on them: the
  same images and names as the folder."""
  from jaxsr import evaluators
  manual = tmp_path / 'manual'
  (manual / 'set5').mkdir(parents=True)
  (manual / 'set5' / 'chelsea.png').write_bytes((photo_dirs / 'test' / 'chelsea.png').read_bytes())
  out = tmp_path / 'tfds'
  assert prepare.main(['--sets=set5', f'--manual_dir={manual}', f'--data_dir={out}']) == 0
  from_tfds = sources.image_set('set5', str(out))
  assert from_tfds.loaders and from_tfds.image_names == ('chelsea',)
  np.testing.assert_array_equal(from_tfds.load(0), datasets.get_dataset('set5', manual).load(0))
  ev = evaluators.BenchmarkEvaluator('set5', [2], data_dir=str(out))
  assert ev.image_set.loaders and ev.bicubic()
  c = common.base_config('espcn', scale=2)
  c.data.data_dir = str(out)
  assert run_sets.eval_sets(c) == ['set5']
