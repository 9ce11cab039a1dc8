"""The shape of the ``perception`` package (issue #18): no import cycles, imports that run one way between
the layers, and no module over 300 lines.

The graph is read with :mod:`ast` (nothing is imported): every ``import`` / ``from ... import`` statement of
every module, including those inside functions and ``if TYPE_CHECKING`` blocks, is an edge. ``from
perception.x import y`` is an edge to the submodule ``perception.x.y`` when ``y`` is a module, else to
``perception.x`` (so a package ``__init__`` that re-exports its submodules does not by itself look like a cycle).
"""

import ast

from conftest import REPO

PACKAGE = REPO / "perception"
MAX_LINES = 300

# Layer rule: imports run one way, data, models -> runtime -> eval, nodes, replay (training beside eval; cli
# on top). A package here may not import any of the packages listed for it.
FORBIDDEN = {
    "perception.data": ("runtime", "training", "eval", "replay", "ros", "cli", "bench", "export"),
    "perception.models": ("runtime", "training", "eval", "replay", "ros", "cli", "bench", "export"),
    "perception.runtime": ("training", "eval", "replay", "ros", "cli"),
}


def _modules():
    """``{module name: path}`` of every ``.py`` file under ``perception/`` (a package is its ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name, modules):
    """The longest prefix of dotted ``name`` that is a module of the package (None outside it)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module, path, modules):
    """The ``perception`` modules that ``module`` imports, with the line of the first import of each."""
    is_package = path.name == "__init__.py"
    found = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package of ``module``
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
        for target in targets:
            inside = target == "perception" or target.startswith("perception.")
            resolved = _resolve(target, modules) if inside else None
            if resolved and resolved != module:
                found.setdefault(resolved, node.lineno)
    return found


def _graph():
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}, modules


def _cycles(graph):
    """One cycle (a list of modules, first == last) per strongly connected component of ``graph`` with more
    than one module (Tarjan), so that every tangle is named, not only the first found."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(m):
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for n in sorted(graph[m]):
            if n not in index:
                connect(n)
                low[m] = min(low[m], low[n])
            elif n in on_stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            component = set()
            while True:
                n = stack.pop()
                on_stack.discard(n)
                component.add(n)
                if n == m:
                    break
            if len(component) > 1:
                out.append(_cycle_in(graph, component))

    for m in sorted(graph):
        if m not in index:
            connect(m)
    return out


def _cycle_in(graph, component):
    """A cycle through the smallest module of ``component`` (every module of it reaches every other)."""
    start = min(component)
    parent, frontier = {start: None}, [start]
    while frontier:  # breadth first: the shortest way back to ``start``
        nxt = []
        for m in frontier:
            for n in sorted(graph[m]):
                if n == start:
                    path = [m]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return path[::-1] + [start]
                if n in component and n not in parent:
                    parent[n] = m
                    nxt.append(n)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # unreachable for a strongly connected component


def test_the_graph_reader_sees_nested_imports_and_resolves_submodules(tmp_path):
    modules = dict.fromkeys(["perception.a", "perception.a.b", "perception.a.c", "perception.d", "perception.e"])
    source = tmp_path / "c.py"
    source.write_text(
        "import os\n"
        "from perception.a import b, helper\n"  # b: the submodule; helper: a name of the package perception.a
        "from . import b as bb\n"
        "def f():\n"
        "    from perception.d import thing\n"  # inside a function: still an edge
        "    import perception.e.missing\n"  # no such module: the package it is in
    )
    found = _imports("perception.a.c", source, modules)
    assert set(found) == {"perception.a.b", "perception.a", "perception.d", "perception.e"}
    assert found["perception.d"] == 5

    graph, modules = _graph()
    assert "perception.data.sample" in modules and "perception.runtime" in modules
    # perception/data/__init__.py re-exports from its submodules: edges to them, not to the package itself.
    assert "perception.data.sample" in graph["perception.data"] and "perception.data" not in graph["perception.data"]


def test_the_cycle_finder_names_every_tangle():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}, "e": {"f": 1}, "f": {"e": 1}}
    assert _cycles(graph) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_import_cycles():
    graph, modules = _graph()
    cycles = _cycles(graph)
    lines = []
    for cycle in cycles:
        steps = [f"{modules[a].relative_to(REPO)}:{graph[a][b]} imports {b}"
                 for a, b in zip(cycle, cycle[1:], strict=False)]
        lines.append(" -> ".join(cycle) + "\n    " + "\n    ".join(steps))
    assert not cycles, "import cycles (move the function to the module it belongs to):\n" + "\n".join(lines)


def test_layers_import_one_way():
    graph, modules = _graph()
    bad = []
    for layer, banned in FORBIDDEN.items():
        for module, targets in graph.items():
            if module != layer and not module.startswith(layer + "."):
                continue
            for target, line in targets.items():
                top = target.split(".")[1] if target.count(".") else ""
                if top in banned:
                    bad.append(f"{modules[module].relative_to(REPO)}:{line} imports {target}")
    assert not bad, "imports against the layer rule:\n" + "\n".join(bad)


def test_no_module_over_300_lines():
    long = {str(p.relative_to(REPO)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by what they hold): {long}"


def test_packages_import_one_way():
    """The same graph between the sub-packages (``perception.data``, ``perception.eval``, ...; top-level
    modules such as ``perception.config`` count as their own): no two packages import each other, directly
    or around a loop, even where their modules do not form a cycle."""
    graph, modules = _graph()

    def package(m):
        return ".".join(m.split(".")[:2])

    packages = {}
    for module, targets in graph.items():
        edges = packages.setdefault(package(module), {})
        for target, line in targets.items():
            if package(target) != package(module):
                edges.setdefault(package(target), f"{modules[module].relative_to(REPO)}:{line}")
    cycles = _cycles(packages)
    lines = [" -> ".join(c) + "\n    "
             + "\n    ".join(f"{packages[a][b]} imports {b}" for a, b in zip(c, c[1:], strict=False))
             for c in cycles]
    assert not cycles, "packages importing each other:\n" + "\n".join(lines)
