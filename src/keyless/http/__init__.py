"""HTTP plumbing shared by every service: the error table (keyless exceptions → JSON 4xx/5xx),
request limits and body readers, per-client budgets, metrics, access logs and the tile-route
builder of both log personalities. Services import this package, never the composition root
:mod:`keyless.server`."""
