"""Settings of ``keyless serve``: defaults, the config file, CLI precedence (contracts.md §2)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from keyless.errors import ConfigError
from keyless.server.config import Settings, load_settings
from keyless.server.config_template import render_config


def test_defaults_follow_the_contract(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.host == "127.0.0.1"
    assert settings.port == 3000
    assert settings.public_url == "http://localhost:3000"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/keyless.db"
    assert settings.oidc_issuer == "http://localhost:3000/oidc"
    assert settings.public_host == "localhost:3000"
    assert not settings.is_postgres


def test_default_data_dir_is_the_user_data_dir(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert load_settings().data_dir == (tmp_path / "keyless").resolve()


def test_port_moves_the_default_public_url(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, port=4000)
    assert settings.public_url == "http://localhost:4000"
    explicit = load_settings(data_dir=tmp_path, port=4000, public_url="https://sign.example/")
    assert explicit.public_url == "https://sign.example"


def test_public_url_with_a_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must not have a path"):
        Settings(data_dir=tmp_path, public_url="http://localhost:3000/keyless")


def test_oidc_users_from_cli_and_file_merge(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[oidc_users]]\nemail = "bob@example.com"\npassword = "pw:with:colons"\n')
    settings = load_settings(data_dir=tmp_path, config_file=config,
                             oidc_users=["alice@example.com:a:b"])
    assert settings.oidc_users == {"bob@example.com": "pw:with:colons",
                                   "alice@example.com": "a:b"}
    with pytest.raises(ConfigError, match="EMAIL:PASSWORD"):
        load_settings(data_dir=tmp_path, oidc_users=["no-password"])


def test_config_file_values_and_cli_precedence(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[server]\nport = 5000\npublic_url = "https://keyless.example"\n'
        'database = "postgresql://u@db/keyless"\n'
        '[tuf]\ntimestamp_days = 2\n'
        '[[issuers]]\nurl = "https://token.actions.githubusercontent.com"\n'
        'type = "github-workflow"\n'
    )
    settings = load_settings(data_dir=tmp_path, config_file=config)
    assert settings.port == 5000
    assert settings.public_url == "https://keyless.example"
    assert settings.is_postgres
    assert settings.tuf_timestamp_days == 2
    assert settings.issuers[0].type == "github-workflow"
    assert load_settings(data_dir=tmp_path, config_file=config, port=6000).port == 6000


@pytest.mark.parametrize("text, message", [
    ('[server]\nport = "x"\n', "port"),
    ('[server]\nbogus = 1\n', "unknown key"),
    ('[nope]\n', "unknown section"),
    ('[[issuers]]\nurl = "https://x.example"\ntype = "martian"\n', "unknown type"),
    ('not toml at all [', "not valid TOML"),
    ('[tsa]\nmax_drift = 2.0\n', "max_drift"),
    ('[tsa]\nntp_servers = "pool.example"\n', "ntp_servers"),
    ('[tsa]\nrequire_ntp = "yes"\n', "require_ntp"),
    ('[tsa]\nslew = 1\n', "unknown key in \\[tsa\\]"),
    ('[ca]\ntoken_replay_guard = "off"\n', "token_replay_guard"),
    ('[ca]\nkey = "x"\n', "unknown key in \\[ca\\]"),
    ('[ca]\nchain_pem = "/c.pem"\n', "go together"),
    ('[ca]\nchain_pem = "/c.pem"\nkey_pem = "/k.pem"\npkcs11_uri = "pkcs11:x"\n', "not both"),
])
def test_bad_config_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(data_dir=tmp_path, config_file=config)


def test_rendered_config_parses_and_roundtrips(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, port=3100)
    text = render_config(settings, frozenset({"port"}))
    tomllib.loads(text)  # valid TOML, every documented key parses
    written = tmp_path / "keyless.toml"
    written.write_text(text)
    again = load_settings(data_dir=tmp_path)
    assert again.port == 3100  # explicitly chosen: active line
    assert again.public_url == "http://localhost:3100"  # derived: stays derived


def test_data_dir_keyless_toml_is_read_by_default(tmp_path: Path) -> None:
    (tmp_path / "keyless.toml").write_text('[server]\nlog_level = "debug"\n')
    settings = load_settings(data_dir=tmp_path)
    assert settings.log_level == "debug"
    assert settings.config_file == tmp_path.resolve() / "keyless.toml"


def test_tsa_clock_guard_settings_reach_the_timestamp_service(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[tsa]\nntp_servers = ["127.0.0.1:9123"]\nmax_drift = 0.25\n'
                      'require_ntp = true\n')
    settings = load_settings(data_dir=tmp_path, config_file=config)
    assert settings.tsa_ntp_servers == ("127.0.0.1:9123",)
    assert settings.tsa_max_drift == 0.25
    assert settings.tsa_require_ntp is True
    defaults = load_settings(data_dir=tmp_path)
    assert (defaults.tsa_ntp_servers, defaults.tsa_max_drift, defaults.tsa_require_ntp) == (
        (), 0.5, False)


def test_ca_replay_guard_can_be_switched_off(tmp_path: Path) -> None:
    assert load_settings(data_dir=tmp_path).ca_token_replay_guard is True
    config = tmp_path / "c.toml"
    config.write_text("[ca]\ntoken_replay_guard = false\n")
    assert load_settings(data_dir=tmp_path, config_file=config).ca_token_replay_guard is False
