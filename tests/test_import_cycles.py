"""The package has no import cycles (docs/ARCHITECTURE.md: each layer imports only
the layers below it), function-level imports included: a cycle works only while
every import in it is deferred, and breaks when one moves to the top."""

import ast
import pathlib

JAXSR = pathlib.Path(__file__).resolve().parent.parent / 'jaxsr'


def _modules() -> dict[str, pathlib.Path]:
  out = {}
  for path in JAXSR.rglob('*.py'):
    parts = list(path.relative_to(JAXSR.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
      parts.pop()
    out['.'.join(parts)] = path
  return out


def _import_graph() -> dict[str, set[str]]:
  modules = _modules()
  graph = {name: set() for name in modules}
  for name, path in modules.items():
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        targets = [node.module] + [f'{node.module}.{a.name}' for a in node.names]
      else:
        continue
      graph[name] |= {t for t in targets if t in modules and t != name}
  return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components of more than one module (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while not component or component[-1] != v:
        component.append(stack.pop())
        on_stack.discard(component[-1])
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def _is_registry(component: list[str]) -> bool:
  """A package whose __init__ imports its submodules to register them, and
  they import it back for the registry (jaxsr.models): Python's own pattern."""
  return any(all(m == pkg or m.startswith(pkg + '.') for m in component)
             for pkg in component)


def test_the_package_has_no_import_cycles():
  graph = _import_graph()
  assert 'jaxsr.datasets.sources' in graph and graph['jaxsr.train']
  assert [c for c in _cycles(graph) if not _is_registry(c)] == []


def test_the_check_finds_a_cycle():
  graph = {'a.x': {'a.y'}, 'a.y': {'a.z'}, 'a.z': {'a.x'}, 'a': {'a.x'}}
  assert _cycles(graph) == [['a.x', 'a.y', 'a.z']]
  assert not _is_registry(['a.x', 'a.y', 'a.z']) and _is_registry(['a', 'a.x'])
