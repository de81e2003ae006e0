"""The bytes Sigstore tools store in registries (keyless.oci.sigstore) and how hostile
registry answers are read back."""

from __future__ import annotations

import json

import pytest

from keyless.oci.content import OCI_MANIFEST, Descriptor, Manifest, sha256_digest
from keyless.oci.errors import RegistryError
from keyless.oci.registry import RegistryClient
from keyless.oci.sigstore import (
    BUNDLE_MEDIA_TYPE,
    EMPTY_BLOB,
    EMPTY_MEDIA_TYPE,
    SIGN_PREDICATE_TYPE,
    bundle_referrer,
    legacy_config,
    legacy_tag,
    read_bundle_referrer,
    simple_signing_payload,
    statement,
)

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def test_empty_descriptor_is_the_spec_one() -> None:
    assert EMPTY_BLOB == b"{}"
    assert sha256_digest(EMPTY_BLOB) == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")


def test_simple_signing_payload_is_cosigns_bytes() -> None:
    assert simple_signing_payload("reg.example/app", DIGEST) == (
        b'{"critical":{"identity":{"docker-reference":"reg.example/app"},"image":'
        b'{"docker-manifest-digest":"' + DIGEST.encode() + b'"},"type":"cosign container image '
        b'signature"},"optional":null}')
    with_optional = json.loads(simple_signing_payload("r/a", DIGEST, {"k": "v"}))
    assert with_optional["optional"] == {"k": "v"}


def test_statement_and_tags() -> None:
    body = json.loads(statement("reg.example/app", DIGEST, SIGN_PREDICATE_TYPE, {}, {"a": "b"}))
    assert body == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "reg.example/app", "digest": {"sha256": "ab" * 32},
                     "annotations": {"a": "b"}}],
        "predicateType": SIGN_PREDICATE_TYPE,
        "predicate": {},
    }
    assert legacy_tag(DIGEST, "sig") == "sha256-" + "ab" * 32 + ".sig"
    config = json.loads(legacy_config([DIGEST, OTHER]))
    assert config["rootfs"]["diff_ids"] == [DIGEST, OTHER] and len(config["history"]) == 2


def _referrer(**changes: object) -> Manifest:
    subject = Descriptor(OCI_MANIFEST, DIGEST, 10)
    config = Descriptor(EMPTY_MEDIA_TYPE, sha256_digest(b"{}"), 2)
    layer = Descriptor(BUNDLE_MEDIA_TYPE, OTHER, 99)
    m = bundle_referrer(subject, config, layer, SIGN_PREDICATE_TYPE, "2026-01-01T00:00:00Z")
    body = {**json.loads(m.data), **changes}
    data = json.dumps(body).encode()
    return Manifest(data, OCI_MANIFEST, sha256_digest(data))


def test_bundle_referrer_shape_and_reading() -> None:
    m = _referrer()
    body = json.loads(m.data)
    assert body["artifactType"] == BUNDLE_MEDIA_TYPE
    assert body["annotations"] == {
        "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": SIGN_PREDICATE_TYPE,
    }
    read = read_bundle_referrer(m, DIGEST)
    assert read is not None and read.layer.digest == OTHER
    assert read.predicate_type == SIGN_PREDICATE_TYPE


@pytest.mark.parametrize("changes", [
    {"subject": {"mediaType": OCI_MANIFEST, "digest": OTHER, "size": 1}},  # about another image
    {"subject": None},
    {"layers": []},
    {"layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": OTHER, "size": 1}] * 2},
    {"layers": [{"mediaType": "application/json", "digest": OTHER, "size": 1}]},
    {"layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": "../../x", "size": 1}]},
    {"layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": OTHER, "size": -1}]},
])
def test_strangers_among_the_referrers_are_skipped(changes: dict[str, object]) -> None:
    assert read_bundle_referrer(_referrer(**changes), DIGEST) is None


@pytest.mark.parametrize("digest", ["../../v2/x", "sha256:../../x", "sha256:ab/cd", "", "sha256:"])
def test_descriptor_digests_are_checked(digest: str) -> None:
    """Digests from a registry end up in URL paths: only ``algorithm:encoded`` is accepted."""
    with pytest.raises(RegistryError):
        Descriptor.from_json({"mediaType": OCI_MANIFEST, "digest": digest, "size": 1})


@pytest.mark.parametrize("reference", ["../x", "a/b", "sha256:zz", "-tag", ""])
def test_manifest_references_are_checked(reference: str) -> None:
    client = RegistryClient("reg.example", credentials=lambda _: None)
    with pytest.raises(RegistryError, match="not a tag or digest"):
        client.get_manifest("o/app", reference)
    with pytest.raises(RegistryError, match="not a tag or digest"):
        client.put_manifest("o/app", reference, b"{}", OCI_MANIFEST)
