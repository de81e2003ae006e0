"""The sigstore-python vector bundles verify as vectors/README.md says, and tampered ones fail
with the right error class (protocols.md §9, Appendix)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from _client_vectors import BEACON_POLICY, CASES, SP, VECTORS, read, root

from keyless.formats.sct import SCTError
from keyless.formats.trustroot import CertificateAuthority
from keyless.merkle import InclusionProofError
from keyless.verify.artifact import Artifact
from keyless.verify.errors import (
    ArtifactMismatchError,
    CertificateChainError,
    CheckpointError,
    DSSEError,
    EmbeddedSCTError,
    IdentityMismatchError,
    InclusionPromiseError,
    LogEntryMismatchError,
    MalformedBundleError,
    NotEnoughVerifiedTimesError,
    SignatureMismatchError,
    UntrustedLogError,
)
from keyless.verify.policy import AllOf, GitHubWorkflow, Identity
from keyless.verify.verifier import Verifier

ALEXIS = Identity("https://accounts.google.com", "alexis.challande@trailofbits.com")
JKU = Identity("https://github.com/login/oauth", "jku@goto.fi")
RFC8785 = Identity(
    "https://token.actions.githubusercontent.com",
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
)


def test_tsa_bundle_valid_with_time_from_set() -> None:
    """Neither TSA token verifies against staging: the SET alone gives the one verified time."""
    result = Verifier(root("staging")).verify(
        read(SP / "bundle.txt.sigstore"), Artifact.from_path(SP / "bundle.txt"), policy=ALEXIS
    )
    assert len(result.verified_times) == 1
    assert result.certificate is not None


def test_tsa_bundle_with_test_tsa_has_two_verified_times() -> None:
    tsa = CertificateAuthority.from_json(json.loads(read(SP / "tsa_ca.json")), "tsa")
    trust = dataclasses.replace(root("staging"), timestamp_authorities=(tsa,))
    result = Verifier(trust).verify(
        read(SP / "bundle.txt.sigstore"), Artifact.from_path(SP / "bundle.txt"), policy=ALEXIS
    )
    assert len(result.verified_times) == 2


def test_tsa_bundle_rejects_other_artifact_and_identity() -> None:
    v = Verifier(root("staging"))
    bundle = read(SP / "bundle.txt.sigstore")
    with pytest.raises(ArtifactMismatchError):
        v.verify(bundle, Artifact.from_path(SP / "staging-rekor-v2.txt"), policy=ALEXIS)
    with pytest.raises(IdentityMismatchError, match="SAN"):
        v.verify(
            bundle,
            Artifact.from_path(SP / "bundle.txt"),
            policy=Identity("https://accounts.google.com", "bob@example.com"),
        )
    with pytest.raises(IdentityMismatchError, match="issuer"):
        v.verify(bundle, Artifact.from_path(SP / "bundle.txt"), policy=JKU)


def test_rekor_v2_bundle_valid() -> None:
    result = Verifier(root("staging")).verify(
        read(SP / "staging-rekor-v2.txt.sigstore.json"),
        Artifact.from_path(SP / "staging-rekor-v2.txt"),
        policy=JKU,
    )
    assert len(result.verified_times) == 1


def test_rekor_v2_bundle_not_valid_against_production() -> None:
    with pytest.raises((UntrustedLogError, CertificateChainError, NotEnoughVerifiedTimesError)):
        Verifier(root("production")).verify(
            read(SP / "staging-rekor-v2.txt.sigstore.json"),
            Artifact.from_path(SP / "staging-rekor-v2.txt"),
            policy=JKU,
        )


@pytest.mark.parametrize("by_digest", [False, True])
def test_dsse_bundle_valid_by_file_or_digest(by_digest: bool) -> None:
    a = VECTORS / "conformance" / "a.txt"
    artifact = (
        Artifact.from_argument("sha256:" + Artifact.from_path(a).sha256.hex())
        if by_digest
        else Artifact.from_path(a)
    )
    result = Verifier(root("staging")).verify(
        read(SP / "a.dsse.staging-rekor-v2.txt.sigstore.json"), artifact, policy=BEACON_POLICY
    )
    assert result.statement is not None
    assert result.statement["subject"][0]["name"] == "a.txt"


def test_dsse_bundle_rejects_non_subject() -> None:
    with pytest.raises(ArtifactMismatchError, match="subject"):
        Verifier(root("staging")).verify(
            read(SP / "a.dsse.staging-rekor-v2.txt.sigstore.json"),
            Artifact.from_bytes(b"not a.txt"),
            policy=BEACON_POLICY,
        )


def test_github_bundle_valid_with_workflow_claims() -> None:
    policy = AllOf(
        [RFC8785, GitHubWorkflow(repository="trailofbits/rfc8785.py", ref="refs/tags/v0.1.2")]
    )
    Verifier(root("production")).verify(
        read(SP / "bundle_v3_github.whl.sigstore"),
        Artifact.from_path(SP / "bundle_v3_github.whl"),
        policy=policy,
    )


def test_github_bundle_wrong_claims() -> None:
    v = Verifier(root("production"))
    bundle = read(SP / "bundle_v3_github.whl.sigstore")
    artifact = Artifact.from_path(SP / "bundle_v3_github.whl")
    with pytest.raises(IdentityMismatchError, match="ref"):
        v.verify(bundle, artifact, policy=GitHubWorkflow(ref="refs/tags/v0.1.3"))
    with pytest.raises(IdentityMismatchError, match="repository"):
        v.verify(bundle, artifact, policy=GitHubWorkflow(repository="evil/rfc8785.py"))
    v.verify(
        bundle,
        artifact,
        policy=Identity(RFC8785.issuer, identity_regex=r"https://github\.com/trailofbits/.*"),
    )
    with pytest.raises(IdentityMismatchError):
        v.verify(bundle, artifact, policy=Identity(RFC8785.issuer, identity_regex=r"github\.com"))


def test_github_bundle_needs_its_ct_log() -> None:
    """Without the CT log keys the embedded SCT cannot verify."""
    trust = dataclasses.replace(root("production"), ctlogs=())
    with pytest.raises(EmbeddedSCTError):
        Verifier(trust).verify(
            read(SP / "bundle_v3_github.whl.sigstore"),
            Artifact.from_path(SP / "bundle_v3_github.whl"),
            policy=RFC8785,
        )


#: conformance _fail cases -> the specific error class keyless must raise.
EXPECTED_ERRORS: dict[str, type[Exception] | tuple[type[Exception], ...]] = {
    "bundle-empty-certificate-chain_fail": MalformedBundleError,
    "bundle-from-wrong-instance_fail": CertificateChainError,
    "bundle-invalid-base64-signature_fail": MalformedBundleError,
    "bundle-malformed-json_fail": MalformedBundleError,
    "bundle-negative-log-index_fail": MalformedBundleError,
    "bundle-unknown-version_fail": MalformedBundleError,
    "bundle-with-root-cert_fail": CertificateChainError,
    "checkpoint-bad-keyhint_fail": CheckpointError,
    "checkpoint-wrong-roothash_fail": CheckpointError,
    "dsse-invalid-sig_fail": SignatureMismatchError,
    "dsse-mismatch-envelope_fail": LogEntryMismatchError,
    "dsse-mismatch-sig_fail": LogEntryMismatchError,
    "inclusion-proof-corrupted-hash_fail": InclusionProofError,
    "incorrect-public-key_fail": (InclusionProofError, LogEntryMismatchError),
    "integrated-time-in-future_fail": CertificateChainError,
    "intoto-log-entry-mismatch_fail": LogEntryMismatchError,
    "invalid-checkpoint-signature_fail": CheckpointError,
    "invalid-ct-key_fail": (EmbeddedSCTError, SCTError),
    "message-digest-mismatch_fail": ArtifactMismatchError,
    "rekor2-checkpoint-missing-log-signature_fail": CheckpointError,
    "rekor2-checkpoint-missing-origin_fail": CheckpointError,
    "rekor2-checkpoint-no-matching-signature_fail": CheckpointError,
    "rekor2-dsse-invalid-sig_fail": SignatureMismatchError,
    "rekor2-dsse-mismatch-envelope_fail": LogEntryMismatchError,
    "rekor2-no-timestamp_fail": NotEnoughVerifiedTimesError,
    "rekor2-timestamp-payload-mismatch_fail": NotEnoughVerifiedTimesError,
    "set-invalid-signature_fail": InclusionPromiseError,
    "signature-mismatch_fail": SignatureMismatchError,
    "wrong-hashedrekord-artifact_fail": LogEntryMismatchError,
    "wrong-hashedrekord-entry_fail": LogEntryMismatchError,
    "wrong-material_fail": ArtifactMismatchError,
}


@pytest.mark.parametrize("case", sorted(EXPECTED_ERRORS))
def test_conformance_failure_class(case: str) -> None:
    from _client_vectors import case_root

    d = CASES / case
    artifact = Artifact.from_path(d / "artifact" if (d / "artifact").exists() else CASES / "a.txt")
    identity = (d / "identity").read_text().strip() if (d / "identity").exists() else None
    policy = Identity(BEACON_POLICY.issuer, identity) if identity else BEACON_POLICY
    with pytest.raises(EXPECTED_ERRORS[case]):
        Verifier(case_root(case)).verify(read(d / "bundle.sigstore.json"), artifact, policy=policy)


def test_dsse_bundle_with_wrong_payload_type() -> None:
    raw = json.loads(read(CASES / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json"))
    raw["dsseEnvelope"]["payloadType"] = "text/plain"
    with pytest.raises((SignatureMismatchError, DSSEError)):
        Verifier(root("production")).verify(
            json.dumps(raw), Artifact.from_path(CASES / "a.txt"), policy=BEACON_POLICY
        )
