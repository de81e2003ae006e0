"""Moved to :mod:`keyless.http.requests` (issue #14: services import the HTTP plumbing and the key
files from below the composition root). This alias only keeps the services still being reshaped
on another branch importing; delete it once no module imports ``keyless.server.requests``
(tests/unit/layers/test_import_rules.py lists those importers)."""

from keyless.http.requests import *  # noqa: F403
