"""``[[witnesses]]`` and ``[witnessing]`` in keyless.toml, and the witness's ``[[logs]]`` file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.errors import ConfigError
from keyless.formats.cosignature import Ed25519Cosigner
from keyless.formats.vkey import VerifierKey
from keyless.server.config import read_config_file
from keyless.witness.app import read_log_vkeys

ONE = '[[witnesses]]\nurl = "http://a"\nvkey = "{w}"\n'
W1 = Ed25519Cosigner("w1.test", ed25519.Ed25519PrivateKey.generate()).vkey.encode()
W2 = Ed25519Cosigner("w2.test", ed25519.Ed25519PrivateKey.generate()).vkey.encode()
LOG = VerifierKey.for_ed25519("log.test/rekor",
                              ed25519.Ed25519PrivateKey.generate().public_key()).encode()


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keyless.toml"
    path.write_text(text)
    return path


def test_witnesses_and_quorum_are_read(tmp_path: Path) -> None:
    out = read_config_file(config(tmp_path, f'''
[[witnesses]]
url = "http://127.0.0.1:7380"
vkey = "{W1}"
[[witnesses]]
url = "https://w2.example"
vkey = "{W2}"
[witnessing]
quorum = 1
timeout = 2
'''))
    settings = out["witnessing"]
    assert [w.name for w in settings.witnesses] == ["w1.test", "w2.test"]
    assert (settings.quorum, settings.timeout, settings.fail_open) == (1, 2.0, False)
    default = read_config_file(config(tmp_path, ONE.format(w=W1)))
    assert default["witnessing"].quorum == 1  # every witness by default
    assert not read_config_file(config(tmp_path, ""))["witnessing"].enabled


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f'[[witnesses]]\nurl = "http://a"\nvkey = "{LOG}"\n', "cosignature key"),
        (f'[[witnesses]]\nurl = "ftp://a"\nvkey = "{W1}"\n', "http"),
        ('[[witnesses]]\nurl = "http://a"\nvkey = "w+00000000+AAAA"\n', "vkey"),
        (f'[[witnesses]]\nurl = "http://a"\nvkey = "{W1}"\nextra = 1\n', "exactly"),
        (f'[[witnesses]]\nurl = "http://a"\nvkey = "{W1}"\n[witnessing]\nquorum = 2\n', "quorum"),
        (ONE.format(w=W1) + "[witnessing]\nquorum = 0\n", "fail_open"),
        (ONE.format(w=W1) + "[witnessing]\ntimeout = -1\n", "timeout"),
        (f'[[witnesses]]\nurl = "http://a"\nvkey = "{W1}"\n[witnessing]\nfoo = 1\n', "unknown"),
        (f'[[witnesses]]\nurl = "http://a"\nvkey = "{W1}"\n[[witnesses]]\nurl = "http://b"\n'
         f'vkey = "{W1}"\n', "twice"),
        ("[witnessing]\nquorum = 1\n", "quorum"),
    ],
)
def test_bad_witness_config_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        read_config_file(config(tmp_path, text))


def test_witness_log_config(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(f'[[logs]]\nvkey = "{LOG}"\n')
    assert [v.name for v in read_log_vkeys(path, [])] == ["log.test/rekor"]
    path.write_text(f'[[logs]]\nvkey = "{LOG}"\norigin = "x"\n')
    with pytest.raises(ConfigError, match="exactly"):
        read_log_vkeys(path, [])
    with pytest.raises(ConfigError, match="no log"):
        read_log_vkeys(None, [])
