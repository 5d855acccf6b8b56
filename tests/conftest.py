"""Test-wide JAX settings: small compile times on the 2-core CI machine."""

import os
import pathlib

# Must precede the first jax import of the session: 8 CPU devices, so the
# data-parallel tests can compare 1 and 8 devices in one process.
if 'xla_force_host_platform_device_count' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_force_host_platform_device_count=8').strip()

# Most tests run tiny shapes, where XLA's optimisation passes cost more than
# they save; the environment variable carries the setting into the jaxsr
# commands the tests start as subprocesses (a third off their run time).
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', 'true')

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update('jax_disable_most_optimizations', True)  # also where the variable was set

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def save_run(workdir: pathlib.Path, cfg, step: int = 0, seed: int = 0):
  """A training workdir as jaxsr.main leaves it: `cfg` as config.json and a
  checkpoint at `step` of its model's initial parameters, which it returns."""
  import jax.numpy as jnp
  from jaxsr import checkpointing, models
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / 'config.json').write_text(cfg.to_json())
  model = models.from_config(cfg.model)
  params = model.init(jax.random.key(seed), jnp.zeros((1, 8, 8, model.channels)))
  ckpt = checkpointing.Checkpointer(workdir, use_async=False)
  ckpt.save(step, {'step': step, 'params': params}, force=True)
  ckpt.close()
  return params


def shared_data_dir() -> pathlib.Path | None:
  """The real benchmark images: $JAXSR_DATA_DIR, else ../shared/datasets."""
  env = os.environ.get('JAXSR_DATA_DIR')
  candidates = [pathlib.Path(env)] if env else []
  candidates.append(REPO_ROOT.parent / 'shared' / 'datasets')
  for path in candidates:
    if (path / 'set5').is_dir():
      return path
  return None


@pytest.fixture
def data_dir() -> pathlib.Path:
  path = shared_data_dir()
  if path is None:
    pytest.skip('benchmark images not found: set JAXSR_DATA_DIR to a folder '
                'holding set5/, set14/, b100/ (e.g. ../shared/datasets)')
  return path


@pytest.fixture(scope='session')
def gcs_root():
  """'gs://<bucket>' on a GCS emulator on loopback, for the whole session
  (gcsfs caches its endpoint per process, so one emulator serves every test)."""
  from gcs_emulator import running_emulator
  with running_emulator() as root:
    yield root


@pytest.fixture
def gcs_workdir(gcs_root, request):
  """A fresh gs:// folder per test."""
  return f'{gcs_root}/{request.node.name}'


@pytest.fixture(scope='session')
def photo_dirs(tmp_path_factory):
  """train/ (3 scikit-image photos, 96×128 crops) and test/ (one 64×80 crop)."""
  import skimage.data
  from PIL import Image
  root = tmp_path_factory.mktemp('photos')
  (root / 'train').mkdir()
  (root / 'test').mkdir()
  for name in ('astronaut', 'rocket', 'coffee'):
    Image.fromarray(getattr(skimage.data, name)()[:96, :128]).save(root / 'train' / f'{name}.png')
  Image.fromarray(skimage.data.chelsea()[100:164, 100:180]).save(root / 'test' / 'chelsea.png')
  return root
