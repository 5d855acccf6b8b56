"""Writes a generated Markdown section between two markers of README.md."""

from __future__ import annotations

import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def replace_section(name: str, text: str, readme: pathlib.Path | None = None) -> pathlib.Path:
  """Puts `text` between `<!-- name:start -->` and `<!-- name:end -->`.

  Without the markers the text goes to docs/<name>.md instead.
  """
  start, end = f'<!-- {name}:start -->', f'<!-- {name}:end -->'
  readme = readme or REPO_ROOT / 'README.md'
  content = readme.read_text() if readme.exists() else ''
  if start in content and end in content:
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f'{head}{start}\n{text}\n{end}{tail}')
    return readme
  doc = REPO_ROOT / 'docs' / f'{name}.md'
  doc.parent.mkdir(parents=True, exist_ok=True)
  doc.write_text(f'{text}\n')
  return doc
