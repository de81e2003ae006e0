"""The ground floor (``keyless.keys``, ``keyless.merkle``, ``keyless.formats``) imports nothing
above it: only ``keyless.errors``, each other, the standard library and third-party libraries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import keyless

PACKAGE = Path(keyless.__file__).parent
GROUND = ("keyless.errors", "keyless.keys", "keyless.merkle", "keyless.formats")
FILES = sorted(
    [PACKAGE / "keys.py", PACKAGE / "merkle.py", *(PACKAGE / "formats").glob("*.py")]
)


def _imports(path: Path) -> list[str]:
    """Every absolute module an ``import``/``from … import`` in ``path`` names (also lazy ones)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            module = node.module or ""
            if module == "keyless":
                names.extend(f"keyless.{alias.name}" for alias in node.names)
            else:
                names.append(module)
    return names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_ground_module_imports_nothing_above_it(path: Path) -> None:
    above = [
        name
        for name in _imports(path)
        if (name == "keyless" or name.startswith("keyless."))
        and not any(name == g or name.startswith(g + ".") for g in GROUND)
    ]
    assert above == [], f"{path.name} imports {above}"
