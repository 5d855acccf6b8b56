"""configs/: leaves (no jax, flax or jaxsr when loaded), their arguments, sweeps and model fields."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap

from absl import flags
import jax
import pytest

from configs import common
from jaxsr import config_checks
from jaxsr import evaluators
from jaxsr import models
from jaxsr import runs
from jaxsr import train

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted(p for p in (REPO / 'configs').glob('*.py')
                 if p.stem not in ('__init__', 'common'))

# Loads every config by path as jaxsr.main does (ml_collections' config_flags),
# with and without runlocal, and resolves its sweep; prints what was imported.
_LOAD_ALL = textwrap.dedent("""
    import json, pathlib, sys
    from absl import flags
    from ml_collections import config_flags
    for path in sys.argv[1:]:
      for arg in ('', ':runlocal'):
        argv = ['main', f'--config={path}{arg}']
        values = flags.FlagValues()
        holder = config_flags.DEFINE_config_file('config', flag_values=values, sys_argv=argv)
        values(argv)
        holder.value.model.name
    import importlib.util
    from configs import common
    for path in sys.argv[1:]:
      spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      for point in module.get_sweep():
        common.resolve(module.get_config, point, 'runlocal')
    print(json.dumps({'common': common.__file__, 'modules': sorted(sys.modules)}))
""")


def load_config_module(path: pathlib.Path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize('where', ['repo_root', 'elsewhere'])
def test_configs_load_without_jax_flax_or_jaxsr(where, tmp_path):
  """From the repository root, and from another folder (configs is installed)."""
  cwd = REPO if where == 'repo_root' else tmp_path
  paths = [str(p.relative_to(REPO)) if where == 'repo_root' else str(p) for p in CONFIGS]
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  proc = subprocess.run([sys.executable, '-c', _LOAD_ALL, *paths], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  loaded = json.loads(proc.stdout.splitlines()[-1])
  assert pathlib.Path(loaded['common']) == REPO / 'configs' / 'common.py'
  heavy = [m for m in loaded['modules'] if m.split('.')[0] in ('jax', 'flax', 'optax', 'jaxsr')]
  assert not heavy, heavy


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_runlocal_samples_patches_as_the_model_needs(path):
  """`runlocal(on_bicubic=...)` is told by the config; it must agree with the registry."""
  module = load_config_module(path)
  for point in module.get_sweep():
    c = common.resolve(module.get_config, point, 'runlocal')
    on_bicubic = models.model_info(c.model.name).works_on_bicubic
    assert (c.data.patch_size == 0) == on_bicubic, (path.stem, point)
    assert c.data.patch_size or c.data.hr_patch_size


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_runlocal_decays_the_learning_rate_to_zero(path):
  """A short run ends on its decayed model: at a constant Adam 1e-3 the README's
  main job (EEDS x2, 600 steps) ended 0.7 dB below bicubic while it had been
  0.85 dB above at step 450."""
  module = load_config_module(path)
  c = module.get_config('runlocal')
  schedule = c.optim.schedule
  assert (schedule.name, schedule.final_fraction) == ('cosine', 0.0), path.stem


@pytest.mark.parametrize('name', ['vdsr', 'eeds'])
def test_the_adam_regime_is_the_full_size_run_in_runlocal_optimisation(name):
  module = load_config_module(REPO / 'configs' / f'{name}.py')
  paper, adam, quick = (module.get_config(a) for a in ('', 'regime=adam', 'runlocal'))
  assert (adam.optim.name, adam.optim.lr, adam.optim.schedule.name) == ('adam', 1e-3, 'cosine')
  assert (adam.train.steps, adam.train.batch_size, adam.train.loss_reduction) == (20_000, 16, 'mean')
  assert adam.optim.weight_decay == adam.optim.grad_clip_theta == 0
  assert adam.optim.to_dict() == quick.optim.to_dict()
  assert adam.data.to_dict() == paper.data.to_dict()  # all 291 images, the paper's patches


def test_eval_max_shapes_is_the_evaluators_default():
  assert common.EVAL_MAX_SHAPES == evaluators.EVAL_MAX_SHAPES
  assert common.base_config('eeds').eval.max_shapes == evaluators.EVAL_MAX_SHAPES


def test_parse_arg_types_values_like_the_defaults():
  a = common.parse_arg('scale=3,runlocal,lr=1e-2,name=x', scale=2, lr=0.1, name='', runlocal=False)
  assert a.to_dict() == {'scale': 3, 'lr': 0.01, 'name': 'x', 'runlocal': True}
  assert isinstance(a.scale, int)
  args = {'variant': 'eed', 'scale': 3, 'lr': 0.01, 'runlocal': True, 'augment': False}
  assert common.format_args(args) == 'variant=eed,scale=3,lr=0.01,runlocal,augment=False'
  assert common.parse_arg(common.format_args(args), variant='', scale=2, lr=0.1,
                          runlocal=False, augment=True).to_dict() == args


@pytest.mark.parametrize('config,arg,message', [
    ('eeds', 'varaint=ees', r"config argument 'varaint' is not one of \['regime', 'runlocal', 'scale'"),
    ('eeds', 'scale=three', r"config argument scale='three': expected a int like 2"),
    ('edsr', 'variant=large', r"config argument variant='large'; valid: \['baseline', 'edsr'\]"),
    ('srcnn', 'variant=935', r"variant='935'; valid: \['915', '955'\]"),
    ('fsrcnn', 'scale=5', r'config argument scale=5; valid: \[2, 3, 4\]'),
    ('vdsr', 'regime=sgd', r"config argument regime='sgd'; valid: \['paper', 'adam'\]"),
])
def test_a_bad_config_argument_names_it(config, arg, message):
  module = load_config_module(REPO / 'configs' / f'{config}.py')
  with pytest.raises(common.ConfigArgumentError, match=message):
    module.get_config(arg)


def test_grid_and_points():
  points = common.grid(variant=['eed', 'eeds'], scale=[2, 3], overrides={'optim.lr': [0.1]})
  assert [p.config_arg('runlocal') for p in points] == [
      'runlocal,variant=eed,scale=2', 'runlocal,variant=eed,scale=3',
      'runlocal,variant=eeds,scale=2', 'runlocal,variant=eeds,scale=3']
  assert all(p.overrides == {'optim.lr': 0.1} for p in points)
  assert common.Point().config_arg() == ''
  with pytest.raises(common.ConfigArgumentError, match='sets scale, which the sweep varies'):
    points[0].config_arg('runlocal,scale=4')


def test_apply_overrides_sets_a_copy_and_rejects_unknown_keys():
  c = common.base_config('eeds')
  changed = common.apply_overrides(c, {'optim.schedule.name': 'cosine', 'train.steps': 5})
  assert (changed.optim.schedule.name, changed.train.steps) == ('cosine', 5)
  assert (c.optim.schedule.name, c.train.steps) == ('constant', 0)
  with pytest.raises(common.ConfigArgumentError,
                     match=r"override train.stepz: config.train has no key 'stepz'; "
                           r"valid: \['batch_size', 'epochs', 'init_from', 'log_every', 'loss', "
                           r"'loss_reduction', 'per_device_batch_size', 'seed', 'steps'\]"):
    common.apply_overrides(c, {'train.stepz': 5})
  with pytest.raises(common.ConfigArgumentError, match='config.train.steps is a value'):
    common.apply_overrides(c, {'train.steps.x': 5})
  assert common.check_key(c, 'optim.schedule') is not None


# --- Every constructor field of every model is a config key (--config.model.<field>). ---

# For each registered model: a config (file, argument) that trains it, and a field to change.
FIELD_CHANGES = {
    'bicubic': ('bicubic.py', '', 'dtype', 'bfloat16'),
    'srcnn': ('srcnn.py', '', 'features', (32, 16)),
    'srcnn_955': ('srcnn.py', 'variant=955', 'kernel_sizes', (9, 3, 5)),
    'fsrcnn': ('fsrcnn.py', '', 'd', 32),
    'espcn': ('espcn.py', '', 'activation', 'relu'),
    'vdsr': ('vdsr.py', '', 'depth', 5),
    'edsr_baseline': ('edsr.py', '', 'num_blocks', 4),
    'edsr': ('edsr.py', 'variant=edsr', 'res_scale', 0.2),
    'csc_decomp': ('csc_decomp.py', '', 'phi_h', 5.0),
    'eed': ('eeds.py', 'variant=eed', 'features', 32),
    'ees': ('eeds.py', 'variant=ees', 'shallow_features', (8, 16)),
    'eeds': ('eeds.py', '', 'num_residual_units', 3),
    'dcnn': ('dcnn.py', '', 'num_residual_units', 2),
    'dscnn': ('dcnn.py', 'variant=dscnn', 'global_residual', True),
    'dcnn_plain': ('dcnn.py', 'variant=dcnn_plain', 'num_layers', 6),
    'dscnn_plain': ('dcnn.py', 'variant=dscnn_plain', 'features', 16),
}


def parse_main_flags(*argv: str):
  """The config jaxsr.main builds from these flags (a fresh set of absl flags)."""
  argv = ['main', *argv]
  values = flags.FlagValues()
  holder = config_checks.define_config_flag('config', 'config', flag_values=values,
                                            sys_argv=argv)
  values(argv)
  return holder.value


def test_every_registered_model_has_a_field_change():
  assert set(FIELD_CHANGES) == set(models.list_models())


@pytest.mark.parametrize('name', sorted(FIELD_CHANGES))
def test_every_model_field_is_a_config_key(name):
  file, arg, field, value = FIELD_CHANGES[name]
  config = str(REPO / 'configs' / file) + (f':{arg}' if arg else '')
  c = parse_main_flags(f'--config={config}', f'--config.model.{field}={value}')
  assert c.model.name == name
  config_checks.validate(c, device_count=1)
  default = models.get_model(name, scale=c.model.scale, channels=c.model.channels)
  assert getattr(models.from_config(c.model), field) == value != getattr(default, field)
  # The fields the command line leaves alone keep the model's defaults.
  unchanged = parse_main_flags(f'--config={config}')
  fields = lambda m: {f: getattr(m, f) for f in models.config_fields(name)}
  assert fields(models.from_config(unchanged.model)) == fields(
      models.from_config(c.model).clone(**{field: getattr(default, field)}))


def test_an_unknown_model_field_is_named_with_the_valid_ones():
  with pytest.raises(flags.Error, match=r"--config.model.num_residual_unit: eeds has no field "
                                        r"'num_residual_unit'; valid: \[.*'num_residual_units'"):
    parse_main_flags(f'--config={REPO / "configs" / "eeds.py"}',
                     '--config.model.num_residual_unit=3')


def test_a_model_field_of_the_wrong_type_names_the_key():
  c = parse_main_flags(f'--config={REPO / "configs" / "eeds.py"}',
                       '--config.model.num_residual_units=three')
  with pytest.raises(config_checks.ConfigError,
                     match=r"config.model.num_residual_units='three': eeds expects a value "
                           r"of type int, like 2"):
    config_checks.validate(c, device_count=1)


def test_workdirs_written_with_model_kwargs_still_load():
  """Before fields were keys, config.json held them under model.kwargs."""
  config = runs.read_config(REPO / 'docs' / 'results' / 'runs' / 'name-eeds_upsampling-unpool')
  assert config['model']['kwargs'] == {'upsampling': 'unpool'}
  assert models.from_config(config['model']).upsampling == 'unpool'
  assert models.config_kwargs({'name': 'eeds', 'upsampling': None, 'features': 8}) == {
      'features': 8}


def test_training_builds_the_model_a_field_override_asks_for(tmp_path):
  """Issue 16's command, in process: jaxsr.main --config=configs/eeds.py:runlocal
  --config.model.num_residual_units=3 (with a tiny run)."""
  c = parse_main_flags(f'--config={REPO / "configs" / "eeds.py"}:runlocal',
                       '--config.model.num_residual_units=3', '--config.train.steps=1',
                       '--config.train.batch_size=2', '--config.data.max_train_images=1',
                       '--config.eval.max_images=1', '--config.checkpoint.use_async=False')
  train.train_and_evaluate(c, tmp_path, devices=jax.devices()[:1])
  _, model, params, config = runs.load_trained(str(tmp_path), None, None)
  assert config['model']['num_residual_units'] == 3 and model.num_residual_units == 3
  default = models.get_model('eeds', scale=2)
  assert (len(jax.tree.leaves(params))
          > len(jax.tree.leaves(models.abstract_variables(default))))


def test_the_config_flag_belongs_to_the_module_defining_it():
  """So that `python -m jaxsr.main --help` lists --config."""
  values = flags.FlagValues()
  config_checks.define_config_flag('config', 'Training config file.', flag_values=values)
  assert values.find_module_defining_flag('config') == __name__
