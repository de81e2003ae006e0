"""Passwords of the embedded provider's users off the command line (issue 13, defect 9):
``--oidc-user-file`` (owner-only), ``KEYLESS_OIDC_USERS``, and errors that never echo them."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.errors import ConfigError
from keyless.server.config import load_settings, parse_oidc_user
from keyless.services.oidc.accounts import hash_secret

HASHED = hash_secret("bob-pw")


def test_user_file_gives_passwords_and_hashes(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"# users\nalice@example.com:a:b:c\n\nbob@example.com:{HASHED}\n")
    users.chmod(0o600)
    settings = load_settings(data_dir=tmp_path / "d", oidc_user_file=users)
    assert settings.oidc_users == {"alice@example.com": "a:b:c"}
    assert settings.oidc_user_hashes == {"bob@example.com": HASHED}


def test_user_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("alice@example.com:pw\n")
    users.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_settings(data_dir=tmp_path / "d", oidc_user_file=users)


def test_environment_lines_and_precedence(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "d",
        oidc_users_env=f"alice@example.com:from-env\nbob@example.com:{HASHED}",
        oidc_users=["bob@example.com:from-cli"],
    )
    assert settings.oidc_users == {"alice@example.com": "from-env", "bob@example.com": "from-cli"}
    assert settings.oidc_user_hashes == {}


def test_errors_never_echo_the_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad_line:
        load_settings(data_dir=tmp_path / "d", oidc_users_env="not-an-email:hunter2")
    assert "hunter2" not in str(bad_line.value) and "line 1" in str(bad_line.value)
    with pytest.raises(ConfigError) as bad_hash:
        load_settings(data_dir=tmp_path / "d", oidc_users_env="a@example.com:scrypt$hunter2")
    assert "hunter2" not in str(bad_hash.value)
    with pytest.raises(ConfigError) as bad_spec:
        parse_oidc_user("no-at-sign:hunter2")
    assert "hunter2" not in str(bad_spec.value)
