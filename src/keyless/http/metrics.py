"""Request metrics in the Prometheus text exposition format (version 0.0.4).

A small ASGI middleware counts requests per service, method and status class, observes their
latency in a histogram and tracks requests in flight; ``GET /metrics`` renders them. Written by
hand rather than with ``prometheus_client`` to keep the dependency list short: the format is a few
lines of text (https://prometheus.io/docs/instrumenting/exposition_formats/).

The in-flight gauge of *writes* doubles as the drain signal of graceful shutdown: the server stops
accepting connections, then waits until :attr:`Metrics.writes_in_flight` reaches zero.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: histogram buckets in seconds (covering the write-latency goal G3 of targets.md: p99 ≤ 1 s)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: path prefix → service label; the longest matching prefix wins
SERVICE_PREFIXES = (
    ("/api/v2/signingCert", "ca"),
    ("/api/v1/signingCert", "ca"),
    ("/api/v2/trustBundle", "ca"),
    ("/api/v2/configuration", "ca"),
    ("/api/v1/rootCert", "ca"),
    ("/api/v1/timestamp", "tsa"),
    ("/api/v1/log", "rekor_v1"),
    ("/api/v1/index", "rekor_v1"),
    ("/api/v1/search", "rekor_v1"),
    ("/rekor", "rekor_v2"),
    ("/ctlog", "ctlog"),
    ("/oidc", "oidc"),
    ("/tuf", "tuf"),
    ("/healthz", "stack"),
    ("/metrics", "stack"),
    ("/client-trust-config.json", "stack"),
)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def service_of(path: str) -> str:
    """The service label of a request path (``other`` when nothing matches)."""
    best = ("", "other")
    for prefix, name in SERVICE_PREFIXES:
        if path.startswith(prefix) and len(prefix) > len(best[0]):
            best = (prefix, name)
    return best[1]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """The counters of one process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.duration_buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.duration_sum: dict[str, float] = defaultdict(float)
        self.duration_count: dict[str, int] = defaultdict(int)
        self.in_flight = 0
        self.writes_in_flight = 0
        self._writes_idle = asyncio.Event()
        self._writes_idle.set()
        #: extra gauges set by the app (e.g. log tree sizes): name → (help, {labels: value})
        self.gauges: dict[str, tuple[str, Callable[[], dict[str, float]]]] = {}

    def observe(self, service: str, method: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        self.requests[(service, method, f"{status // 100}xx")] += 1
        buckets = self.duration_buckets[service]
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
        self.duration_sum[service] += seconds
        self.duration_count[service] += 1

    def write_started(self) -> None:
        self.writes_in_flight += 1
        self._writes_idle.clear()

    def write_finished(self) -> None:
        self.writes_in_flight -= 1
        if self.writes_in_flight == 0:
            self._writes_idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait until no write is in flight (graceful shutdown); False on timeout."""
        try:
            await asyncio.wait_for(self._writes_idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def render(self) -> str:
        """The exposition text."""
        lines = [
            "# HELP keyless_http_requests_total HTTP requests answered, by service and status.",
            "# TYPE keyless_http_requests_total counter",
        ]
        for (service, method, status), count in sorted(self.requests.items()):
            lines.append(
                f'keyless_http_requests_total{{service="{service}",method="{method}",'
                f'status="{status}"}} {count}'
            )
        lines += [
            "# HELP keyless_http_request_duration_seconds Time to answer HTTP requests.",
            "# TYPE keyless_http_request_duration_seconds histogram",
        ]
        for service in sorted(self.duration_count):
            buckets = self.duration_buckets[service]
            for bound, count in zip(BUCKETS, buckets, strict=True):
                lines.append(
                    f'keyless_http_request_duration_seconds_bucket{{service="{service}",'
                    f'le="{bound}"}} {count}'
                )
            total = self.duration_count[service]
            lines.append(
                f'keyless_http_request_duration_seconds_bucket{{service="{service}",le="+Inf"}} '
                f"{total}"
            )
            lines.append(
                f'keyless_http_request_duration_seconds_sum{{service="{service}"}} '
                f"{self.duration_sum[service]:.6f}"
            )
            lines.append(
                f'keyless_http_request_duration_seconds_count{{service="{service}"}} {total}'
            )
        lines += [
            "# HELP keyless_http_requests_in_flight HTTP requests being answered.",
            "# TYPE keyless_http_requests_in_flight gauge",
            f"keyless_http_requests_in_flight {self.in_flight}",
            "# HELP keyless_uptime_seconds Seconds since this process started serving.",
            "# TYPE keyless_uptime_seconds gauge",
            f"keyless_uptime_seconds {self._clock() - self.started:.3f}",
        ]
        for name, (help_text, read) in sorted(self.gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            for label, value in sorted(read().items()):
                lines.append(f'{name}{{name="{_escape(label)}"}} {value}')
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """ASGI middleware feeding :class:`Metrics` for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        method: str = scope["method"]
        service = service_of(scope["path"])
        is_write = method in WRITE_METHODS
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        metrics.in_flight += 1
        if is_write:
            metrics.write_started()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics.in_flight -= 1
            if is_write:
                metrics.write_finished()
            metrics.observe(service, method, status, time.perf_counter() - start)
