"""Public names imported on first use (PEP 562), for the packages whose API is lazy.

``keyless.sign``, ``keyless.verify`` and ``keyless.trust`` export names whose modules are heavy;
each says where its names live and takes its ``__getattr__`` and ``__dir__`` from
:func:`lazy_exports`, so importing the package imports nothing heavy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    module: str,
    home: Mapping[str, str],
    names: Iterable[str],
    *,
    default: str | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``module``: a name is imported from its ``home``
    module (or from ``default`` when it has none) on first use and then kept in the module."""
    namespace = sys.modules[module].__dict__
    public = frozenset(names)

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook's name
        where = home.get(name, default if not name.startswith("__") else None)
        if where is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        try:
            value = getattr(import_module(where), name)
        except AttributeError:
            raise AttributeError(f"module {module!r} has no attribute {name!r}") from None
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the PEP 562 hook's name
        return sorted(set(namespace) | public)

    return __getattr__, __dir__
