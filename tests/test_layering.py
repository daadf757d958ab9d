"""Imports run one way: down the layers of docs/layout.md, never in a
circle. Read from every module's source with ``ast`` (imports inside
functions count too), so nothing is imported."""
import ast
import re
from pathlib import Path

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / 'flower_mm'
# Bottom first. A module imports from its own part and from lower layers
# only; the parts of one layer do not import each other.
LAYERS = [
    ('utils', ),
    ('compat', 'fileio', 'visualization'),
    ('datasets', ),
    ('transforms', 'deployment'),
    ('evaluation', ),
    ('engine', ),
    ('apis', ),
    ('serving', 'experiments', 'cli'),
    ('registration', ),
]
# Circles someone is removing, each with who; an entry whose circle is gone
# fails the test, so that it is deleted with the circle.
KNOWN_CIRCLES = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports_of(path: Path, modules) -> set:
    """The flower_mm modules ``path`` imports (``from P import N`` counts
    as ``P.N`` where that is a module)."""
    name = module_name(path)
    package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = node.module
            if node.level:  # relative: up from the module's package
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                target = '.'.join(base + ([node.module] if node.module
                                          else []))
            for alias in node.names:
                child = f'{target}.{alias.name}'
                found.add(child if child in modules else target)
    return {m for m in found if m.split('.')[0] == 'flower_mm'}


def import_graph() -> dict:
    paths = sorted(PACKAGE.rglob('*.py'))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def part(module: str) -> str:
    """``flower_mm.datasets.preparation.split`` -> ``datasets``."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def layer_of() -> dict:
    return {p: level for level, parts in enumerate(LAYERS) for p in parts}


def test_every_part_of_the_package_has_a_layer():
    parts = {part(m) for m in import_graph()} - {''}
    assert sorted(parts - set(layer_of())) == [], (
        'add the new part to LAYERS here and in docs/layout.md')
    assert sorted(set(layer_of()) - parts) == []


def test_no_import_goes_up_or_sideways():
    layer = layer_of()
    wrong = []
    for module, imported in import_graph().items():
        for target in imported:
            if part(target) in ('', part(module)):
                continue
            if layer[part(target)] >= layer[part(module)]:
                wrong.append(f'{module} -> {target}')
    assert wrong == [], 'imports against the layers of docs/layout.md'


def circles(graph: dict) -> list:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while not group or node not in group:
                group.add(stack.pop())
            on_stack.difference_update(group)
            if len(group) > 1:
                found.append(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_circle_anywhere():
    found = set(circles(import_graph()))
    assert sorted(map(sorted, found - set(KNOWN_CIRCLES))) == []
    gone = {', '.join(sorted(c)): who for c, who in KNOWN_CIRCLES.items()
            if c not in found}
    assert gone == {}, 'a known circle is gone: delete it from KNOWN_CIRCLES'


def test_the_checks_see_what_they_should():
    """The readers find an upward import, a circle, and relative imports."""
    assert circles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [
        frozenset('abc')
    ]
    graph = import_graph()
    assert 'flower_mm.utils.user_errors' in graph['flower_mm.compat']
    assert 'flower_mm.datasets.decoding' in graph[
        'flower_mm.transforms.loading']
    assert 'flower_mm.datasets.preparation.common' in graph[
        'flower_mm.datasets.preparation.download']


def test_docs_name_the_same_layers():
    text = re.sub(r'\s+', ' ', (REPO_ROOT / 'docs' / 'layout.md').read_text())
    written = ' < '.join(', '.join(f'`{p}`' for p in parts)
                         for parts in LAYERS)
    assert written in text, written
