"""Helpers and fixtures that run real ``keyless serve`` processes (contracts.md §2).

Test modules import the fixtures they use from here (a second ``conftest`` module would clash
with the top-level one, which other test modules import by name).

Every stack gets a 127.0.0.1 port reserved for it (tests/ports.py) and its own temporary data
directory, so the tests run in parallel under xdist. The process is stopped with SIGTERM
(graceful shutdown) and its output is kept for failure messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from conftest import ROOT
from ports import reserve_port

KEYLESS = ROOT / ".venv" / "bin" / "keyless"
USER = "alice@example.com"
PASSWORD = "s3cret-password"


def proc_stat(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, …, utime at [11],
    stime at [12]); OSError once the process is gone."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (``keyless serve --workers N``: the supervisor, its
    workers and multiprocessing's helper), parents first, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(proc_stat(int(entry.name))[1])
        except OSError:
            continue  # it exited meanwhile
        children.setdefault(parent, []).append(int(entry.name))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        tree.append(current)
        queue += children.get(current, [])
    return tree


def workers_of(stack: RunningStack) -> list[int]:
    """The pids of the worker processes of a ``--workers N`` stack: the children of its
    supervisor (none with one worker)."""
    found = []
    for pid in process_tree(stack.process.pid)[1:]:
        try:
            stat = proc_stat(pid)
        except OSError:
            continue
        if int(stat[1]) == stack.process.pid and stat[0] != "Z":
            found.append(pid)
    return found


def kill_tree(stack: RunningStack) -> None:
    """SIGKILL the whole ``keyless serve`` — supervisor and workers at once, as a host crash
    would — and reap the supervisor."""
    for pid in reversed(process_tree(stack.process.pid)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    stack.process.wait(10)


def free_port() -> int:
    """A port for a ``keyless serve`` process that no other test is given (see ``ports``)."""
    return reserve_port()


@dataclass
class RunningStack:
    """A ``keyless serve`` subprocess and what tests need to talk to it."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    started_in: float = 0.0
    extra_args: list[str] = field(default_factory=list)
    #: the --public-url when it is not this process's own address (a load-balanced pair)
    public_url: str = ""

    @property
    def url(self) -> str:
        """This process's own address."""
        return f"http://localhost:{self.port}"

    @property
    def issuer(self) -> str:
        """The OIDC issuer in tokens and certificates (derived from the public URL)."""
        return f"{self.public_url or self.url}/oidc"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client_trust_config(self) -> dict[str, object]:
        response = httpx.get(f"{self.url}/client-trust-config.json", timeout=10)
        response.raise_for_status()
        value: dict[str, object] = response.json()
        return value

    def token(self, user: str = USER, password: str = PASSWORD) -> str:
        """An identity token from the embedded provider's password grant (contracts.md §3)."""
        discovery = httpx.get(f"{self.url}/oidc/.well-known/openid-configuration", timeout=10)
        discovery.raise_for_status()
        endpoint: str = discovery.json()["token_endpoint"]
        if self.public_url:  # talk to this very process, not to the public address
            endpoint = endpoint.replace(self.public_url, self.url, 1)
        response = httpx.post(
            endpoint,
            data={"grant_type": "password", "client_id": "sigstore", "scope": "openid email",
                  "username": user, "password": password},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["id_token"]
        return token

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def launch_stack(
    data_dir: Path,
    *extra: str,
    port: int | None = None,
    users: tuple[str, ...] = (f"{USER}:{PASSWORD}",),
) -> RunningStack:
    """Start ``keyless serve`` without waiting for it (see :func:`wait_healthy`)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"serve-{port}.log"
    args = [str(KEYLESS), "serve", "--data-dir", str(data_dir), "--port", str(port), *extra]
    for user in users:
        args += ["--oidc-user", user]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    stack = RunningStack(process, port, data_dir, log_path, extra_args=list(extra))
    stack.started_in = time.monotonic()
    return stack


def wait_healthy(stack: RunningStack, timeout: float = 30.0) -> RunningStack:
    """Wait for ``/healthz`` to answer 200; ``started_in`` becomes the start-to-healthy time."""
    launched = stack.started_in
    deadline = launched + timeout
    process = stack.process
    while time.monotonic() < deadline:
        if process.poll() is not None:
            code = process.returncode
            raise AssertionError(f"keyless serve exited with {code}:\n{stack.output()}")
        try:
            if httpx.get(f"http://127.0.0.1:{stack.port}/healthz", timeout=2).status_code == 200:
                stack.started_in = time.monotonic() - launched
                return stack
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    stack.stop()
    raise AssertionError(f"keyless serve not healthy after {timeout} s:\n{stack.output()}")


def start_stack(
    data_dir: Path,
    *extra: str,
    port: int | None = None,
    timeout: float = 30.0,
    users: tuple[str, ...] = (f"{USER}:{PASSWORD}",),
) -> RunningStack:
    """Start ``keyless serve`` and wait for ``/healthz`` to answer 200."""
    return wait_healthy(launch_stack(data_dir, *extra, port=port, users=users), timeout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One SQLite stack shared by the tests of a module."""
    running = start_stack(tmp_path_factory.mktemp("stack") / "data")
    try:
        yield running
    finally:
        code = running.stop()
        if code not in (0, -signal.SIGTERM):
            sys.stderr.write(running.output())


@pytest.fixture(scope="module")
def trust_config_file(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack's ClientTrustConfig, fetched over HTTP into a file."""
    path = tmp_path_factory.mktemp("trust") / "tc.json"
    path.write_text(json.dumps(stack.client_trust_config()))
    return path
