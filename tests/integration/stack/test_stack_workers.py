"""``keyless serve --workers N``: the supervisor and its workers live and die together
(contracts.md §2). That the workers share one log and lose nothing under ``kill -9`` is
``test_stack_durability.py``'s ``test_kill_9_of_one_worker_under_load_…``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from stackutil import (
    KEYLESS,
    RunningStack,
    free_port,
    launch_stack,
    proc_stat,
    wait_healthy,
    workers_of,
)

pytestmark = pytest.mark.integration


def _gone(pids: list[int], timeout: float = 60.0) -> bool:
    """Wait until none of ``pids`` runs any more (a zombie counts as gone: it holds nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                state = proc_stat(pid)[0]
            except OSError:
                continue
            if state != "Z":
                alive.append(pid)
        if not alive:
            return True
        time.sleep(0.05)
    return False


def _requests_counted(text: str) -> float:
    line = 'keyless_http_requests_total{method="GET",service="stack",status="2xx"} '
    return sum(float(row[len(line):]) for row in text.splitlines() if row.startswith(line))


def _check_metrics_are_summed(stack: RunningStack, workers: list[int]) -> None:
    """Counters are kept per worker in the supervisor's metrics directory and every scrape,
    whichever worker answers it, sums them all."""
    async def load() -> None:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            answers = await asyncio.gather(*(http.get(f"{stack.url}/healthz") for _ in range(120)))
        assert {a.status_code for a in answers} == {200}

    asyncio.run(load())
    # a worker maps its counters file (prometheus_client's multiprocess mode) from the directory
    maps = Path(f"/proc/{workers[0]}/maps").read_text().split()
    (directory,) = {Path(m).parent for m in maps if "/keyless-metrics-" in m}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until both workers took requests (the kernel picks)
        asyncio.run(load())
        writers = {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("counter_*.db")}
        if set(workers) <= writers:
            break
    assert set(workers) <= writers, (workers, sorted(directory.iterdir()))
    counts = [_requests_counted(httpx.get(f"{stack.url}/metrics", timeout=10).text)
              for _ in range(6)]
    assert counts[0] >= 240 and counts == sorted(counts), counts  # one sum, never a worker's part


def test_workers_stop_with_the_supervisor_and_a_crashed_one_frees_the_data_dir(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    stack = wait_healthy(launch_stack(data, "--workers", "2"), 60)
    try:
        workers = workers_of(stack)
        assert len(workers) == 2, stack.output()
        assert "workers         2 processes" in stack.output()
        _check_metrics_are_summed(stack, workers)
    finally:
        # SIGTERM: every worker drains and stops, the supervisor exits 0
        assert stack.stop() == 0, stack.output()
    assert _gone(workers), f"workers {workers} outlived their supervisor"

    # SIGKILL of the supervisor alone: its workers follow it, and a new start is not refused
    stack = wait_healthy(launch_stack(data, "--workers", "2", port=stack.port), 60)
    workers = workers_of(stack)
    stack.process.send_signal(signal.SIGKILL)
    stack.process.wait(10)
    again = wait_healthy(launch_stack(data, "--workers", "2", port=free_port()), 90)
    try:
        assert _gone(workers), f"orphaned workers {workers} still run"
        refused = subprocess.run(
            [str(KEYLESS), "serve", "--data-dir", str(data), "--port", str(free_port())],
            capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 2, refused.stderr
        assert f"pid {again.process.pid}" in refused.stderr
    finally:
        assert again.stop() == 0, again.output()


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_bad_worker_count_is_a_usage_error(tmp_path: Path, value: str) -> None:
    result = subprocess.run(
        [str(KEYLESS), "serve", "--data-dir", str(tmp_path / "d"), "--workers", value],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "--workers" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()


def test_a_bad_workers_setting_in_the_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "keyless.toml"
    config.write_text("[server]\nworkers = -2\n")
    result = subprocess.run(
        [str(KEYLESS), "serve", "--data-dir", str(tmp_path / "d"), "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "KEYLESS_OIDC_USERS": ""})
    assert result.returncode == 2
    assert "[server].workers" in result.stderr, result.stderr
