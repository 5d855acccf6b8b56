"""Which files a batch upscales and where each result goes.

Inputs are files, folders (their image files; subfolders are not searched)
or globs; each problem with one of them (no match, a folder matched by a
glob, a symbolic link loop) is a failure of that entry alone, so the rest of
the batch goes on. Outputs are `<out>/<stem>.<format>`, or `--out` itself
when it names an image file and there is one input.

An output never replaces an input, whatever the flags: two paths are the
same file when they have the same device and inode after following links,
which also catches symbolic links, hard links and output folders that are
the input folder under another name.
"""

from __future__ import annotations

import errno
import glob
import os
import pathlib

from PIL import Image

from jaxsr import image_io

Failures = list[tuple[str, str]]  # [(input, reason)]


class OutputNameError(ValueError):
  """`--out` cannot be used for these inputs; the message says why and what to give."""


class WouldReplaceInputError(FileExistsError):
  """The output path is one of the inputs."""


def expand_inputs(patterns: list[str]) -> tuple[list[pathlib.Path], Failures]:
  """(image files, failures) from files, folders and globs."""
  files, failures = [], []
  for pattern in patterns:
    path = pathlib.Path(pattern)
    if path.is_dir():
      found = sorted(p for p in path.iterdir() if _is_listed_image(p))
      if not found:
        failures.append((pattern, 'folder has no image files ('
                         f'{", ".join(sorted(image_io.IMAGE_EXTENSIONS))})'))
      files += found
    elif path.exists() or path.is_symlink():
      files.append(path)
    elif glob.has_magic(pattern):
      matches = sorted(glob.glob(pattern))
      if not matches:
        failures.append((pattern, 'no file matches this pattern'))
      for match in map(pathlib.Path, matches):
        if match.is_dir():
          failures.append((str(match), f'is a directory (matched by {pattern!r}); '
                           'give a folder by name to upscale its images'))
        else:
          files.append(match)
    else:
      failures.append((pattern, 'no such file or folder'))
  unique = {}
  for f in files:  # The same file given twice is one input.
    if _is_link_loop(f):
      failures.append((str(f), 'symbolic link loop (the link points back to itself)'))
    else:
      unique.setdefault(f.resolve(), f)
  return list(unique.values()), failures


def _is_listed_image(path: pathlib.Path) -> bool:
  """An image file of a folder; links that lead nowhere are listed to be reported."""
  return (path.suffix.lower() in image_io.IMAGE_EXTENSIONS and
          not path.name.startswith('.') and
          (path.is_file() or (path.is_symlink() and not path.is_dir())))


def _is_link_loop(path: pathlib.Path) -> bool:
  try:
    os.stat(path)
  except OSError as e:
    return e.errno == errno.ELOOP
  return False


def output_paths(files: list[pathlib.Path], out: str, fmt: str
                 ) -> tuple[dict[pathlib.Path, pathlib.Path], Failures]:
  """{input: output} and failures for inputs whose output cannot be used.

  Raises OutputNameError when `out` looks like an image file name that
  cannot be written (several inputs, or an extension we do not write).
  """
  folder = pathlib.Path(out)
  single = None  # The output file --out names, if it names one.
  suffix = folder.suffix.lower()
  if not (out.endswith(('/', os.sep)) or folder.is_dir()):
    if suffix in image_io.IMAGE_EXTENSIONS:
      if len(files) > 1:
        raise OutputNameError(f'--out={out} names one file but {len(files)} inputs '
                              f'were given: pass a folder (e.g. --out={folder.stem}/)')
      single = folder
    elif suffix in Image.registered_extensions():
      writable = ', '.join(sorted(e[1:] for e in image_io.IMAGE_EXTENSIONS))
      raise OutputNameError(
          f'--out={out} looks like a {suffix} file, which is not written here '
          f'({writable}): name a .png file for one input, or a folder '
          f'(--out={out}/ if you mean a folder of that name)')
  inputs = {key: f for f in files if (key := _file_key(f)) is not None}
  plan, owner, failures = {}, {}, []
  for f in files:
    dest = single or folder / f'{f.stem}.{fmt}'
    replaced = inputs.get(_file_key(dest))
    if replaced is not None:
      failures.append((str(f), _replace_reason(dest, replaced)))
    elif dest in owner:
      failures.append((str(f), f'same output name {dest} as {owner[dest]}; '
                       'upscale one of them separately'))
    else:
      owner[dest] = f
      plan[f] = dest
  return plan, failures


def _replace_reason(dest: pathlib.Path, replaced: pathlib.Path) -> str:
  return (f'output would replace the input {replaced}' +
          (f' (as {dest})' if dest != replaced else '') +
          '; inputs are never overwritten, even with --overwrite: pick another --out')


def _file_key(path: pathlib.Path) -> tuple[int, int] | None:
  """(device, inode) of the file `path` leads to; None if there is none."""
  try:
    info = os.stat(path)
  except (OSError, ValueError):
    return None
  return info.st_dev, info.st_ino


def check_output(dest: pathlib.Path, overwrite: bool,
                 source: pathlib.Path | None = None) -> None:
  """Creates dest's folder; raises an OSError naming the reason it cannot be written."""
  folder = dest.parent
  if folder.exists() and not folder.is_dir():
    raise NotADirectoryError(f'output folder {folder} is a file')
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise OSError(f'cannot create output folder {folder}: '
                  f'{e.strerror or e}') from None
  if not os.access(folder, os.W_OK | os.X_OK):
    raise PermissionError(f'output folder {folder} is not writable')
  if dest.is_dir():
    raise IsADirectoryError(f'output {dest} is a folder')
  key = _file_key(dest)
  if source is not None and key is not None and key == _file_key(source):
    raise WouldReplaceInputError(_replace_reason(dest, source))
  if dest.exists() and not overwrite:
    raise FileExistsError(f'output {dest} already exists (pass --overwrite '
                          'to replace it)')
