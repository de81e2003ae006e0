"""The public library API: ``keyless.verify``, ``keyless.sign``, ``keyless.trust`` (README
"Using keyless from Python"): lazy exports, trust loading, results and attestation checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import keyless.sign
import keyless.trust
import keyless.verify
from keyless.errors import ConfigError, Error, VerificationError
from keyless.verify import (
    Artifact,
    DSSEError,
    Identity,
    IdentityMismatchError,
    MalformedBundleError,
    Verifier,
)

BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GHA = "https://token.actions.githubusercontent.com"
POLICY = Identity(identity=BEACON, issuer=GHA)


@pytest.fixture(scope="module")
def cases(vectors: Path) -> Path:
    return vectors / "conformance" / "bundle-verify"


@pytest.fixture(scope="module")
def verifier(vectors: Path) -> Verifier:
    return Verifier.from_trusted_root(vectors / "public-good/production/trusted_root.json")


def test_importing_the_api_imports_nothing_heavy() -> None:
    """``import keyless.verify`` (and sign, trust) stays cheap: the names load on first use."""
    code = (
        "import sys, keyless.verify, keyless.sign, keyless.trust\n"
        "heavy = [m for m in ('cryptography', 'httpx', 'tuf', 'keyless.formats.bundle')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("module", [keyless.verify, keyless.sign, keyless.trust])
def test_every_exported_name_resolves(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    for name in names:
        assert getattr(module, name) is not None
        assert name in dir(module)
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        module.missing  # type: ignore[attr-defined]  # noqa: B018


def test_the_public_names_are_the_library_classes() -> None:
    from keyless.verify.errors import TrustRootError
    from keyless.verify.policy import Identity as PolicyIdentity
    from keyless.verify.verifier import Verifier as CoreVerifier

    assert keyless.verify.Identity is PolicyIdentity
    assert issubclass(keyless.verify.Verifier, CoreVerifier)
    assert keyless.verify.TrustRootError is TrustRootError
    assert issubclass(keyless.verify.VerificationError, Error)
    # the old import paths of the signer module keep working
    from keyless.sign import SigningServices, sign_files
    from keyless.sign.signer import Signer as CoreSigner

    assert issubclass(keyless.sign.Signer, CoreSigner)
    assert callable(sign_files) and SigningServices.__name__ == "SigningServices"


def test_verify_artifact_reports_what_was_verified(verifier: Verifier, cases: Path) -> None:
    bundle = cases / "happy-path-v0.3" / "bundle.sigstore.json"
    for artifact in (cases / "a.txt", str(cases / "a.txt"), (cases / "a.txt").read_bytes()):
        result = verifier.verify_artifact(artifact, bundle, POLICY)
        assert (result.identity, result.issuer) == (BEACON, GHA)
        assert result.signed_at == min(result.verified_times)
        assert result.log_entries == result.bundle.verification_material.tlog_entries
        assert result.statement is None and result.predicate_type is None
    digest = Artifact.from_path(cases / "a.txt")
    assert verifier.verify_artifact(digest, bundle.read_bytes(), POLICY).identity == BEACON


def test_verify_artifact_raises_the_failed_check(verifier: Verifier, cases: Path) -> None:
    bundle = cases / "happy-path-v0.3" / "bundle.sigstore.json"
    with pytest.raises(IdentityMismatchError):
        verifier.verify_artifact(cases / "a.txt", bundle, Identity(identity="x@y", issuer=GHA))
    with pytest.raises(MalformedBundleError):
        verifier.verify_artifact(cases / "a.txt", b"{}", POLICY)
    with pytest.raises(Error, match="cannot read bundle"):
        verifier.verify_artifact(cases / "a.txt", cases / "missing.json", POLICY)


def test_verify_attestation_checks_the_statement(verifier: Verifier, cases: Path) -> None:
    dsse = cases / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json"
    slsa = "https://slsa.dev/provenance/v1"
    result = verifier.verify_attestation(cases / "a.txt", dsse, POLICY, predicate_type=slsa)
    assert result.predicate_type == slsa and result.statement is not None
    with pytest.raises(DSSEError, match=re.escape(f"predicateType is {slsa!r}, not 'other'")):
        verifier.verify_attestation(cases / "a.txt", dsse, POLICY, predicate_type="other")
    message = cases / "happy-path-v0.3" / "bundle.sigstore.json"
    with pytest.raises(DSSEError, match="holds a message signature, not an attestation"):
        verifier.verify_attestation(cases / "a.txt", message, POLICY)


def test_trust_loading(tmp_path: Path) -> None:
    offline = Verifier.production(offline=True, tuf_cache=str(tmp_path / "tuf"))
    assert offline.trust.root.tlogs
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="invalid trust config"):
        Verifier.from_trust_config(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="is not an http:// or https:// URL"):
        Verifier.for_instance("ftp://example.com")
    assert not issubclass(ConfigError, VerificationError)


def test_signer_needs_a_signing_config(vectors: Path) -> None:
    from keyless.trust import ClientTrustConfig, load_trusted_root

    root = load_trusted_root(vectors / "public-good/production/trusted_root.json")
    with pytest.raises(ConfigError, match="no signing config"):
        keyless.sign.Signer.from_client_trust_config(
            ClientTrustConfig(root), identity_token="a.b.c"
        )
