"""Metrics in the Prometheus text exposition format (version 0.0.4), through ``prometheus_client``.

The stack's front layer (:mod:`keyless.http.front`) counts requests per service, method and
status class, observes their latency in a histogram and tracks requests in flight; ``GET
/metrics`` renders them, together with the standard process and Python collectors
(``process_*``: CPU, memory, open files; ``python_*``: version, garbage collection) that
operators' dashboards and alerts expect. Each
:class:`Metrics` has its own registry, so several apps in one process (tests) never mix counts.

Several worker processes (``keyless serve --workers N``): the supervisor points
``PROMETHEUS_MULTIPROC_DIR`` (:data:`keyless.http.METRICS_DIR_ENV`) at a fresh directory before
anything imports ``prometheus_client``, so every worker's counters and histograms are kept in files
there and any worker's ``/metrics`` answers with their sums over all workers (including workers
that were replaced). The app's counters and states (:class:`Counted`, :class:`Latest`) are
carried into those files before each answer, before each scrape and, for what background work
changes (witnesses asked again while the log is idle), every :data:`SYNC_INTERVAL` seconds
(:meth:`Metrics.keep_synced`). What is read at scrape time — requests in flight, uptime, the
app's gauges, the ``process_*`` and ``python_*`` collectors — is the answering worker's own.

The in-flight gauge of *writes* doubles as the drain signal of graceful shutdown: the server stops
accepting connections, then waits until :attr:`Metrics.writes_in_flight` reaches zero.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from keyless.http import METRICS_DIR_ENV
from keyless.http.readings import Counted, Latest, Mirrored

# no *_created series: they double the output and no keyless dashboard or alert reads them
disable_created_metrics()  # type: ignore[no-untyped-call]

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
#: seconds between two carries of this worker's counters into the shared files (several workers)
SYNC_INTERVAL = 1.0



def service_of(path: str) -> str:
    """The service label of a request path (``other`` when nothing matches)."""
    # memoised (every request asks): only short paths, so that the memo stays small
    return _service_of_cached(path) if len(path) <= 128 else _service_of(path)


def _service_of(path: str) -> str:
    best = ("", "other")
    for prefix, name in SERVICE_PREFIXES:
        if path.startswith(prefix) and len(prefix) > len(best[0]):
            best = (prefix, name)
    return best[1]


_service_of_cached = functools.lru_cache(maxsize=4096)(_service_of)


class _Readings(Collector):
    """What is read when scraped: requests in flight, uptime and the app's own gauges."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        metrics = self._metrics
        yield GaugeMetricFamily("keyless_http_requests_in_flight",
                                "HTTP requests being answered.", value=metrics.in_flight)
        yield GaugeMetricFamily("keyless_uptime_seconds",
                                "Seconds since this process started serving.",
                                value=metrics.uptime())
        for name, (help_text, read) in sorted(metrics.gauges.items()):
            values = read()
            family: GaugeMetricFamily | CounterMetricFamily
            if isinstance(values, Mirrored) and metrics.shared:
                continue  # from the workers' files (Metrics.sync_counted)
            if isinstance(values, Counted):
                family = CounterMetricFamily(name, help_text, labels=[values.label])
            else:
                label = values.label if isinstance(values, Latest) else "name"
                family = GaugeMetricFamily(name, help_text, labels=[label])
            for label, value in sorted(values.items()):
                family.add_metric([label], value)
            yield family


class Metrics:
    """The metrics of one process (one registry)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "keyless_http_requests", "HTTP requests answered, by service and status.",
            ["service", "method", "status"], registry=self.registry,
        )
        self._duration = Histogram(
            "keyless_http_request_duration_seconds", "Time to answer HTTP requests.",
            ["service"], buckets=BUCKETS, registry=self.registry,
        )
        self._rate_limited = Counter(
            "keyless_http_rate_limited_requests",
            "Requests refused with 429 (a client over its budget).",
            ["service"], registry=self.registry,
        )
        self._busy = Counter(
            "keyless_http_busy_requests",
            "Requests refused with 503 + Retry-After because this process already had its "
            "maximum of writes, reads or request-body bytes in flight "
            "([server] max_requests_in_flight, max_body_bytes_in_flight).",
            ["service"], registry=self.registry,
        )
        #: the label children of a finished request, by (service, method, status class)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        #: read at scrape time, from this process only
        self._local = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self._local)
        PlatformCollector(registry=self._local)
        GCCollector(registry=self._local)
        self.in_flight = 0
        self.writes_in_flight = 0
        self._writes_idle = asyncio.Event()
        self._writes_idle.set()
        #: extra metrics set by the app, read when scraped: name → (help, reader); the reader
        #: returns {value of label "name": value} for a gauge (e.g. log tree sizes), or
        #: :class:`Counted` for a counter (e.g. certificates issued by issuer)
        self.gauges: dict[str, tuple[str, Callable[[], dict[str, float]]]] = {}
        self._local.register(_Readings(self))
        #: several workers: counters live in files that every worker's scrape sums
        self.shared = bool(os.environ.get(METRICS_DIR_ENV))
        self._counted: list[str] | None = None  # names of the Counted readers
        self._counted_of = 0  # of that many readers
        self._mirrors: dict[str, Counter | Gauge] = {}
        self._mirrored: dict[tuple[str, str], float] = {}

    def sync_counted(self) -> None:
        """(Several workers) Carry what the :class:`Counted` and :class:`Latest` readers hold in
        this process into its files, so that a scrape answered by another worker sums the counts
        and shows the latest states. Runs before each response starts, so that what a request
        changed is visible to a scrape sent after its answer."""
        if self._counted is None or self._counted_of != len(self.gauges):
            self._counted = [n for n, (_, read) in self.gauges.items()
                             if isinstance(read(), Mirrored)]
            self._counted_of = len(self.gauges)
        for name in self._counted:
            help_text, read = self.gauges[name]
            values = read()
            assert isinstance(values, Mirrored)
            mirror = self._mirrors.get(name)
            if mirror is None:
                mirror = (
                    Counter(name, help_text, [values.label], registry=None)
                    if isinstance(values, Counted)
                    else Gauge(name, help_text, [values.label], registry=None,
                               multiprocess_mode="mostrecent")
                )
                self._mirrors[name] = mirror
            for label, value in values.items():
                before = self._mirrored.get((name, label))
                if isinstance(mirror, Counter):
                    # a label seen at 0 is written too: a series that first appears at 1 hides
                    # that increase from rate() and increase()
                    if before is None or value > before:
                        child = mirror.labels(label)
                        if value > (before or 0.0):
                            child.inc(value - (before or 0.0))
                        self._mirrored[name, label] = value
                elif value != before:  # set only on change: "most recent" is the observation
                    mirror.labels(label).set(value)
                    self._mirrored[name, label] = value

    async def keep_synced(self, interval: float = SYNC_INTERVAL) -> None:
        """(Several workers) :meth:`sync_counted` every ``interval`` seconds until cancelled:
        what background work changes (not a request) reaches a scrape that another worker
        answers, even while this worker answers no request."""
        while True:
            await asyncio.sleep(interval)
            self.sync_counted()

    def uptime(self) -> float:
        return self._clock() - self.started

    def observe(self, service: str, method: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        key = (service, method, status // 100)
        children = self._children.get(key)
        if children is None:  # bounded: services x methods uvicorn parsed x status classes
            children = self._children[key] = (
                self._requests.labels(service, method, f"{status // 100}xx"),
                self._duration.labels(service),
            )
        children[0].inc()
        children[1].observe(seconds)
        if status == 429:
            self._rate_limited.labels(service).inc()

    def refused_busy(self, path: str) -> None:
        """Count a request refused by admission (:mod:`keyless.http.admission`)."""
        self._busy.labels(service_of(path)).inc()

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
        counted = self.registry
        shared = os.environ.get(METRICS_DIR_ENV)
        if shared:  # every worker's counters, summed (this one's as they are now)
            self.sync_counted()
            counted = CollectorRegistry()
            MultiProcessCollector(counted, path=shared)  # type: ignore[no-untyped-call]
        return (generate_latest(counted) + generate_latest(self._local)).decode()
