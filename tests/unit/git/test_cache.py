"""The certificate cache: private files only, usable certificates only."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keyless.git import cache

NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
URL = "https://ca.example.com"


def cert(key: ec.EllipticCurvePrivateKey, minutes: float) -> x509.Certificate:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(NAME).issuer_name(NAME)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(minutes=minutes)).sign(key, hashes.SHA256()))


def test_store_and_load(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cache.store(URL, key, [cert(key, 10)], tmp_path / "git")
    (file,) = (tmp_path / "git").iterdir()
    assert file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "git").stat().st_mode & 0o777 == 0o700
    loaded = cache.load(URL, tmp_path / "git")
    assert loaded is not None and loaded.usable()
    assert cache.load("https://other.example.com", tmp_path / "git") is None


def test_unsafe_files_are_ignored(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    directory = tmp_path / "git"
    cache.store(URL, key, [cert(key, 10)], directory)
    (file,) = directory.iterdir()
    os.chmod(file, 0o644)
    assert cache.load(URL, directory) is None
    os.chmod(file, 0o600)
    os.chmod(directory, 0o755)
    assert cache.load(URL, directory) is None
    os.chmod(directory, 0o700)
    target = tmp_path / "elsewhere.json"
    file.rename(target)
    file.symlink_to(target)
    assert cache.load(URL, directory) is None
    file.unlink()
    file.write_text("{not json")
    os.chmod(file, 0o600)
    assert cache.load(URL, directory) is None


def test_unusable_certificates(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    short = cache.CachedCertificate(key, (cert(key, cache.MIN_REMAINING / 60 - 1),))
    assert not short.usable()
    other = ec.generate_private_key(ec.SECP256R1())
    assert not cache.CachedCertificate(other, (cert(key, 10),)).usable()
    assert cache.CachedCertificate(key, (cert(key, 10),)).usable()
