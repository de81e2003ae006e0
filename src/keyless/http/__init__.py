"""HTTP plumbing shared by every service: the error table (keyless exceptions → JSON 4xx/5xx),
request limits and body readers, per-client budgets, metrics, access logs and the tile-route
builder of both log personalities. Services import this package, never the composition root
:mod:`keyless.server`."""

#: where the worker processes of ``keyless serve --workers N`` keep their counters
#: (prometheus_client's multiprocess mode; :mod:`keyless.http.metrics`); here, in a module that
#: does not import prometheus_client, because it must be set before that import
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
