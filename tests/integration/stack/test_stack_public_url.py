"""A stack restarted under another public URL says so: its logs' names and IDs, CA, TSA and OIDC
issuer URLs derive from the URL, so old bundles need the old trust config."""

from __future__ import annotations

from pathlib import Path

import pytest
from stackutil import free_port, start_stack

pytestmark = pytest.mark.integration


def test_restart_on_another_port_warns_about_the_new_identity(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_stack(data)
    first.stop()
    assert "public URL changed" not in first.output()
    same = start_stack(data, port=first.port)  # the same URL: nothing to say
    same.stop()
    assert "public URL changed" not in same.output().split("keyless is serving on", 2)[-1]
    moved = start_stack(data, port=free_port())
    try:
        log = moved.output().split("keyless is serving on", 3)[-1]
        assert f"the public URL changed from http://localhost:{first.port} to {moved.url}" in log
        assert f"--public-url http://localhost:{first.port}" in log
    finally:
        moved.stop()
