"""``/metrics`` with several workers: what a worker's background work changes (witnesses asked
again while the log is idle) reaches every scrape, whichever worker answers it.

prometheus_client picks its multiprocess mode when it is imported, so each case runs in a fresh
interpreter with ``PROMETHEUS_MULTIPROC_DIR`` set, as a ``keyless serve --workers N`` worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from keyless.http import METRICS_DIR_ENV

_WORKER = textwrap.dedent("""
    import asyncio
    import time

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    from keyless.http.metrics import Metrics
    from keyless.http.readings import Counted

    values = {"w1": 0.0}
    metrics = Metrics()
    assert metrics.shared
    metrics.gauges["keyless_test_cosignatures"] = (
        "Cosignatures.", lambda: Counted("name", dict(values)))
    metrics.sync_counted()  # as the first request this worker answered did
    values["w1"] = 3.0  # background work, no request answered since
    print("own scrape:", metrics.render().count('keyless_test_cosignatures_total{name="w1"} 3.0'))

    def other_worker_scrape() -> str:  # what another worker's render reads: the files
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=%(directory)r)
        return generate_latest(registry).decode()

    async def background() -> None:
        syncing = asyncio.create_task(metrics.keep_synced(0.01))
        values["w1"] = 5.0
        deadline = time.monotonic() + 20
        seen = False
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # this worker's event loop runs on, answering nothing
            seen = 'keyless_test_cosignatures_total{name="w1"} 5.0' in other_worker_scrape()
        syncing.cancel()
        print("other scrape:", int(seen))

    asyncio.run(background())
""")


def test_background_changes_reach_every_workers_scrape(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {**os.environ, METRICS_DIR_ENV: str(directory), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", _WORKER % {"directory": str(directory)}],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "own scrape: 1" in done.stdout, done.stdout  # the answering worker's own change
    assert "other scrape: 1" in done.stdout, done.stdout  # a worker that answers nothing
