"""Data-directory lock, secrets, metrics and the app's own endpoints (contracts.md §2)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Route
from starlette.testclient import TestClient

from keyless.errors import ConfigError
from keyless.http.metrics import Counted, Metrics, service_of
from keyless.sealing import Sealer
from keyless.server.app import create_app, prefixed
from keyless.server.config import Settings
from keyless.server.datadir import DataDirLock
from keyless.server.secrets import FileSecrets, SharedSecrets
from keyless.server.stack import Component, Stack
from keyless.server.trust import TrustMaterial


def test_lock_refuses_a_second_owner_across_processes(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        code = (
            "import sys; from pathlib import Path; from keyless.server.datadir import DataDirLock\n"
            f"DataDirLock(Path({str(tmp_path)!r})).acquire()\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=False)
        assert result.returncode != 0
        assert "in use by keyless serve" in result.stderr
    finally:
        lock.release()
    again = DataDirLock(tmp_path)
    again.acquire()  # free once released
    again.release()


def test_file_secrets_are_created_once_with_mode_0600(tmp_path: Path) -> None:
    secrets = FileSecrets(tmp_path / "keys")
    calls: list[int] = []

    def make() -> bytes:
        calls.append(1)
        return b"secret"

    assert asyncio.run(secrets.obtain("ca/key.pem", make)) == b"secret"
    assert asyncio.run(secrets.obtain("ca/key.pem", make)) == b"secret"
    assert calls == [1]
    assert (tmp_path / "keys" / "ca" / "key.pem").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError):
        asyncio.run(secrets.obtain("../escape", make))


class _Kv:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], bytes] = {}

    async def put_if_absent(self, namespace: str, key: str, value: bytes,
                            expires_at: float) -> bytes | None:
        existing = self.data.get((namespace, key))
        if existing is None:
            self.data[(namespace, key)] = value
        return existing

    async def get(self, namespace: str, key: str) -> bytes | None:
        return self.data.get((namespace, key))

    async def delete(self, namespace: str, key: str) -> None:
        self.data.pop((namespace, key), None)


def test_shared_secrets_converge_on_the_first_writer() -> None:
    kv = _Kv()
    sealer = Sealer.generate()  # every process is given the same KEK
    a, b = SharedSecrets(kv, sealer), SharedSecrets(kv, sealer)

    async def race() -> tuple[bytes, bytes]:
        first = await a.obtain("k", lambda: b"from-a")
        second = await b.obtain("k", lambda: b"from-b")
        return first, second

    assert asyncio.run(race()) == (b"from-a", b"from-a")


def test_metrics_text_and_drain() -> None:
    metrics = Metrics()
    metrics.observe("ca", "POST", 201, 0.02)
    metrics.observe("ca", "POST", 400, 2.0)
    metrics.observe("tsa", "POST", 429, 0.001)
    metrics.gauges["keyless_test_gauge"] = ("A gauge of the app.", lambda: {"rekor": 3.0})
    metrics.gauges["keyless_test_things"] = ("A counter of the app.",
                                             lambda: Counted("issuer", {"https://a": 2.0}))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(metrics.render())
               for s in family.samples}
    assert samples[("keyless_http_requests_total",
                    (("method", "POST"), ("service", "ca"), ("status", "2xx")))] == 1
    assert samples[("keyless_http_request_duration_seconds_bucket",
                    (("le", "0.025"), ("service", "ca")))] == 1
    assert samples[("keyless_http_request_duration_seconds_bucket",
                    (("le", "+Inf"), ("service", "ca")))] == 2
    assert samples[("keyless_test_gauge", (("name", "rekor"),))] == 3
    assert samples[("keyless_test_things_total", (("issuer", "https://a"),))] == 2
    assert "# TYPE keyless_test_things_total counter" in metrics.render()
    assert samples[("keyless_http_rate_limited_requests_total", (("service", "tsa"),))] == 1
    assert samples[("keyless_http_requests_in_flight", ())] == 0
    names = {name for name, _ in samples}
    # the standard process and Python collectors operators expect
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "python_info",
            "python_gc_collections_total"} <= names, names
    assert not [n for n in names if n.endswith("_created")]
    assert Metrics().render().count("keyless_http_requests_total{") == 0, "registries mixed"
    assert service_of("/api/v2/signingCert") == "ca"
    assert service_of("/rekor/api/v2/log/entries") == "rekor_v2"
    assert service_of("/api/v1/log/entries") == "rekor_v1"

    async def drain() -> tuple[bool, bool]:
        metrics.write_started()
        blocked = await metrics.drained(0.05)
        asyncio.get_running_loop().call_later(0.05, metrics.write_finished)
        return blocked, await metrics.drained(2.0)

    assert asyncio.run(drain()) == (False, True)


def test_prefixed_routes_rebase_and_keep_methods() -> None:
    async def ok(_request: object) -> None:
        return None

    routes = prefixed([Route("/", ok, methods=["POST"]), Route("/x", ok, methods=["GET"])],
                      "/api/v1/timestamp")
    assert [(r.path, sorted(r.methods or ())) for r in routes if isinstance(r, Route)] == [
        ("/api/v1/timestamp", ["POST"]), ("/api/v1/timestamp/x", ["GET", "HEAD"])]


def test_healthz_is_503_until_ready_then_200(tmp_path: Path) -> None:
    started: list[str] = []
    settings = Settings(data_dir=tmp_path)

    async def start() -> None:
        started.append("svc")

    async def builder(_settings: Settings) -> Stack:
        return Stack(settings, [Component("svc", "", [], start=start)], TrustMaterial())

    app = create_app(settings, builder=builder)
    with TestClient(app) as client:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "services": ["svc"]}
        trust = client.get("/client-trust-config.json")
        assert trust.headers["content-type"].startswith(
            "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json")
        assert (tmp_path / "client-trust-config.json").read_bytes() == trust.content
    assert started == ["svc"]


def test_healthz_before_start_is_503(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    async def builder(_settings: Settings) -> Stack:
        raise AssertionError("not started in this test")

    app = create_app(settings, builder=builder)
    client = TestClient(app)  # no context manager: the lifespan never runs
    assert client.get("/healthz").status_code == 503
    assert client.get("/client-trust-config.json").status_code == 503
