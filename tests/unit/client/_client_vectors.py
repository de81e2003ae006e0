"""Shared loaders for the client unit tests (real public-good and conformance vectors)."""

from __future__ import annotations

from pathlib import Path

from conftest import VECTORS, require
from keyless.formats.trustroot import TrustedRoot
from keyless.verify.policy import Identity

CASES = VECTORS / "conformance" / "bundle-verify"
SP = VECTORS / "sigstore-python"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GHA = "https://token.actions.githubusercontent.com"
BEACON_POLICY = Identity(issuer=GHA, identity=BEACON)


def vectors_present() -> None:
    require(CASES.is_dir() and SP.is_dir(), f"test vectors at {VECTORS}")


def root(name: str) -> TrustedRoot:
    """``production`` / ``staging`` public-good root, or a conformance case's own root."""
    vectors_present()
    if name in ("production", "staging"):
        path = VECTORS / "public-good" / name / "trusted_root.json"
    else:
        path = CASES / name / "trusted_root.json"
    return TrustedRoot.from_json(path.read_bytes())


def case_root(case: str) -> TrustedRoot:
    return root(case) if (CASES / case / "trusted_root.json").exists() else root("production")


def read(path: Path) -> bytes:
    vectors_present()
    return path.read_bytes()
