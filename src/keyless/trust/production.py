"""The public-good production instance as shipped with the package (no network).

Its TUF repository URL, and the ``root.json`` and ``trusted_root.json`` shipped under
``keyless/_data``. The ground for both :mod:`keyless.trust.tuf` (the packaged TUF root and
fallback) and :mod:`keyless.trust.sources` (the offline default).
"""

from __future__ import annotations

from importlib import resources

from keyless.formats.trustroot import TrustedRoot

__all__ = ["PRODUCTION_TUF_URL", "packaged", "production_trusted_root"]

#: The public-good production TUF repository (protocols.md §10).
PRODUCTION_TUF_URL = "https://tuf-repo-cdn.sigstore.dev"


def packaged(name: str) -> bytes:
    """A file shipped under ``keyless/_data`` (production ``trusted_root.json``, ``root.json``)."""
    return (resources.files("keyless") / "_data" / name).read_bytes()


def production_trusted_root() -> TrustedRoot:
    """The public-good production trusted root as shipped with the package (no network)."""
    return TrustedRoot.from_json(packaged("trusted_root.json"))
