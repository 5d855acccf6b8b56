"""tfds builders: prepared and read back without TensorFlow and without network."""

import functools
import http.server
import socket
import tarfile
import threading
import time
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jaxsr import image_io
from jaxsr.datasets import DatasetError, get_dataset, tfds_div2k, tfds_records, tfds_sets

_LOOPBACK = ('127.0.0.1', '::1', 'localhost')


@pytest.fixture(autouse=True)
def network(monkeypatch):
  """Refuses every connection but loopback ones; yields the refused hosts."""
  refused = []
  getaddrinfo, connect = socket.getaddrinfo, socket.socket.connect

  def guarded_getaddrinfo(host, *args, **kwargs):
    if host not in _LOOPBACK:
      refused.append(host)
      raise socket.gaierror(socket.EAI_NONAME, 'network disabled in tests')
    return getaddrinfo(host, *args, **kwargs)

  def guarded_connect(sock, address):
    if isinstance(address, tuple) and address[0] not in _LOOPBACK:
      refused.append(address[0])
      raise OSError('network disabled in tests')
    return connect(sock, address)

  monkeypatch.setattr(socket, 'getaddrinfo', guarded_getaddrinfo)
  monkeypatch.setattr(socket.socket, 'connect', guarded_connect)
  for var in ('http_proxy', 'https_proxy', 'all_proxy'):
    monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(var.upper(), raising=False)
  return refused


@functools.cache
def _photo() -> np.ndarray:
  import skimage.data
  return skimage.data.astronaut()


def _crops() -> dict[str, np.ndarray]:
  """Small crops, one of them grayscale (H, W, 1)."""
  gray = np.asarray(Image.fromarray(_photo()[180:212, 200:244]).convert('L'))
  return {'baby': _photo()[:48, :40], 'bird': _photo()[100:132, 300:356],
          'head': gray[..., None]}


def _write(folder, images, suffix='') -> None:
  folder.mkdir(parents=True, exist_ok=True)
  for name, image in images.items():
    image_io.write_image(folder / f'{name}{suffix}.png', image)


def _assert_set_equals(image_set, images) -> None:
  assert image_set.image_names == tuple(images)
  for i, expected in enumerate(images.values()):
    got = image_set.load(i)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


def test_set5_from_manual_folder(tmp_path, network):
  manual, data_dir = tmp_path / 'manual', tmp_path / 'tfds'
  _write(manual, _crops())
  image_set = tfds_sets.load_tfds_set('set5', data_dir, manual_dir=manual)
  assert image_set.name == 'set5'
  _assert_set_equals(image_set, _crops())
  prepared = data_dir / 'sr_benchmark' / 'set5' / '1.0.0'
  assert list(prepared.glob('sr_benchmark-test.array_record-*'))

  # tfds's own decoder repeats the grayscale image to its 3 channels.
  source = tfds.data_source('sr_benchmark/set5', split='test', data_dir=data_dir,
                            download=False)
  np.testing.assert_array_equal(source[2]['hr'],
                                np.repeat(_crops()['head'], 3, axis=-1))

  # Prepared once: the manual files are no longer needed.
  for path in manual.iterdir():
    path.unlink()
  _assert_set_equals(tfds_sets.load_tfds_set('SET5', data_dir), _crops())
  assert network == []


@pytest.mark.parametrize('archive_name', ['benchmark.tar', 'benchmark.zip'])
def test_set14_from_archive_takes_hr_folder(tmp_path, network, archive_name):
  tree, manual = tmp_path / 'tree', tmp_path / 'manual'
  _write(tree / 'benchmark' / 'Set14' / 'HR', _crops())
  _write(tree / 'benchmark' / 'Set14' / 'LR_bicubic' / 'X2',
         {k: v[::2, ::2] for k, v in _crops().items()}, suffix='x2')
  _write(tree / 'benchmark' / 'Set5' / 'HR', {'woman': _photo()[:8, :8]})
  _write(tree / '__MACOSX' / 'benchmark' / 'Set14' / 'HR', {'._baby': _photo()[:4, :4]})
  manual.mkdir()
  files = sorted(p for p in tree.rglob('*') if p.is_file())
  if archive_name.endswith('.zip'):
    with zipfile.ZipFile(manual / archive_name, 'w') as archive:
      for path in files:
        archive.write(path, path.relative_to(tree).as_posix())
  else:
    with tarfile.open(manual / archive_name, 'w') as archive:
      archive.add(tree / 'benchmark', 'benchmark')
  image_set = tfds_sets.load_tfds_set('set14', tmp_path / 'tfds', manual_dir=manual)
  _assert_set_equals(image_set, _crops())
  assert network == []


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

  def log_message(self, *args):
    pass


def test_download_then_offline_reuses_cached_archive(tmp_path, monkeypatch, network):
  served = tmp_path / 'served'
  _write(served / 'benchmark' / 'Set5' / 'HR', _crops())
  _write(served / 'benchmark' / 'Urban100' / 'HR', {'img001': _photo()[:24, :32]})
  with tarfile.open(tmp_path / 'benchmark.tar', 'w') as archive:
    archive.add(served / 'benchmark', 'benchmark')
  server = http.server.ThreadingHTTPServer(
      ('127.0.0.1', 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    url = f'http://127.0.0.1:{server.server_port}/benchmark.tar'
    monkeypatch.setattr(tfds_sets, 'BENCHMARK_URL', url)
    image_set = tfds_sets.load_tfds_set('set5', tmp_path / 'tfds')
  finally:
    server.shutdown()
    server.server_close()
  _assert_set_equals(image_set, _crops())
  # The server is gone: urban100 must come from tfds's download cache.
  urban = tfds_sets.load_tfds_set('urban100', tmp_path / 'tfds')
  _assert_set_equals(urban, {'img001': _photo()[:24, :32]})
  assert network == []


def test_offline_without_files_fails_fast(tmp_path, network):
  (tmp_path / 'manual').mkdir()
  start = time.monotonic()
  with pytest.raises(DatasetError, match=r'b100: .*manual dir .*cv\.snu\.ac\.kr'):
    tfds_sets.load_tfds_set('b100', tmp_path / 'tfds', manual_dir=tmp_path / 'manual')
  assert time.monotonic() - start < 10
  assert network == ['cv.snu.ac.kr']
  assert not (tmp_path / 'tfds' / 'sr_benchmark' / 'b100' / '1.0.0').exists()


def test_tfrecord_copy_is_a_clear_error(tmp_path):
  _write(tmp_path / 'manual', _crops())
  tfds_sets.load_tfds_set('set5', tmp_path / 'tfds', manual_dir=tmp_path / 'manual')
  # As if prepared elsewhere with TensorFlow, in tfds's default format.
  info = tmp_path / 'tfds' / 'sr_benchmark' / 'set5' / '1.0.0' / 'dataset_info.json'
  info.write_text(info.read_text().replace('"array_record"', '"tfrecord"'))
  with pytest.raises(DatasetError, match='sr_benchmark/set5 under .* not in array_record'):
    tfds_sets.load_tfds_set('set5', tmp_path / 'tfds')


def test_unknown_set(tmp_path):
  with pytest.raises(DatasetError, match="unknown tfds set 'set6'"):
    tfds_sets.load_tfds_set('set6', tmp_path)


@pytest.mark.parametrize('name', ['set5', 'set14'])
def test_real_images_match_get_dataset(tmp_path, data_dir, network, name):
  image_set = tfds_sets.load_tfds_set(name, tmp_path / 'tfds', manual_dir=data_dir)
  folder = get_dataset(name, data_dir)
  assert image_set.image_names == folder.image_names
  for i in range(len(folder)):
    np.testing.assert_array_equal(image_set.load(i), folder.load(i))
  assert network == []


def _zip_pngs(path, images: dict[str, np.ndarray]) -> str:
  with zipfile.ZipFile(path, 'w') as archive:
    for member, image in images.items():
      archive.writestr(member, tfds_sets._png_bytes(image))
  return str(path)


def test_div2k_catalog_builder_prepares_without_tensorflow(tmp_path, monkeypatch,
                                                           network):
  hr = {'0801': _photo()[:16, :24], '0802': _photo()[16:40, 8:20]}
  lr = {k: v[::2, ::2] for k, v in hr.items()}
  fake_downloads = {
      'valid_hr_url': _zip_pngs(tmp_path / 'vhr.zip', {
          f'DIV2K_valid_HR/{k}.png': v for k, v in hr.items()}),
      'valid_lr_url': _zip_pngs(tmp_path / 'vlr.zip', {
          f'DIV2K_valid_LR_bicubic/X2/{k}x2.png': v for k, v in lr.items()}),
      'train_hr_url': _zip_pngs(tmp_path / 'thr.zip', {
          'DIV2K_train_HR/0001.png': _photo()[:8, :8]}),
      'train_lr_url': _zip_pngs(tmp_path / 'tlr.zip', {
          'DIV2K_train_LR_bicubic/X2/0001x2.png': _photo()[:4, :4]}),
  }
  monkeypatch.setattr(tfds.download.DownloadManager, 'download',
                      lambda self, urls: {k: fake_downloads[k] for k in urls})
  monkeypatch.setattr(tfds_records, 'check_reachable', lambda *args: None)
  data_dir = tmp_path / 'tfds'
  image_set = tfds_div2k.load_div2k('validation', 'bicubic_x2', data_dir=data_dir)
  assert (data_dir / 'div2k' / 'bicubic_x2' / '2.0.0' / 'dataset_info.json').exists()
  assert image_set.name == 'div2k_validation'
  assert len(image_set) == 2
  # tfds shuffles the records: match them up by shape.
  by_shape = {v.shape: v for v in hr.values()}
  for image in image_set:
    np.testing.assert_array_equal(image, by_shape[image.shape])
  lr_set = tfds_div2k.load_div2k('validation', 'bicubic_x2', data_dir=data_dir,
                                image='lr')
  assert sorted(i.shape for i in lr_set) == sorted(v.shape for v in lr.values())
  train = tfds_div2k.load_div2k('train', 'bicubic_x2', data_dir=data_dir)
  np.testing.assert_array_equal(train.load(0), _photo()[:8, :8])
  assert network == []


def test_div2k_offline_fails_fast(tmp_path, network):
  start = time.monotonic()
  with pytest.raises(DatasetError,
                     match=r'div2k/bicubic_x4: .*DIV2K_valid_HR\.zip.*manual dir'):
    tfds_div2k.load_div2k('validation', 'bicubic_x4', data_dir=tmp_path)
  assert time.monotonic() - start < 10
  assert network == ['data.vision.ee.ethz.ch']


def test_t91_and_bsd200_from_the_data_root_as_manual_dir(tmp_path, network):
  root, data_dir = tmp_path / 'root', tmp_path / 'tfds'
  _write(root / 'yang91', _crops())
  _write(root / 'BSD200' / 'HR', dict(list(_crops().items())[:2]))
  t91 = tfds_sets.load_tfds_set('t91', data_dir, manual_dir=root)
  assert t91.name == 't91'
  _assert_set_equals(t91, _crops())
  _assert_set_equals(get_dataset('t91', root), _crops())
  bsd200 = tfds_sets.load_tfds_set('sr_training/bsd200', data_dir, manual_dir=root)
  _assert_set_equals(bsd200, dict(list(_crops().items())[:2]))
  assert (data_dir / 'sr_training' / 't91' / '1.0.0').is_dir()
  assert not network


def test_a_training_set_missing_from_the_manual_dir_is_one_error(tmp_path, network):
  (tmp_path / 'root').mkdir()
  with pytest.raises(DatasetError, match=r't91: found no t91/yang91 folder'):
    tfds_sets.load_tfds_set('t91', tmp_path / 'tfds', manual_dir=tmp_path / 'root')
  assert not network
