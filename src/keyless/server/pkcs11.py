"""Moved to :mod:`keyless.storage.pkcs11` (issue #14: services import the HTTP plumbing and the key
files from below the composition root). This alias only keeps the services still being reshaped
on another branch importing; delete it once no module imports ``keyless.server.pkcs11``
(tests/unit/layers/test_import_rules.py lists those importers)."""

from keyless.storage.pkcs11 import *  # noqa: F403
