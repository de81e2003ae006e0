"""Bundle, trusted root, signing config and ClientTrustConfig models (protocols.md §6, §7):
strict parsing with errors naming the field, lossless round trips, v0.3 writing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from _client_vectors import CASES, SP, VECTORS, read

from keyless.errors import ConfigError, InvalidInput
from keyless.formats.bundle import BUNDLE_V03_NEW, Bundle
from keyless.formats.jsonreader import ValidityPeriod
from keyless.formats.signingconfig import Service, ServiceSelector, SigningConfig
from keyless.formats.trustroot import ClientTrustConfig, TrustedRoot
from keyless.sign import SigningServices, select_services


@pytest.mark.parametrize(
    "path",
    [
        SP / "bundle.txt.sigstore",
        SP / "staging-rekor-v2.txt.sigstore.json",
        SP / "a.dsse.staging-rekor-v2.txt.sigstore.json",
        SP / "bundle_v3_github.whl.sigstore",
        CASES / "happy-path-v0.1" / "bundle.sigstore.json",
        CASES / "intoto-with-custom-trust-root" / "bundle.sigstore.json",
        CASES / "managed-key-happy-path" / "bundle.sigstore.json",
    ],
    ids=lambda p: p.parent.name + "/" + p.name,
)
def test_bundle_round_trip(path: object) -> None:
    bundle = Bundle.from_json(read(path))  # type: ignore[arg-type]
    again = Bundle.from_json(bundle.to_bytes())
    assert again == bundle


def test_v03_writer_is_fully_populated() -> None:
    bundle = Bundle.from_json(read(SP / "staging-rekor-v2.txt.sigstore.json"))
    doc = bundle.to_json()
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    assert doc["mediaType"] == bundle.media_type == BUNDLE_V03_NEW  # kept as read
    assert set(entry) >= {"logIndex", "logId", "kindVersion", "integratedTime",
                          "inclusionProof", "canonicalizedBody"}
    assert isinstance(entry["logIndex"], str) and isinstance(entry["integratedTime"], str)
    assert entry["inclusionProof"]["hashes"] is not None
    assert "certificate" in doc["verificationMaterial"]


def _happy() -> dict[str, object]:
    value: dict[str, object] = json.loads(read(CASES / "happy-path-v0.3" / "bundle.sigstore.json"))
    return value


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["verificationMaterial"].update(bogus=True), "verificationMaterial.bogus"),
        (lambda d: d["verificationMaterial"]["tlogEntries"][0].update(logIndex="x"),
         "tlogEntries[0].logIndex"),
        (lambda d: d["verificationMaterial"]["tlogEntries"][0]["logId"].update(keyId="!!"),
         "logId.keyId"),
        (lambda d: d["verificationMaterial"]["tlogEntries"][0].pop("kindVersion"),
         "tlogEntries[0].kindVersion"),
        (lambda d: d["messageSignature"].pop("signature"), "messageSignature.signature"),
        (lambda d: d.update(dsseEnvelope={"payload": "", "payloadType": "x", "signatures": []}),
         "exactly one of messageSignature or dsseEnvelope"),
        (lambda d: d.update(mediaType="application/json"), "mediaType"),
        (lambda d: d["verificationMaterial"].pop("certificate"), "exactly one of certificate"),
    ],
)
def test_bundle_errors_name_the_field(mutate: object, field: str) -> None:
    doc = _happy()
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=field.replace("[", r"\[").replace("]", r"\]")):
        Bundle.from_json(json.dumps(doc))


def test_int64_as_number_is_tolerated_and_null_is_absent() -> None:
    doc = _happy()
    entry = doc["verificationMaterial"]["tlogEntries"][0]  # type: ignore[index]
    entry["logIndex"] = int(entry["logIndex"])
    doc["verificationMaterial"]["timestampVerificationData"] = None  # type: ignore[index]
    bundle = Bundle.from_json(json.dumps(doc))
    assert bundle.verification_material.tlog_entries[0].log_index == int(entry["logIndex"])


def test_trusted_roots_and_signing_configs_round_trip() -> None:
    for name in ("production", "staging"):
        root = TrustedRoot.from_json(read(VECTORS / "public-good" / name / "trusted_root.json"))
        assert TrustedRoot.from_json(json.dumps(root.to_json())) == root
        sc_path = VECTORS / "public-good" / name / "signing_config.v0.2.json"
        sc = SigningConfig.from_json(read(sc_path))
        assert SigningConfig.from_json(json.dumps(sc.to_json())) == sc
    config = ClientTrustConfig.from_json(read(SP / "tsa_trust_config.json"))  # snake_case key
    assert config.signing_config is not None


def test_trusted_root_requires_validity_start() -> None:
    with pytest.raises(InvalidInput, match=r"tlogs\[1\].publicKey.validFor.start"):
        TrustedRoot.from_json(
            read(CASES / "trust-root-tlog-missing-validity-start_fail" / "trusted_root.json")
        )


def test_validity_is_a_closed_interval() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    period = ValidityPeriod(start, start + timedelta(days=1))
    assert period.contains(start) and period.contains(start + timedelta(days=1))
    assert not period.contains(start - timedelta(microseconds=1))
    assert not period.contains(start + timedelta(days=1, microseconds=1))


def _svc(url: str, version: int, operator: str, days: int = -1) -> Service:
    now = datetime.now(UTC)
    return Service(url, version, ValidityPeriod(now + timedelta(days=days)), operator)


def test_service_selection() -> None:
    v2 = _svc("https://log2", 2, "op")
    v1 = _svc("https://log1", 1, "op")
    other = _svc("https://other", 1, "op2")
    future = _svc("https://future", 2, "op3", days=1)
    unsupported = _svc("https://v9", 9, "op4")
    services = [v1, v2, other, future, unsupported]
    assert select_services(services, "rekor") == [v2, other]
    assert select_services(services, "rekor", ServiceSelector("ANY")) == [v2]
    assert select_services(services, "rekor", versions=(1,)) == [v1, other]
    with pytest.raises(ConfigError, match="exactly 3"):
        select_services(services, "rekor", ServiceSelector("EXACT", 3))


def test_signing_services_from_staging_config_prefer_rekor_v2() -> None:
    sc = SigningConfig.from_json(read(VECTORS / "public-good/staging/signing_config.v0.2.json"))
    chosen = SigningServices.from_config(sc)
    assert chosen.rekor.major_api_version == 2
    assert chosen.ca.url == "https://fulcio.sigstage.dev"
    assert SigningServices.from_config(sc, rekor_version=1).rekor.url == "https://rekor.sigstage.dev"
