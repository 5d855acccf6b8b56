"""Runs that differ only by seed, reported together with their spread.

A report compares configurations, not workdirs: runs whose configs are equal
but for `train.seed` (and settings that cannot change a result, such as the
data folder) form one `Group`, shown as mean ± std over its seeds. A group
is named from its config (EEDS, "EEDS unpool", "VDSR ×2"): the model's title,
then each model field it sets away from the model's default, then, only
where two groups would otherwise share a name, the other settings that tell
them apart.

Verdicts compare each group with the first at the same scale: the difference
of the mean PSNRs exceeds the seed spread when |Δ| > 2·sqrt(s_a²/n_a +
s_b²/n_b) (twice the standard error of the difference, s the sample
standard deviation over seeds); with a single run on either side the spread
is not measured and the verdict says so.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from typing import Any, Mapping, Sequence

from jaxsr import models
from jaxsr import runs as jaxsr_runs

MODEL_TITLES = {
    'bicubic': 'bicubic', 'srcnn': 'SRCNN', 'srcnn_955': 'SRCNN 9-5-5',
    'fsrcnn': 'FSRCNN', 'espcn': 'ESPCN', 'vdsr': 'VDSR', 'edsr': 'EDSR',
    'edsr_baseline': 'EDSR baseline', 'csc_decomp': 'CSC decomposition',
    'eed': 'EED', 'ees': 'EES', 'eeds': 'EEDS', 'dcnn': 'DCNN', 'dscnn': 'DSCNN',
    'dcnn_plain': 'DCNN plain', 'dscnn_plain': 'DSCNN plain',
}

# Keys that tell seeds apart or cannot change what a run learns.
NOT_COMPARED = frozenset({
    'train.seed', 'data.data_dir', 'data.prefetch', 'data.sampler',
    # tfds and folders give the same batches; the sets and fingerprint are compared.
    'data.source', 'resolved_data.source',
    'checkpoint.use_async', 'checkpoint.keep', 'train.log_every',
    # Run-length records (jaxsr.epochs): train.steps and batch_size say it.
    'train.epochs', 'train.steps_from', 'train.patches_per_epoch', 'train.steps_per_epoch',
    'train.per_device_batch_size',
    # What a run trained on (data parallel gives the same losses).
    'resolved_devices.platform', 'resolved_devices.device_kind',
    'resolved_devices.device_count', 'resolved_devices.process_count'})

SPREAD_RULE = ('|Δ| > 2·sqrt(s_a²/n_a + s_b²/n_b), s the sample standard deviation '
               'over seeds')


def flat_config(config: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  """{'optim.lr': 0.001, ...}; lists become tuples. model.kwargs (older workdirs)
  are read as model fields."""
  out = {}
  for key, value in config.items():
    dotted = f'{prefix}{key}'
    if dotted == 'model.kwargs':
      out.update({f'model.{k}': _hashable(v) for k, v in (value or {}).items()})
    elif isinstance(value, dict):
      out.update(flat_config(value, f'{dotted}.'))
    elif not (dotted.startswith('model.') and value is None):
      out[dotted] = _hashable(value)
  return out


def _hashable(value: Any) -> Any:
  return tuple(map(_hashable, value)) if isinstance(value, (list, tuple)) else value


def _describe(field: str, value: Any) -> str:
  if value is True:
    return field
  if value is False:
    return f'no {field}'
  if isinstance(value, str):
    return value
  if isinstance(value, tuple):
    return f'{field}={",".join(map(str, value))}'
  return f'{field}={value:g}' if isinstance(value, float) else f'{field}={value}'


def model_label(config: dict[str, Any]) -> str:
  """'EEDS unpool': the model's title and the fields it sets away from the defaults."""
  group = config['model']
  name = group['name']
  parts = [MODEL_TITLES.get(name, name)]
  defaults = models.get_model(name, scale=group['scale'], channels=group['channels'])
  for field, value in models.config_kwargs(group).items():
    if _hashable(value) != _hashable(getattr(defaults, field, None)):
      parts.append(_describe(field, _hashable(value)))
  if group['channels'] == 3:
    parts.append('RGB')
  return ' '.join(parts)


def _scales_text(scales: Sequence[float]) -> str:
  return '×' + ','.join(f'{s:g}' for s in scales)


@dataclasses.dataclass(frozen=True)
class Group:
  """Runs of one configuration, ordered by seed."""
  label: str
  runs: tuple[jaxsr_runs.Run, ...]

  @property
  def first(self) -> jaxsr_runs.Run:
    return self.runs[0]

  @property
  def n(self) -> int:
    return len(self.runs)

  @property
  def scales(self) -> tuple[float, ...]:
    return self.first.scales

  @property
  def seeds(self) -> list[int]:
    return [run.config.get('train', {}).get('seed', 0) for run in self.runs]


# Keys newer than some runs, at the value that runs without them trained with.
ADDED_KEYS_DEFAULTS = {'optim.lr_multipliers': '', 'data.hr_downscales': ()}


def _compared(run: jaxsr_runs.Run) -> dict[str, Any]:
  return {k: v for k, v in flat_config(run.config).items()
          if k not in NOT_COMPARED and ADDED_KEYS_DEFAULTS.get(k, object()) != v}


def group_runs(runs: Sequence[jaxsr_runs.Run],
               names: Mapping[str, str] | None = None) -> list[Group]:
  """Runs grouped by config (all but the seed), in order of first appearance.

  names: {workdir folder name: label} for the groups holding those runs, in
  place of the label made from the config (a ValueError for a name that is
  no run's, or two names for one group).
  """
  keyed: dict[str, list[jaxsr_runs.Run]] = {}
  for run in runs:
    key = json.dumps(_compared(run), sort_keys=True, default=str)
    keyed.setdefault(key, []).append(run)
  members = [sorted(rs, key=lambda r: r.config.get('train', {}).get('seed', 0))
             for rs in keyed.values()]
  _warn_seed_names_apart(members)
  labels = [model_label(rs[0].config) for rs in members]
  for label in set(labels):
    same = [i for i, other in enumerate(labels) if other == label]
    if len(same) > 1:
      for i, extra in zip(same, _distinctions([members[i][0] for i in same])):
        labels[i] = ' '.join([label, *extra])
  for i, label in enumerate(labels):
    if labels.count(label) > 1:
      labels[i] = f'{label} ({members[i][0].workdir.name})'
  _name_groups(labels, members, names or {})
  return [Group(label, tuple(rs)) for label, rs in zip(labels, members)]


def _name_groups(labels: list[str], members: list[list[jaxsr_runs.Run]],
                 names: Mapping[str, str]) -> None:
  folders = {run.workdir.name: i for i, rs in enumerate(members) for run in rs}
  unknown = sorted(set(names) - set(folders))
  if unknown:
    raise ValueError(f'--labels names {", ".join(unknown)}, which is no run of this '
                     f'report; the runs: {", ".join(folders)}')
  named: dict[int, str] = {}
  for folder, label in names.items():
    i = folders[folder]
    if i in named and named[i] != label:
      raise ValueError(f'--labels gives two labels to the group of {folder}: '
                       f'{named[i]!r} and {label!r}')
    named[i] = labels[i] = label


def _distinctions(runs: Sequence[jaxsr_runs.Run]) -> list[list[str]]:
  """For runs of one model label: what sets each apart (scales, steps, key=value)."""
  flats = [_compared(r) for r in runs]
  keys = sorted({k for f in flats for k in f})
  differing = [k for k in keys if len({json.dumps(f.get(k), default=str)
                                       for f in flats}) > 1]
  out = []
  for run, values in zip(runs, flats):
    parts = []
    if any(k in ('model.scale', 'data.scales') for k in differing):
      parts.append(_scales_text(run.scales))
    for key in differing:
      if key in ('model.scale', 'data.scales') or key.startswith('model.'):
        continue
      value = values.get(key)
      parts.append(f'{value:,} steps' if key == 'train.steps' and value is not None
                   else f'{key}={_describe_value(value)}')
    out.append(parts)
  return out


def _describe_value(value: Any) -> str:
  if isinstance(value, tuple):
    return ','.join(map(str, value))
  return f'{value:g}' if isinstance(value, float) else str(value)


def _warn_seed_names_apart(members: list[list[jaxsr_runs.Run]]) -> None:
  """Workdirs named as seeds of one point (x_seed0, x_seed1) whose configs differ."""
  by_name: dict[str, set[int]] = {}
  for i, rs in enumerate(members):
    for run in rs:
      stem, found = re.subn(r'_seed\d+$', '', run.workdir.name)
      if found:
        by_name.setdefault(stem, set()).add(i)
  for stem, groups in sorted(by_name.items()):
    if len(groups) > 1:
      print(f'warning: {stem}_seed* runs differ in more than train.seed, so they '
            'are reported apart', file=sys.stderr, flush=True)


# --- Statistics ---

@dataclasses.dataclass(frozen=True)
class Spread:
  """mean, sample std (None for one value) and count of one metric over seeds."""
  mean: float
  std: float | None
  n: int


def spread(values: Sequence[float]) -> Spread:
  n = len(values)
  mean = math.fsum(values) / n
  std = (math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
         if n > 1 else None)
  return Spread(mean, std, n)


def metric_spread(group: Group, scores: Sequence[Any], set_name: str, scale_key: str,
                  metric: str) -> Spread:
  """`metric` of `set_name` at `scale_key` over the group's runs (scores: one per run)."""
  return spread([s.sets[set_name][scale_key][metric] for s in scores])


def format_spread(s: Spread, digits: int) -> str:
  text = f'{s.mean:.{digits}f}'
  return text if s.std is None else f'{text} ± {s.std:.{digits}f}'


@dataclasses.dataclass(frozen=True)
class Verdict:
  scale: float
  set_name: str
  label: str
  reference: str
  a: Spread   # the group
  b: Spread   # the reference (the first group at this scale)

  @property
  def delta(self) -> float:
    return self.a.mean - self.b.mean

  @property
  def threshold(self) -> float | None:
    """2 · the standard error of the difference; None when a side has one run."""
    if self.a.std is None or self.b.std is None:
      return None
    return 2 * math.sqrt(self.a.std ** 2 / self.a.n + self.b.std ** 2 / self.b.n)

  @property
  def exceeds(self) -> bool | None:
    return None if self.threshold is None else abs(self.delta) > self.threshold

  def line(self, set_title: str) -> str:
    counts = f'n = {self.a.n} / {self.b.n}'
    head = (f'×{self.scale:g} {set_title}: {self.label} − {self.reference} = '
            f'{self.delta:+.2f} dB ({format_spread(self.a, 2)} vs '
            f'{format_spread(self.b, 2)}, {counts})')
    if self.threshold is None:
      return f'{head}: seed spread not measured (one run), undecided'
    word = 'exceeds' if self.exceeds else 'within'
    return f'{head}; 2·SE = {self.threshold:.2f} dB: {word} the seed spread'

  def as_dict(self) -> dict[str, Any]:
    return {'scale': self.scale, 'set': self.set_name, 'group': self.label,
            'reference': self.reference, 'delta_psnr_y': self.delta,
            'threshold': self.threshold, 'exceeds_seed_spread': self.exceeds,
            'n': self.a.n, 'reference_n': self.b.n}
