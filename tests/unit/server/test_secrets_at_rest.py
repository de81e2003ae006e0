"""Private keys at rest (issue 13, defect 1): wrapped under a key-encryption key in any database,
the KEK file itself owner-only and shared safely by processes started together, and the files
of the embedded default owner-only."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.errors import ConfigError
from keyless.sealing import SealedKv, Sealer, is_sealed
from keyless.server import kek
from keyless.server.datadir import secure_data_dir
from keyless.server.secrets import SharedSecrets
from keyless.services.oidc.keyring import OidcKeyRing
from keyless.services.oidc.kv import MemoryKV
from keyless.storage.sqlite import SQLiteBackend


class _Kv:
    """A bare key-value store whose rows the tests can read, as a database reader would."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], bytes] = {}

    async def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None:
        existing = self.data.get((namespace, key))
        if existing is None:
            self.data[(namespace, key)] = value
        return existing

    async def get(self, namespace: str, key: str) -> bytes | None:
        return self.data.get((namespace, key))

    async def delete(self, namespace: str, key: str) -> None:
        self.data.pop((namespace, key), None)


def _pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_shared_secrets_keep_no_clear_key_in_the_database() -> None:
    kv, pem = _Kv(), _pem()
    secrets = SharedSecrets(kv, Sealer.generate())
    assert asyncio.run(secrets.obtain("ca/key.pem", lambda: pem)) == pem
    assert asyncio.run(secrets.get("ca/key.pem")) == pem
    assert kv.data, "nothing was stored"
    for value in kv.data.values():
        assert is_sealed(value)
        assert b"PRIVATE KEY" not in value and pem not in value


def test_a_wrapped_value_is_bound_to_its_name_and_its_kek() -> None:
    kv, sealer = _Kv(), Sealer.generate()
    asyncio.run(SharedSecrets(kv, sealer).obtain("a", lambda: b"secret a"))
    ((namespace, _key), wrapped), = kv.data.items()
    kv.data[(namespace, "b")] = wrapped  # moved under another name by whoever can write rows
    with pytest.raises(ConfigError, match="does not unwrap"):
        asyncio.run(SharedSecrets(kv, sealer).get("b"))
    with pytest.raises(ConfigError, match="--kek-file"):
        asyncio.run(SharedSecrets(kv, Sealer.generate()).get("a"))


def test_clear_values_of_an_older_version_are_wrapped_in_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kv, pem = _Kv(), _pem()
    kv.data[("keyless-secrets", "tuf/root.pem")] = pem  # as an older version stored it
    secrets = SharedSecrets(kv, Sealer.generate())
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(secrets.obtain("tuf/root.pem", _pem)) == pem
    assert ("keyless-secrets", "tuf/root.pem") not in kv.data
    assert all(is_sealed(v) and pem not in v for v in kv.data.values()), kv.data
    assert "wrapped the clear value keyless-secrets/tuf/root.pem" in caplog.text
    assert asyncio.run(secrets.get("tuf/root.pem")) == pem  # and stays the same key


def test_processes_migrating_at_once_keep_one_value() -> None:
    kv, sealer, pem = _Kv(), Sealer.generate(), _pem()
    kv.data[("ns", "k")] = pem
    a, b = SealedKv(kv, sealer), SealedKv(kv, sealer)

    async def both() -> list[bytes | None]:
        return list(await asyncio.gather(a.get("ns", "k"), b.put_if_absent("ns", "k", b"x", 1e9)))

    assert asyncio.run(both()) == [pem, pem]


def test_oidc_keyring_keeps_its_keys_wrapped() -> None:
    kv = MemoryKV()
    sealer = Sealer.generate()
    first = asyncio.run(OidcKeyRing(kv, sealer=sealer).jwks())
    assert asyncio.run(OidcKeyRing(kv, sealer=sealer).jwks()) == first  # shared, as before
    rows = list(kv._data.values())
    assert len(rows) == 3
    for value, _expires in rows:
        assert is_sealed(value) and b"PRIVATE KEY" not in value


def test_kek_file_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "kek"
    sealed = kek.load_or_create(path).seal("n", b"v")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_text())) == 32
    assert kek.load_or_create(path).open("n", sealed) == b"v"
    assert [p.name for p in path.parent.iterdir()] == ["kek"]  # no temporary left behind


def test_kek_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    kek.load_or_create(path)
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        kek.load_or_create(path)


def test_kek_is_required_for_a_shared_database(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--kek-file FILE.*KEYLESS_KEK_FILE"):
        kek.kek_path(None, tmp_path, shared=True)
    assert kek.kek_path(None, tmp_path, shared=False) == tmp_path / "keys" / "kek"


def test_processes_started_at_once_share_one_new_kek(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    code = (
        "import sys; from pathlib import Path; from keyless.server import kek; "
        "sys.stdout.buffer.write(kek.load_or_create(Path(sys.argv[1])).seal('n', b'same'))"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE)
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in processes]
    assert all(p.returncode == 0 for p in processes)
    sealer = kek.load_or_create(path)
    assert [sealer.open("n", out) for out in outputs] == [b"same"] * 6


def test_data_dir_and_sqlite_files_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    data.chmod(0o755)
    (data / "keys").chmod(0o755)
    secure_data_dir(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "keys").stat().st_mode) == 0o700

    old = os.umask(0o022)
    try:
        elsewhere = tmp_path / "elsewhere" / "state.db"
        elsewhere.parent.mkdir()
        elsewhere.touch(mode=0o644)
        backend = SQLiteBackend(elsewhere, data_dir=data)
        try:
            backend.kv.put_if_absent("n", "k", b"v", 2.0**62)
            for suffix in ("", "-wal", "-shm"):
                sibling = elsewhere.with_name(elsewhere.name + suffix)
                assert stat.S_IMODE(sibling.stat().st_mode) == 0o600, sibling
        finally:
            backend.close()
    finally:
        os.umask(old)
