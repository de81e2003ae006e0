"""``keyless serve --workers 2``: wrong passwords spread over the workers trip the sign-in
throttle's (account, address) limit at the same total as one process does (issue #20).

Each request comes on a new connection, so the kernel hands them to either worker; with the
counts per process, up to ten guesses passed (five per worker). The deterministic
two-process version is tests/integration/oidc/test_oidc_throttle_processes.py.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from stackutil import USER, launch_stack, wait_healthy

pytestmark = pytest.mark.integration


def test_wrong_passwords_over_every_worker_share_one_limit(tmp_path: Path) -> None:
    stack = wait_healthy(launch_stack(tmp_path / "data", "--workers", "2"), 90)
    try:
        statuses = []
        for i in range(12):
            with httpx.Client(timeout=60) as client:  # a new connection: any worker
                answer = client.post(f"{stack.url}/oidc/token", data={
                    "grant_type": "password", "client_id": "sigstore", "username": USER,
                    "password": f"guess-{i}"})  # fmt: skip
                statuses.append(answer.status_code)
        assert statuses == [400] * 5 + [429] * 7, stack.output()
    finally:
        assert stack.stop() == 0, stack.output()
