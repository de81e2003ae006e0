"""PKCS#11 signing through Debian's SoftHSM2: the CA's issuing key never leaves the token.

One SoftHSM token directory per test process (the PKCS#11 module is initialised once per process
with the configuration found in ``SOFTHSM2_CONF`` at that moment).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
from ca_testkit import require, require_program
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from keyless.errors import ConfigError
from keyless.formats.x509profile import LeafProfile, build_precertificate, sigstore_extensions
from keyless.services.ca import create_with_signer
from keyless.storage.pkcs11 import Pkcs11Signer, Pkcs11Uri

MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
PIN = "1234"


@pytest.fixture(scope="session")
def token_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    util = require_program("softhsm2-util")
    module = next((m for m in MODULES if Path(m).exists()), None)
    require(module is not None, "SoftHSM2 PKCS#11 module (apt-get install softhsm2)")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for label in ("keyless-test", "keyless-idle"):  # "idle": never logged in by these tests
        subprocess.run([util, "--init-token", "--free", "--label", label, "--pin", PIN,
                        "--so-pin", "123456"], check=True, capture_output=True)
    return f"pkcs11:token=keyless-test?module-path={module}&pin-value={PIN}"


def _uri(base: str, label: str) -> str:
    path, _, query = base.partition("?")
    return f"{path};object={label}?{query}"


def test_ecdsa_p384_key_signs_like_a_file_key(token_uri: str) -> None:
    signer = Pkcs11Signer.generate(_uri(token_uri, "p384"), "ecdsa-p384")
    key = signer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
    sig = signer.sign(b"data")
    key.verify(sig, b"data", ec.ECDSA(hashes.SHA384()))
    with pytest.raises(InvalidSignature):
        key.verify(sig, b"other", ec.ECDSA(hashes.SHA384()))
    # re-opening finds the same key pair by label
    again = Pkcs11Signer.open(_uri(token_uri, "p384"))
    assert again.public_key() == key


def test_rsa_key(token_uri: str) -> None:
    signer = Pkcs11Signer.generate(_uri(token_uri, "rsa"), "rsa-3072")
    key = signer.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    key.verify(signer.sign(b"x"), b"x", padding.PKCS1v15(), hashes.SHA256())


def test_ca_with_hsm_intermediate_issues_verifiable_certificates(
    token_uri: str, tmp_path: Path
) -> None:
    signer = Pkcs11Signer.generate(_uri(token_uri, "ca-intermediate"), "ecdsa-p384")
    material = create_with_signer(tmp_path / "ca", signer)
    inter, root = material.chain
    assert inter.public_key() == signer.public_key()
    inter.verify_directly_issued_by(root)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    profile = LeafProfile(leaf_key.public_key(), "a@b.c", "email",
                          dt.datetime.now(dt.UTC).replace(microsecond=0),
                          sigstore_extensions("email", "https://i", {"sub": "s"}))
    pre = build_precertificate(profile, inter, signer)
    pre.verify_directly_issued_by(inter)
    assert pre.signature_hash_algorithm is not None
    assert pre.signature_hash_algorithm.name == "sha384"
    # restart: the same directory and token give the same chain
    reopened = Pkcs11Signer.open(_uri(token_uri, "ca-intermediate"))
    again = create_with_signer(tmp_path / "ca", reopened)
    assert again.chain == material.chain
    assert isinstance(again.issuer, x509.Certificate)


def test_bad_uris_and_pins(token_uri: str) -> None:
    with pytest.raises(ConfigError, match="module-path"):
        Pkcs11Uri.parse("pkcs11:token=a;object=b")
    with pytest.raises(ConfigError, match="object"):
        Pkcs11Uri.parse("pkcs11:token=a?module-path=/x")
    with pytest.raises(ConfigError, match="not a pkcs11"):
        Pkcs11Uri.parse("file:/x")
    with pytest.raises(ConfigError, match="not a pkcs11") as refused:  # a secret is never echoed
        Pkcs11Uri.parse("pkcs 11:token=a;object=b?module-path=/x&pin-value=s3cret-pin")
    assert "s3cret-pin" not in str(refused.value)
    with pytest.raises(ConfigError, match="no unique key pair"):
        Pkcs11Signer.open(_uri(token_uri, "absent"))
    wrong_pin = _uri(token_uri, "x").replace(f"pin-value={PIN}", "pin-value=0000").replace(
        "token=keyless-test", "token=keyless-idle")
    with pytest.raises(ConfigError, match="cannot open"):
        Pkcs11Signer.open(wrong_pin)


def test_pin_from_file(tmp_path: Path) -> None:
    pin = tmp_path / "pin"
    pin.write_text("4321\n")
    uri = Pkcs11Uri.parse(f"pkcs11:token=t;object=o?module-path=/m&pin-source=file:{pin}")
    assert uri.pin == "4321" and uri.token == "t" and uri.object == "o"


def test_load_material_from_pkcs11_uri(token_uri: str, tmp_path: Path) -> None:
    from keyless.services.ca import load_material

    uri = _uri(token_uri, "ca-from-config")
    created = Pkcs11Signer.generate(uri, "ecdsa-p256")
    material = load_material(tmp_path / "ca", pkcs11_uri=uri)
    assert material.issuer.public_key() == created.public_key()
    assert isinstance(material.signer, Pkcs11Signer)
    assert load_material(tmp_path / "ca", pkcs11_uri=uri).chain == material.chain
