"""git config and environment for keyless-git."""

from __future__ import annotations

import pytest

from keyless.errors import ConfigError
from keyless.git.config import settings


def test_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYLESS_SERVER", "https://env.example.com")
    monkeypatch.delenv("KEYLESS_TRUST_CONFIG", raising=False)
    got = settings({"server": "https://git.example.com", "identity": "a@b", "issuer": "https://i",
                    "rekorversion": "1"})
    assert (got.server, got.identity, got.issuer, got.rekor_version) == (
        "https://env.example.com", "a@b", "https://i", 1)


def test_contradictions(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KEYLESS_SERVER", "KEYLESS_TRUST_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="keep one"):
        settings({"server": "https://s", "trustconfig": "tc.json"})
    with pytest.raises(ConfigError, match="rekorVersion"):
        settings({"rekorversion": "3"})
