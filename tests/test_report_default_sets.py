"""jaxsr.report's default --sets: the standard sets when present, else what the runs logged."""

import types

import numpy as np
import pytest
from PIL import Image

from jaxsr import report


def _run(*sets):
  return types.SimpleNamespace(rows=[{'step': 1, 'train/loss': 0.1},
                                     {'step': 2, **{f'eval/{s}/psnr_y': 30.0 for s in sets},
                                      **{f'eval/{s}/x2/psnr_y': 30.0 for s in sets}}])


def test_without_a_data_root_the_runs_logged_sets(tmp_path, monkeypatch):
  monkeypatch.delenv('JAXSR_DATA_DIR', raising=False)
  runs = [_run('embedded_test'), _run('embedded_test', 'my_photos')]
  assert report.default_sets(runs, str(tmp_path / 'none')) == ['embedded_test', 'my_photos']


def test_the_standard_sets_when_the_data_root_has_them(tmp_path):
  for name in report.STANDARD_SETS:
    (tmp_path / name).mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name / 'a.png')
  assert report.default_sets([_run('embedded_test')], str(tmp_path)) == list(
      report.STANDARD_SETS)


def test_nothing_to_go_on_is_one_clear_error(tmp_path):
  with pytest.raises(report.ReportError, match='give --sets'):
    report.default_sets([_run()], str(tmp_path / 'none'))
