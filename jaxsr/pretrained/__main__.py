r"""List the shipped pretrained models, or export a trained run as one.

  python -m jaxsr.pretrained list
  python -m jaxsr.pretrained export --workdir=workdirs/eeds_x2 --scores=eeds_x2.json
  python -m jaxsr.pretrained export --checkpoint=ckpt/ --model=eeds --scale=3

`list` shows each model's scale, channels, parameter count, file size, Set5
score and whether its weights match their checksum. `export` writes
`<name>_x<scale>.msgpack` and `.json` (see jaxsr/pretrained/__init__.py).
"""

from __future__ import annotations

import json
import pathlib
import sys

from absl import flags

from jaxsr import command_line
from jaxsr import pretrained

FLAGS = flags.FlagValues()
_DIR = flags.DEFINE_string('dir', None, 'list: the folder to list (default: the package '
                           'folder, or $JAXSR_PRETRAINED_DIR).', flag_values=FLAGS)
_WORKDIR = flags.DEFINE_string('workdir', None, 'export: a training workdir.', flag_values=FLAGS)
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'export: a checkpoint folder (with '
                                  '--model, --scale).', flag_values=FLAGS)
_NAME = flags.DEFINE_string('name', None, 'export: the shipped name (default: the model '
                            'name).', flag_values=FLAGS)
_MODEL = flags.DEFINE_string('model', None, 'export: registered model name (with '
                             '--checkpoint).', flag_values=FLAGS)
_SCALE = flags.DEFINE_float('scale', None, 'export: scale (with --checkpoint).',
                            flag_values=FLAGS)
_CHANNELS = flags.DEFINE_enum('channels', None, ['1', '3'], 'export: 1 (Y) or 3 (RGB), '
                              'with --checkpoint.', flag_values=FLAGS)
_SCORES = flags.DEFINE_string('scores', None, 'export: JSON of scores to store '
                              '(jaxsr.evaluate --json_out).', flag_values=FLAGS)
_OUT_DIR = flags.DEFINE_string('out_dir', None, 'export: the folder to write (default: '
                               'the package folder).', flag_values=FLAGS)

_EXPORT_FLAGS = (_WORKDIR, _CHECKPOINT, _NAME, _MODEL, _SCALE, _CHANNELS, _SCORES, _OUT_DIR)
_COLUMNS = ('name', 'scale', 'channels', 'parameters', 'size', 'Set5 PSNR / SSIM (Y)',
            'trained (whole chain)', 'weights')


def _set5(meta: dict) -> str:
  scores = {k.lower(): v for k, v in meta.get('scores', {}).items()}.get('set5', {})
  got = scores.get(f'x{float(meta["scale"]):g}') or next(iter(scores.values()), None)
  return f"{got['psnr_y']:.2f} / {got['ssim_y']:.4f}" if got else 'n/a'


def _trained(meta: dict) -> str:
  """'13,000 steps, 107 min (cpu)': every run of the chain; the devices where
  the records say (they do since resolved_devices)."""
  chain = pretrained.training_chain(meta)
  if not chain:
    return '-'
  steps = sum(t.get('last_step') or 0 for t in chain)
  minutes = pretrained.chain_train_time_s(meta) / 60
  platforms = sorted({(t.get('devices') or {}).get('platform') for t in chain} - {None})
  return f'{steps:,} steps, {minutes:.0f} min' + (f' ({"/".join(platforms)})' if platforms else '')


def _row(record, meta: dict) -> tuple[str, ...]:
  blob = pretrained.weights_file(_DIR.value, record)
  size = f'{len(blob.read_bytes()) / 1e6:.2f} MB' if blob.is_file() else '-'
  return (meta['name'], ','.join(f'x{s:g}' for s in pretrained.record_scales(meta)),
          {1: 'Y', 3: 'RGB'}.get(int(meta['channels']), str(meta['channels'])),
          f"{meta['parameters']:,}" if 'parameters' in meta else '?', size, _set5(meta),
          _trained(meta), pretrained.weights_status(_DIR.value, record, meta))


def _list() -> int:
  rows, errors = [], []
  for record in pretrained.records(_DIR.value):
    try:
      rows.append(_row(record, pretrained.read_record(record)))
    except pretrained.PretrainedFileError as e:
      errors.append(e)
  if not rows and not errors:
    print(f'no pretrained weights in {pretrained.folder(_DIR.value)}')
  if rows:
    rows.insert(0, _COLUMNS)
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    for row in rows:
      print('  '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
  for e in errors:
    print(f'error: {e}', file=sys.stderr)
  return 1 if errors or any(r[-1] in ('damaged', 'missing') for r in rows[1:]) else 0


def _read_scores(path: str) -> dict:
  try:
    scores = json.loads(pathlib.Path(path).read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f'--scores={path}: not valid JSON ({e.msg} at line {e.lineno})') from None
  except OSError as e:
    raise OSError(f'--scores={path}: cannot read it ({e.strerror or e})') from None
  if not isinstance(scores, dict):
    raise ValueError(f'--scores={path}: expected a JSON object such as jaxsr.evaluate '
                     '--json_out writes')
  return scores


def _export() -> int:
  if bool(_WORKDIR.value) == bool(_CHECKPOINT.value):
    raise command_line.UsageError('export: give exactly one of --workdir and --checkpoint')
  if _WORKDIR.value and not (pathlib.Path(_WORKDIR.value) / 'config.json').is_file():
    raise command_line.UsageError(
        f'--workdir={_WORKDIR.value}: no config.json there, so not a training workdir '
        '(a bare checkpoint folder goes to --checkpoint, with --model and --scale)')
  scores = _read_scores(_SCORES.value) if _SCORES.value else None
  path = pretrained.export(_WORKDIR.value or _CHECKPOINT.value, _NAME.value, _SCALE.value,
                           _OUT_DIR.value, model=_MODEL.value,
                           channels=int(_CHANNELS.value) if _CHANNELS.value else None,
                           scores=scores)
  print(f'wrote {path} and {path.with_suffix(".msgpack").name}')
  return 0


def _run(positional: list[str]) -> int:
  commands = {'list': _list, 'export': _export}
  if len(positional) != 1 or positional[0] not in commands:
    raise command_line.UsageError(
        f'expected one command, list or export; got {" ".join(positional) or "none"}')
  if positional[0] == 'list':
    given = [f'--{f.name}' for f in _EXPORT_FLAGS if FLAGS[f.name].present]
    if given:
      raise command_line.UsageError(f'{", ".join(given)}: only for export')
  elif FLAGS['dir'].present:
    raise command_line.UsageError('--dir: only for list (export writes to --out_dir)')
  return commands[positional[0]]()


def main(argv: list[str] | None = None) -> int:
  """The command line without the program name (default `sys.argv[1:]`)."""
  return command_line.run(_run, FLAGS, sys.argv[1:] if argv is None else argv,
                          program='python -m jaxsr.pretrained', doc=__doc__)


if __name__ == '__main__':
  sys.exit(main())
