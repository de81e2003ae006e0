"""Sign, attest and verify container images in their registry (issue #15).

The library API behind ``keyless image``::

    from keyless.image import open_registry, sign_image, verify_image
    from keyless.oci.reference import parse_reference

    ref = parse_reference("registry.example/app:1.0")
    with open_registry(ref) as registry:
        signed = sign_image(signer, registry, ref)          # bound to the manifest digest
        found = verify_image(verifier, registry, ref, policy)

A tag is resolved to its manifest digest once, by hashing the manifest bytes the registry
served; everything after that is bound to the digest. Two storage formats, both directions:

* ``bundle`` (default, cosign 3 and ``actions/attest``): a v0.3 bundle with a DSSE in-toto
  statement about the digest, stored as an OCI 1.1 referrer (:mod:`keyless.oci.sigstore`);
* ``legacy`` (cosign 2): ``sha256-<hex>.sig`` / ``.att`` tags with annotated layers
  (:mod:`keyless.image_legacy`).

Unlike cosign, a *signature* is only a statement with the signing predicate type
(``https://sigstore.dev/cosign/sign/v1``): an attestation signed by the same identity never
passes as a signature. ``verify`` prefers bundles and reads the legacy tag only when no bundle
verifies.

The signer and verifier are used through :func:`_sign_statement`, :func:`_sign_payload` and
:func:`_verify_bundle` only, so that their API can change in one place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keyless.errors import Error, InvalidInput, shown
from keyless.image_statements import NoValidSignature, VerifiedStatement, check_statement_kind
from keyless.oci.content import MAX_BLOB, Descriptor, Manifest
from keyless.oci.errors import RegistryError
from keyless.oci.reference import Reference
from keyless.oci.registry import RegistryClient
from keyless.oci.sigstore import (
    BUNDLE_MEDIA_PREFIX,
    BUNDLE_MEDIA_TYPE,
    EMPTY_BLOB,
    EMPTY_MEDIA_TYPE,
    SIGN_PREDICATE_TYPE,
    bundle_referrer,
    read_bundle_referrer,
    statement,
)

FORMATS = ("bundle", "legacy")
#: bundles looked at per image: a registry full of referrers must not make verify run forever
MAX_CANDIDATES = 256
#: platform manifests of an index signed by ``--recursive``
MAX_PLATFORMS = 256
TAG_WARNING = (
    "{ref} is a tag: it was resolved to {digest} and that digest is what is signed; a tag can "
    "move, so sign and deploy by digest to be sure of the image"
)


# --- the signer and verifier, in one place -------------------------------------------------------


def _sign_statement(signer: Any, payload: bytes) -> Any:
    """A DSSE bundle over an in-toto statement."""
    return signer.sign_statement(payload)


def _sign_payload(signer: Any, payload: bytes) -> Any:
    """A message-signature bundle over raw bytes (legacy simple signing)."""
    return signer.sign_artifact(payload)


def _verify_bundle(verifier: Any, bundle: Any, artifact_sha256: bytes | None, policy: Any) -> Any:
    """Verify a bundle against the trusted root and the identity policy."""
    from keyless.verify.artifact import Artifact

    artifact = Artifact(artifact_sha256) if artifact_sha256 is not None else None
    return verifier.verify(bundle, artifact, policy=policy)


def _log_urls(verifier: Any) -> dict[bytes, str]:
    """Rekor v1 URLs by log ID from the verifier's trusted root (legacy signatures)."""
    from keyless.image_legacy import log_urls_of

    return log_urls_of(getattr(getattr(verifier, "trust", None), "root", None))


# --- registry and targets ------------------------------------------------------------------------


def open_registry(
    ref: Reference,
    *,
    cacert: str | None = None,
    allow_http: bool = False,
    credentials: Callable[[str], Any] | None = None,
) -> RegistryClient:
    """A client for the reference's registry (credentials from the Docker config by default)."""
    return RegistryClient(
        ref.api_host, credentials=credentials, cacert=cacert, allow_http=allow_http
    )


@dataclass(frozen=True)
class ImageTarget:
    """A manifest (or index) bound to its digest."""

    reference: Reference  #: with the digest
    manifest: Manifest

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def descriptor(self) -> Descriptor:
        return self.manifest.descriptor()


def resolve(registry: RegistryClient, ref: Reference) -> ImageTarget:
    """Fetch the manifest once and bind the reference to the digest of its bytes."""
    manifest = registry.get_manifest(ref.repository, ref.identifier)
    return ImageTarget(ref.with_digest(manifest.digest), manifest)


def targets(
    registry: RegistryClient,
    ref: Reference,
    *,
    recursive: bool = False,
    on_warning: Callable[[str], None] | None = None,
) -> list[ImageTarget]:
    """The image, and with ``recursive`` every platform manifest of an index."""
    top = resolve(registry, ref)
    if ref.digest is None and on_warning is not None:
        on_warning(TAG_WARNING.format(ref=ref, digest=top.digest))
    found = [top]
    if recursive and top.manifest.is_index:
        children = list(registry.iter_index_children(top.manifest))
        if len(children) > MAX_PLATFORMS:
            raise InvalidInput(
                f"the index {top.digest} lists {len(children)} manifests; --recursive signs at "
                f"most {MAX_PLATFORMS}"
            )
        for child in children:
            child_ref = ref.with_digest(child.digest)
            found.append(resolve(registry, child_ref))
    return found


# --- signing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedImage:
    """Where one signature or attestation of one manifest was stored."""

    reference: Reference  #: image@digest
    format: str
    location: str  #: the referrer manifest's digest, or the legacy tag


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown signature format {shown(fmt)} (bundle or legacy)")


def _store_bundle(
    registry: RegistryClient, target: ImageTarget, bundle_json: bytes, predicate_type: str
) -> str:
    repo = target.reference.repository
    config = registry.upload_blob(repo, EMPTY_BLOB, EMPTY_MEDIA_TYPE)
    layer = registry.upload_blob(repo, bundle_json, BUNDLE_MEDIA_TYPE)
    manifest = bundle_referrer(target.descriptor, config, layer, predicate_type)
    registry.push_referrer(repo, manifest, target.digest, BUNDLE_MEDIA_TYPE)
    return manifest.digest


def sign_image(
    signer: Any,
    registry: RegistryClient,
    ref: Reference,
    *,
    fmt: str = "bundle",
    annotations: Mapping[str, str] | None = None,
    recursive: bool = False,
    on_warning: Callable[[str], None] | None = None,
) -> list[SignedImage]:
    """Sign the image (and with ``recursive`` each platform) and store the signatures."""
    _check_format(fmt)
    done: list[SignedImage] = []
    for target in targets(registry, ref, recursive=recursive, on_warning=on_warning):
        if fmt == "legacy":
            from keyless.image_legacy import store_signature

            location = store_signature(
                registry, target, lambda p: _sign_payload(signer, p), annotations
            )
        else:
            payload = statement(
                target.reference.name, target.digest, SIGN_PREDICATE_TYPE, {}, annotations
            )
            bundle = _sign_statement(signer, payload)
            location = _store_bundle(registry, target, bundle.to_bytes(), SIGN_PREDICATE_TYPE)
        done.append(SignedImage(target.reference, fmt, location))
    return done


def attest_image(
    signer: Any,
    registry: RegistryClient,
    ref: Reference,
    predicate_type: str,
    predicate: Mapping[str, Any],
    *,
    fmt: str = "bundle",
    recursive: bool = False,
    on_warning: Callable[[str], None] | None = None,
) -> list[SignedImage]:
    """Sign an in-toto statement about the image with the user's predicate and store it."""
    _check_format(fmt)
    if not predicate_type:
        raise InvalidInput("an attestation needs a predicate type")
    if predicate_type == SIGN_PREDICATE_TYPE:
        raise InvalidInput(
            f"the predicate type {SIGN_PREDICATE_TYPE} is reserved for signatures "
            "(use `keyless image sign`)"
        )
    done: list[SignedImage] = []
    for target in targets(registry, ref, recursive=recursive, on_warning=on_warning):
        payload = statement(target.reference.name, target.digest, predicate_type, predicate)
        bundle = _sign_statement(signer, payload)
        if fmt == "legacy":
            from keyless.image_legacy import store_attestation

            location = store_attestation(registry, target, bundle, predicate_type)
        else:
            location = _store_bundle(registry, target, bundle.to_bytes(), predicate_type)
        done.append(SignedImage(target.reference, fmt, location))
    return done


# --- verification --------------------------------------------------------------------------------


@dataclass
class _Attempts:
    reasons: list[str] = field(default_factory=list)
    seen: int = 0

    def failed(self, where: str, exc: BaseException) -> None:
        self.reasons.append(f"{where}: {' '.join(str(exc).split())}")


def _bundle_candidates(
    registry: RegistryClient, target: ImageTarget, attempts: _Attempts
) -> list[tuple[str, bytes]]:
    """(referrer digest, bundle bytes) of every referrer that holds a bundle."""
    repo = target.reference.repository
    found: list[tuple[str, bytes]] = []
    for d in registry.referrers(repo, target.digest):
        if d.artifact_type and not d.artifact_type.startswith(BUNDLE_MEDIA_PREFIX):
            continue
        if len(found) >= MAX_CANDIDATES:
            attempts.reasons.append(f"more than {MAX_CANDIDATES} bundles; the rest not read")
            break
        try:
            manifest = registry.get_manifest(repo, d.digest)
            referrer = read_bundle_referrer(manifest, target.digest)
            if referrer is None:
                continue
            found.append((d.digest, registry.get_blob(repo, referrer.layer.digest, limit=MAX_BLOB)))
        except RegistryError as exc:
            attempts.failed(f"referrer {d.digest}", exc)
    return found


def _check_annotations(statement_: dict[str, Any], wanted: Mapping[str, str], digest: str) -> None:
    """Each ``-a KEY=VALUE`` must be in the annotations of the subject naming the digest."""
    if not wanted:
        return
    hex_digest = digest.partition(":")[2]
    for subject in statement_.get("subject") or []:
        if isinstance(subject, dict) and (subject.get("digest") or {}).get("sha256") == hex_digest:
            have = subject.get("annotations") or {}
            if isinstance(have, dict) and all(have.get(k) == v for k, v in wanted.items()):
                return
    raise NoValidSignature("the signature's annotations do not match the ones required")


def verify_image(
    verifier: Any,
    registry: RegistryClient,
    ref: Reference,
    policy: Any,
    *,
    annotations: Mapping[str, str] | None = None,
) -> list[VerifiedStatement]:
    """Every signature of the image that verifies for ``policy``; raises
    :class:`NoValidSignature` (listing each candidate's failure) when there is none."""
    target = resolve(registry, ref)
    verified, attempts = _verify_bundles(
        verifier,
        registry,
        target,
        policy,
        predicate_type=SIGN_PREDICATE_TYPE,
        annotations=annotations or {},
    )
    if not verified:
        from keyless.image_legacy import verify_signatures

        verified = verify_signatures(
            registry,
            target,
            lambda b, sha: _verify_bundle(verifier, b, sha, policy),
            optional=annotations or {},
            reasons=attempts.reasons,
            log_urls=_log_urls(verifier),
        )
    if not verified:
        raise NoValidSignature(_summary("signature", target, attempts))
    return verified


def verify_image_attestations(
    verifier: Any,
    registry: RegistryClient,
    ref: Reference,
    policy: Any,
    *,
    predicate_type: str | None = None,
) -> list[VerifiedStatement]:
    """Every attestation (not signature) of the image that verifies for ``policy``, of
    ``predicate_type`` when given."""
    target = resolve(registry, ref)
    verified, attempts = _verify_bundles(
        verifier, registry, target, policy, predicate_type=predicate_type, attestation=True
    )
    if not verified:
        from keyless.image_legacy import verify_attestations

        verified = verify_attestations(
            registry,
            target,
            lambda b, sha: _verify_bundle(verifier, b, sha, policy),
            predicate_type=predicate_type,
            reasons=attempts.reasons,
            log_urls=_log_urls(verifier),
        )
    if not verified:
        what = f"attestation of type {predicate_type}" if predicate_type else "attestation"
        raise NoValidSignature(_summary(what, target, attempts))
    return verified


def _summary(what: str, target: ImageTarget, attempts: _Attempts) -> str:
    if not attempts.reasons:
        return f"no {what} found for {target.reference}"
    shown_reasons = "; ".join(attempts.reasons[:5])
    more = f" (and {len(attempts.reasons) - 5} more)" if len(attempts.reasons) > 5 else ""
    return f"no valid {what} for {target.reference}: {shown_reasons}{more}"


def _verify_bundles(
    verifier: Any,
    registry: RegistryClient,
    target: ImageTarget,
    policy: Any,
    *,
    predicate_type: str | None,
    attestation: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> tuple[list[VerifiedStatement], _Attempts]:
    attempts = _Attempts()
    verified: list[VerifiedStatement] = []
    digest_bytes = bytes.fromhex(target.digest.partition(":")[2])
    for where, data in _bundle_candidates(registry, target, attempts):
        attempts.seen += 1
        try:
            result = _verify_bundle(verifier, data, digest_bytes, policy)
            statement_ = getattr(result, "statement", None)
            check_statement_kind(statement_, predicate_type=predicate_type, attestation=attestation)
            assert statement_ is not None
            _check_annotations(statement_, annotations or {}, target.digest)
        except Error as exc:
            attempts.failed(f"bundle {where}", exc)
            continue
        verified.append(VerifiedStatement(target.reference, "bundle", where, result, statement_))
    return verified, attempts


# --- tree ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeEntry:
    """One thing stored about the image (unverified: what the registry says)."""

    kind: str  #: "signature", "attestation", "bundle", "referrer", "legacy-sig", ...
    location: str
    artifact_type: str | None = None
    predicate_type: str | None = None
    count: int = 1


def image_tree(registry: RegistryClient, ref: Reference) -> tuple[ImageTarget, list[TreeEntry]]:
    """The referrers of the image and its legacy ``.sig`` / ``.att`` / ``.sbom`` tags."""
    from keyless.oci.sigstore import legacy_layers, legacy_tag

    target = resolve(registry, ref)
    repo = target.reference.repository
    entries: list[TreeEntry] = []
    for d in registry.referrers(repo, target.digest):
        predicate = d.annotations.get("dev.sigstore.bundle.predicateType")
        kind = "referrer"
        if d.artifact_type and d.artifact_type.startswith(BUNDLE_MEDIA_PREFIX):
            if predicate is None:
                try:
                    manifest = registry.get_manifest(repo, d.digest)
                    read = read_bundle_referrer(manifest, target.digest)
                    predicate = read.predicate_type if read else None
                except RegistryError:
                    predicate = None
            kind = "signature" if predicate == SIGN_PREDICATE_TYPE else "attestation"
        entries.append(TreeEntry(kind, d.digest, d.artifact_type, predicate))
    for suffix, kind in (
        ("sig", "legacy-signature"),
        ("att", "legacy-attestation"),
        ("sbom", "legacy-sbom"),
    ):
        tag = legacy_tag(target.digest, suffix)
        legacy = registry.find_manifest(repo, tag)
        if legacy is not None:
            entries.append(TreeEntry(kind, tag, count=len(legacy_layers(legacy))))
    return target, entries


def statements_json(found: Sequence[VerifiedStatement]) -> str:
    """``--output json``: one object per verified signature or attestation."""
    from keyless.verify.policy import certificate_identities, certificate_issuer

    out: list[dict[str, Any]] = []
    for v in found:
        cert = getattr(v.result, "certificate", None)
        times = getattr(v.result, "verified_times", ())
        out.append(
            {
                "image": str(v.reference),
                "format": v.format,
                "location": v.location,
                "predicateType": v.predicate_type,
                "identity": certificate_identities(cert) if cert is not None else [],
                "issuer": certificate_issuer(cert) if cert is not None else None,
                "verifiedTimes": [t.isoformat() for t in times],
                "statement": v.statement,
            }
        )
    return json.dumps(out, indent=2)
