"""Fixtures shared by every test tier.

``VECTORS`` are the vendored test assets (tests/assets/README.md: real public-good bundles, trust
roots and the sigstore-conformance cases); ``INTEROP_SCRIPTS`` the pins and scripts of the real
clients (tests/interop/README.md).
``require`` turns a missing component into a skip on a developer machine but a failure in CI
(contracts.md §1: in CI a test that needs a missing component fails instead of skipping).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "assets"
INTEROP_SCRIPTS = ROOT / "tests" / "interop"
INTEROP = ROOT / ".interop"
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require(condition: bool, what: str) -> None:
    """Skip (developer machine) or fail (CI) when a component the test needs is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing in CI: {what}")
    pytest.skip(f"missing: {what}")


def require_program(name: str) -> str:
    """The path of an executable the test needs (see :func:`require`)."""
    path = shutil.which(name)
    require(path is not None, f"program {name!r} on PATH")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The vendored test assets (real public-good bundles and conformance cases)."""
    return VECTORS


@pytest.fixture(scope="session")
def sigstore_python() -> Path:
    """The pinned sigstore-python 4.5.1 CLI installed by `make interop`."""
    exe = INTEROP / "venv" / "bin" / "sigstore"
    require(exe.exists(), "sigstore-python in .interop/venv (run `make interop`)")
    return exe


@pytest.fixture(scope="session")
def node_path() -> Path:
    """NODE_PATH for the pinned sigstore-js 5.0.1 libraries installed by `make interop`."""
    modules = INTEROP / "node" / "node_modules"
    require((modules / "sigstore").is_dir(), "sigstore-js in .interop/node (run `make interop`)")
    require_program("node")
    return modules


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster for this test session (tests/pgcluster.py)."""
    from pgcluster import PgCluster, pg_program

    require(pg_program("initdb") is not None, "PostgreSQL server (initdb) — apt install postgresql")
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: Any) -> str:
    """The URL of the throwaway cluster's ``postgres`` database (session-wide)."""
    return str(postgres_cluster.url())
