"""Running a command-line tool on absl flags: one-line errors, exit codes.

Each tool keeps its flags in its own `flags.FlagValues` rather than absl's
global FLAGS, so that tools can be imported together (the tests do) without
clashing names, and parsed again in one process: `run` resets the flags to
their defaults before parsing. Flags and positional arguments may come in any
order (`photo.png --out=out/ more/*.jpg`); `--help` lists the flags and exits
0, a bad flag or a `UsageError` is one `error:` line and exit 2, and any
other ValueError or OSError from the tool is one `error:` line and exit 1.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from absl import flags

_HELP = ('--help', '-h', '-?', '--helpshort', '--helpfull')


class UsageError(ValueError):
  """The command line asks for something the tool cannot do; names the flag."""


def run(main: Callable[[list[str]], int], flag_values: flags.FlagValues,
        argv: Sequence[str], *, program: str, doc: str) -> int:
  """Parses `argv` (without the program name), then returns `main(positional)`."""
  flag_values.unparse_flags()
  argv = list(argv)
  options = argv[:argv.index('--')] if '--' in argv else argv
  if any(arg in _HELP for arg in options):
    listing = flag_values.get_help(include_special_flags=False).splitlines()
    # Drops the name of the defining module that heads absl's listing.
    print(doc.rstrip() + '\n\nflags:\n' +
          '\n'.join(line for line in listing if line.startswith(' ')))
    return 0
  try:
    positional = flag_values([program, *argv])[1:]
    return main(positional)
  except (flags.Error, UsageError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except (ValueError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
