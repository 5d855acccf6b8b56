"""Image sets by name or folder, the data root, the embedded default, bad input."""

import csv
import socket

import numpy as np
import pytest
from PIL import Image

from jaxsr import datasets
from jaxsr import image_io
from jaxsr.datasets import tfds_sets


def test_data_root_resolution(monkeypatch, tmp_path):
  monkeypatch.setenv('JAXSR_DATA_DIR', str(tmp_path / 'env'))
  assert datasets.data_root(tmp_path / 'flag') == tmp_path / 'flag'
  assert datasets.data_root() == tmp_path / 'env'
  monkeypatch.delenv('JAXSR_DATA_DIR')
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  assert datasets.data_root() == tmp_path / 'cache' / 'jaxsr' / 'datasets'


def test_registered_sets_from_the_shared_root(data_dir):
  sizes = {'set5': 5, 'set14': 14, 'b100': 100, 't91': 91, 'bsd200': 200}
  for name, n in sizes.items():
    assert len(datasets.get_dataset(name, data_dir)) == n
  set14 = datasets.get_dataset('set14', data_dir)
  bridge = set14.load(set14.image_names.index('bridge'))
  assert bridge.shape == (512, 512, 1) and bridge.dtype == np.uint8
  assert datasets.get_dataset('set5', data_dir).image_names == (
      'baby', 'bird', 'butterfly', 'head', 'woman')


def test_case_variants_and_hr_subfolder(tmp_path):
  (tmp_path / 'Set5' / 'HR').mkdir(parents=True)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'Set5' / 'HR' / 'a.png')
  image_set = datasets.get_dataset('set5', tmp_path)
  assert image_set.name == 'set5' and image_set.image_names == ('a',)
  assert datasets.has_dataset('set5', tmp_path)
  assert not datasets.has_dataset('set14', tmp_path)


def test_any_folder_is_a_set_named_after_it(tmp_path):
  folder = tmp_path / 'holiday'
  folder.mkdir()
  Image.fromarray(np.full((5, 6, 3), 7, np.uint8)).save(folder / 'b.png')
  Image.fromarray(np.full((5, 6), 9, np.uint8)).save(folder / 'a.bmp')
  Image.fromarray(np.full((5, 6, 3), 200, np.uint8)).save(folder / 'c.jpg')
  (folder / 'notes.txt').write_text('not an image')
  image_set = datasets.get_dataset(str(folder))
  assert image_set.name == 'holiday'
  assert image_set.image_names == ('a', 'b', 'c')
  assert image_set.load(0).shape == (5, 6, 1)
  assert image_set.load(1)[0, 0, 0] == 7


def test_embedded_default_needs_no_data():
  train = datasets.get_dataset('embedded_train')
  test = datasets.get_dataset('embedded_test')
  assert len(train) >= 5 and len(test) == 3
  assert not set(train.image_names) & set(test.image_names)
  for img in test:
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    assert img.std() > 20  # real photos, not flat placeholders


def test_missing_data_root(tmp_path):
  with pytest.raises(datasets.DatasetError, match=r'data root .*nothere.* does not exist'):
    datasets.get_dataset('set5', tmp_path / 'nothere')


def test_unknown_set_lists_valid_names():
  with pytest.raises(datasets.DatasetError, match=r"unknown set 'set6'.*'set5'.*folder"):
    datasets.get_dataset('set6')


def test_registered_set_missing_under_root(tmp_path):
  with pytest.raises(datasets.DatasetError, match=r"set 'urban100': no folder urban100/"):
    datasets.get_dataset('urban100', tmp_path)


def test_empty_folder(tmp_path):
  (tmp_path / 'empty').mkdir()
  with pytest.raises(datasets.DatasetError, match=r'empty: no images \(expected .*\.png'):
    datasets.get_dataset(str(tmp_path / 'empty'))


def test_truncated_and_unreadable_images_name_the_file(tmp_path):
  folder = tmp_path / 'bad'
  folder.mkdir()
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
      folder / 'whole.png')
  data = (folder / 'whole.png').read_bytes()
  (folder / 'cut.png').write_bytes(data[:len(data) // 2])
  (folder / 'fake.png').write_text('hello')
  (folder / 'zero.png').write_bytes(b'')
  image_set = datasets.get_dataset(str(folder))
  messages = {}
  for i, name in enumerate(image_set.image_names):
    try:
      image_set.load(i)
    except image_io.ImageReadError as e:
      messages[name] = str(e)
  assert set(messages) == {'cut', 'fake', 'zero'}
  assert 'cut.png: truncated or corrupt' in messages['cut']
  assert 'fake.png: not an image' in messages['fake']
  assert 'zero.png: empty file' in messages['zero']


def _png(path, value=0, shape=(8, 8, 3)) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  image = np.full(shape, value, np.uint8)
  Image.fromarray(image[..., 0] if shape[-1] == 1 else image).save(path)


def test_registry_names():
  assert set(datasets.list_datasets()) >= {
      'set5', 'set14', 'b100', 'urban100', 't91', 'bsd200', 'div2k',
      'embedded_train', 'embedded_test'}


def test_real_images_match_the_manifest(data_dir):
  with open(data_dir / 'MANIFEST.tsv', newline='') as f:
    rows = [r for r in csv.DictReader(f, delimiter='\t') if r['set'] in ('set5', 'set14')]
  sets = {name: datasets.get_dataset(name, data_dir) for name in ('set5', 'set14')}
  for row in rows:
    image_set = sets[row['set']]
    image = image_set.load(image_set.image_names.index(row['file'][:-4]))
    channels = 1 if row['mode'] == 'L' else 3
    assert image.shape == (int(row['height']), int(row['width']), channels), row['file']
  # A folder path is a set too, named after the folder.
  by_path = datasets.get_dataset(str(data_dir / 'set5'))
  assert by_path.image_names == sets['set5'].image_names


def test_folder_layouts(tmp_path):
  _png(tmp_path / 'BSD100' / 'hr' / 'x.png')          # alias, lower-case hr/
  _png(tmp_path / 'div2k' / 'DIV2K_train_HR' / '0001.png')
  _png(tmp_path / 'div2k' / 'DIV2K_valid_HR' / '0801.png')
  _png(tmp_path / 'T91' / 't1.png')
  _png(tmp_path / 't91' / 't2.png')                   # the exact case wins
  assert datasets.get_dataset('b100', tmp_path).paths[0].parent.name == 'hr'
  assert datasets.get_dataset('div2k', tmp_path).image_names == ('0001',)
  assert datasets.get_dataset('div2k_valid', tmp_path).image_names == ('0801',)
  assert datasets.get_dataset('T91', tmp_path).image_names == ('t2',)
  assert datasets.get_dataset('t91', tmp_path).name == 't91'
  flat = tmp_path / 'flat'
  _png(flat / 'DIV2K_train_HR' / '0002.png')
  assert datasets.get_dataset('div2k', flat).image_names == ('0002',)


def test_data_root_from_environment(tmp_path, monkeypatch):
  _png(tmp_path / 'set5' / 'a.png')
  monkeypatch.setenv('JAXSR_DATA_DIR', str(tmp_path))
  assert datasets.has_dataset('set5')
  assert datasets.get_dataset('set5').paths == (tmp_path / 'set5' / 'a.png',)
  monkeypatch.setenv('JAXSR_DATA_DIR', str(tmp_path / 'gone'))
  with pytest.raises(datasets.DatasetError, match=r'gone \(from \$JAXSR_DATA_DIR\).*'
                     r'point \$JAXSR_DATA_DIR or --data_dir at the folder holding set5/'):
    datasets.get_dataset('set5')
  assert not datasets.has_dataset('set5')
  # The embedded sets need no data root.
  assert len(datasets.get_dataset('EMBEDDED_TEST')) == 3


def test_default_root_error_says_it_is_the_default(tmp_path, monkeypatch):
  monkeypatch.delenv('JAXSR_DATA_DIR', raising=False)
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  with pytest.raises(datasets.DatasetError, match=r'cache/jaxsr/datasets \(the default'):
    datasets.get_dataset('set14')


def test_hidden_files_skipped_and_names_unique(tmp_path):
  _png(tmp_path / 'a' / 'x.png')
  (tmp_path / 'a' / '._x.png').write_bytes(b'macOS resource fork')
  assert datasets.get_dataset(str(tmp_path / 'a')).image_names == ('x',)
  _png(tmp_path / 'b' / 'x.png')
  _png(tmp_path / 'b' / 'x.bmp')
  with pytest.raises(datasets.DatasetError, match=r'b: images share a name: x.bmp, x'):
    datasets.get_dataset(str(tmp_path / 'b'))


def test_bad_paths(tmp_path):
  with pytest.raises(datasets.DatasetError, match=r'nowhere: no such folder'):
    datasets.get_dataset(str(tmp_path / 'nowhere'))
  _png(tmp_path / 'one.png')
  with pytest.raises(datasets.DatasetError, match=r'one.png: is a file'):
    datasets.get_dataset(str(tmp_path / 'one.png'))
  (tmp_path / 'empty').mkdir()
  assert not datasets.has_dataset(str(tmp_path / 'empty'))


def test_bad_image_is_a_dataset_error_too(tmp_path):
  (tmp_path / 'set5').mkdir()
  (tmp_path / 'set5' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n')
  image_set = datasets.get_dataset('set5', tmp_path)
  with pytest.raises(datasets.DatasetError, match=r"broken.png: .*set 'set5'"):
    image_set.load(0)
  with pytest.raises(image_io.ImageReadError):
    image_set.load(0)


def test_embedded_sets_are_fixed_and_sane():
  train = datasets.get_dataset('embedded_train')
  test = datasets.get_dataset('embedded_test')
  assert test.image_names == ('chelsea', 'coffee', 'rocket')
  assert train.paths == () and len(train.loaders) == len(train)
  for image in train:
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] in (1, 3)
    assert min(image.shape[:2]) >= 256
  again = datasets.get_dataset('embedded_test')
  np.testing.assert_array_equal(test.load(0), again.load(0))


def test_image_set_checks_its_fields():
  with pytest.raises(ValueError, match='2 names need as many paths'):
    datasets.ImageSet(name='x', image_names=('a', 'b'), paths=())


@pytest.fixture
def no_network(monkeypatch):
  def refuse(*args, **kwargs):
    raise OSError('network disabled in tests')
  monkeypatch.setattr(socket, 'create_connection', refuse)
  monkeypatch.setattr(socket.socket, 'connect', refuse)


def test_tfds_set_from_manual_pngs(tmp_path, no_network):
  rng = np.random.default_rng(1)
  images = {'a': rng.integers(0, 256, (9, 7, 3), np.uint8),
            'b': rng.integers(0, 256, (6, 10, 1), np.uint8),
            'c': rng.integers(0, 256, (8, 8, 3), np.uint8)}
  (tmp_path / 'manual' / 'Set5').mkdir(parents=True)
  for name, image in images.items():
    image_io.write_image(tmp_path / 'manual' / 'Set5' / f'{name}.png', image)
  image_set = tfds_sets.load_tfds_set('set5', tmp_path / 'tfds',
                                      manual_dir=tmp_path / 'manual')
  assert image_set.image_names == ('a', 'b', 'c')
  for i, expected in enumerate(images.values()):
    np.testing.assert_array_equal(image_set.load(i), expected)


def test_div2k_tfds_from_extracted_folders(tmp_path, no_network):
  rng = np.random.default_rng(2)
  manual = tmp_path / 'manual'
  hr = {'0001': (16, 12), '0801': (12, 20), '0802': (8, 8)}
  for name, (h, w) in hr.items():
    split = 'train' if name < '0801' else 'valid'
    image = rng.integers(0, 256, (h, w, 3), np.uint8)
    hr_dir = manual / f'DIV2K_{split}_HR'
    lr_dir = manual / f'DIV2K_{split}_LR_bicubic' / 'X2'
    hr_dir.mkdir(parents=True, exist_ok=True)
    lr_dir.mkdir(parents=True, exist_ok=True)
    image_io.write_image(hr_dir / f'{name}.png', image)
    image_io.write_image(lr_dir / f'{name}x2.png', image[::2, ::2])
  valid = tfds_sets.load_tfds_set('div2k/bicubic_x2', tmp_path / 'tfds',
                                  manual_dir=manual)
  assert (tmp_path / 'tfds' / 'div2k' / 'bicubic_x2' / '2.0.0').is_dir()
  assert sorted(i.shape[:2] for i in valid) == sorted([hr['0801'], hr['0802']])
  train = tfds_sets.load_tfds_set('div2k/bicubic_x2', tmp_path / 'tfds', split='train')
  assert train.load(0).shape == (16, 12, 3)
