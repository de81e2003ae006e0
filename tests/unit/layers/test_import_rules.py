"""The import graph of ``src/keyless`` points only down, has no cycle, and no module is too long.

Layers, bottom to top (a module may import its own layer and the layers below it):

0. ``keyless.errors``, ``keyless._lazy`` (lazy public names, PEP 562)
1. ``keyless.keys``
2. ``keyless.merkle``
3. ``keyless.formats`` — together with the three above, the pure ground floor (no I/O: it
   imports nothing above it but the standard library and third-party libraries)
4. ``keyless.storage``, ``keyless.log``, ``keyless.identity``, ``keyless.http`` (the HTTP
   plumbing the services share), ``keyless.sealing``, ``keyless.oci`` (the registry client),
   ``keyless.localfiles`` (whole-file writes)
5. ``keyless.services``, ``keyless.witness``, ``keyless.verify``, ``keyless.trust``,
   ``keyless.sign``, ``keyless.oidc`` (the client side of OIDC), ``keyless.monitor``
6. ``keyless.image`` (container images) and ``keyless.git`` (git signing): sign and verify
   through the client library
7. ``keyless.server`` — the composition root
8. ``keyless._cli`` and ``keyless.__main__``

Every import counts: module level, inside functions (lazy) and under ``TYPE_CHECKING``. A cycle is
any strongly connected set of modules of more than one, over the same edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import keyless

PACKAGE = Path(keyless.__file__).parent

LAYERS: list[tuple[str, ...]] = [
    ("keyless.errors", "keyless._lazy"),
    ("keyless.keys",),
    ("keyless.merkle",),
    ("keyless.formats",),
    ("keyless.storage", "keyless.log", "keyless.identity", "keyless.http", "keyless.sealing",
     "keyless.localfiles", "keyless.oci"),
    ("keyless.services", "keyless.witness", "keyless.verify", "keyless.trust", "keyless.sign",
     "keyless.oidc", "keyless.monitor"),
    ("keyless.image", "keyless.image_legacy", "keyless.image_statements", "keyless.git"),
    ("keyless.server",),
    ("keyless._cli", "keyless.__main__"),
]

#: Upward imports that are known and owned by work in progress elsewhere: (importer, imported).
#: Each must still occur (a stale entry fails too), so the list shrinks to nothing.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {
}

#: Known cycles outside this change, each to be broken by its owner (a stale entry fails too).
ALLOWED_CYCLES: dict[frozenset[str], str] = {
}

#: Longest module, in lines.
MAX_LINES = 600
#: Modules allowed over :data:`MAX_LINES` because a change in progress splits them.
LONG_MODULES: dict[str, str] = {
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {
    _module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))
}


def _resolve(name: str) -> str:
    """``name`` itself if it is a module of keyless, else its nearest enclosing module."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str) -> Iterator[str]:
    """The keyless modules ``module`` imports, anywhere in its body."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "keyless" or target.startswith("keyless."):
                resolved = _resolve(target)
                if resolved != module and resolved != "keyless":
                    yield resolved


GRAPH: dict[str, set[str]] = {module: set(_imports(module)) for module in MODULES}


def _layer(module: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if any(module == top or module.startswith(top + ".") for top in layer):
            return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def _upward() -> set[tuple[str, str]]:
    return {
        (module, target)
        for module, targets in GRAPH.items()
        if module != "keyless"
        for target in targets
        if _layer(target) > _layer(module)
    }


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        if module != "keyless":
            _layer(module)


def test_no_lower_layer_imports_a_higher_one() -> None:
    found = _upward() - ALLOWED_UPWARD.keys()
    assert not found, "upward imports:\n" + "\n".join(f"  {a} -> {b}" for a, b in sorted(found))


def test_allowed_upward_imports_still_exist() -> None:
    stale = ALLOWED_UPWARD.keys() - _upward()
    assert not stale, f"no longer imported, remove from ALLOWED_UPWARD: {sorted(stale)}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_lazy_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    cycles = [c for c in _cycles(GRAPH) if frozenset(c) not in ALLOWED_CYCLES]
    assert not cycles, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def test_allowed_cycles_still_exist() -> None:
    found = {frozenset(c) for c in _cycles(GRAPH)}
    stale = [sorted(c) for c in ALLOWED_CYCLES if c not in found]
    assert not stale, f"no longer a cycle, remove from ALLOWED_CYCLES: {stale}"


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_module_is_not_too_long(module: str) -> None:
    path = MODULES[module]
    name = path.relative_to(PACKAGE.parent).as_posix()
    lines = len(path.read_text().splitlines())
    if name in LONG_MODULES:
        assert lines > MAX_LINES, f"{name} is short now: remove it from LONG_MODULES"
        return
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES})"



#: what a service module may not import: HTTP belongs in its ``routes.py``
WEB_FRAMEWORKS = ("starlette", "fastapi", "uvicorn")
SERVICES = sorted(p.name for p in (PACKAGE / "services").iterdir() if (p / "service.py").is_file())
#: services not yet in the one shape; the branch reshaping ca, tsa, oidc and tuf brings them in
#: (a service listed here that already has the shape fails, so the list shrinks to nothing)
UNSHAPED: dict[str, str] = {
}


def _shape_problems(name: str) -> list[str]:
    problems = []
    service = f"keyless.services.{name}.service"
    tree = ast.parse(MODULES[service].read_text())
    for node in ast.walk(tree):
        names = (
            [a.name for a in node.names] if isinstance(node, ast.Import)
            else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        )
        problems += [f"service.py imports {n}" for n in names if n.split(".")[0] in WEB_FRAMEWORKS]
    routes = f"keyless.services.{name}.routes"
    if routes in GRAPH[service]:
        problems.append("service.py imports its routes")
    if routes not in MODULES:
        problems.append("no routes.py")
    else:
        body = ast.parse(MODULES[routes].read_text()).body
        if not any(isinstance(n, ast.FunctionDef) and n.name == "routes" for n in body):
            problems.append("routes.py has no module-level routes(service)")
    return problems


@pytest.mark.parametrize("name", SERVICES)
def test_service_has_the_one_shape(name: str) -> None:
    """``service.py`` free of any web framework (even under ``TYPE_CHECKING``) and of its
    routes; ``routes.py`` exposing ``routes(service) -> list[Route]``."""
    problems = _shape_problems(name)
    if name in UNSHAPED:
        assert problems, f"services/{name} has the shape now: remove it from UNSHAPED"
        return
    assert not problems, f"services/{name}: {problems}"
