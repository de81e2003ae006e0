"""``[[oidc_upstreams]]`` entries (company single sign-on, issue #18): parsing and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.errors import ConfigError
from keyless.server.config import read_config_file
from keyless.services.oidc.upstream import Upstream

ENTRY = ('[[oidc_upstreams]]\nname = "corp"\nissuer = "https://login.example.com/"\n'
         'client_id = "keyless"\nclient_secret = "s3cret"\n')


def test_an_upstream_entry_is_read_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "keyless.toml"
    path.write_text(ENTRY + 'allowed_domains = ["Example.COM"]\n')
    (upstream,) = read_config_file(path)["oidc_upstreams"]
    assert upstream == Upstream("corp", "corp", "https://login.example.com", "keyless", "s3cret",
                                ("openid", "email"), ("example.com",))
    assert "s3cret" not in repr(upstream)


@pytest.mark.parametrize("text", [
    ENTRY.replace('name = "corp"', 'name = "Corp Name"'),
    ENTRY.replace("https://login.example.com/", "ftp://x"),
    ENTRY.replace('client_secret = "s3cret"\n', ""),
    ENTRY + "unknown = 1\n",
    ENTRY + "scopes = [1]\n",
    ENTRY + 'require_acr = "mfa"\n',
    ENTRY + 'allowed_domains = "example.com"\n',
    ENTRY + 'scopes = "openid email"\n',
    ENTRY + ENTRY,
    "oidc_upstreams = 3\n",
])
def test_bad_upstream_entries_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "keyless.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        read_config_file(path)
