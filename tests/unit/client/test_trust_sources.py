"""Trust sources (contracts.md §4): packaged production root, files, offline TUF behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _client_vectors import VECTORS, read

from keyless.errors import ConfigError
from keyless.formats.trustroot import TrustedRoot
from keyless.trust.production import production_trusted_root
from keyless.trust.sources import (
    load_client_trust_config,
    load_trusted_root,
    resolve_trust,
)
from keyless.trust.tuf import TufTrust


def test_packaged_root_is_the_public_good_production_root() -> None:
    shipped = production_trusted_root()
    assert shipped == TrustedRoot.from_json(
        read(VECTORS / "public-good" / "production" / "trusted_root.json")
    )


def test_offline_production_needs_no_network(tmp_path: Path) -> None:
    tuf = TufTrust.production(cache_dir=tmp_path, offline=True)
    config = tuf.client_trust_config()
    assert config.trusted_root == production_trusted_root()
    assert not any(tmp_path.iterdir()), "offline mode must not even create a cache"
    resolved = resolve_trust(offline=True, tuf_cache=str(tmp_path))
    assert resolved.trusted_root == production_trusted_root()


def test_offline_custom_repository_without_cache_fails(tmp_path: Path) -> None:
    tuf = TufTrust("http://127.0.0.1:9/tuf", b"{}", cache_dir=tmp_path, offline=True)
    with pytest.raises(ConfigError, match="no cached trust material"):
        tuf.client_trust_config()
    with pytest.raises(ConfigError, match="offline"):
        tuf.refresh()


def test_unreachable_repository_is_a_config_error(tmp_path: Path) -> None:
    root = read(VECTORS / "public-good" / "production" / "root.json")
    tuf = TufTrust("http://127.0.0.1:9/tuf", root, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"cannot refresh the trusted root from http://127\.0"):
        tuf.client_trust_config()


def test_files_and_option_conflicts(tmp_path: Path) -> None:
    bad = tmp_path / "root.json"
    bad.write_text(json.dumps({"mediaType": "nope"}))
    with pytest.raises(ConfigError, match="mediaType"):
        load_trusted_root(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_client_trust_config(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="at most one"):
        resolve_trust(trust_config="a", server="b")
    with pytest.raises(ConfigError, match="--offline"):
        resolve_trust(server="http://127.0.0.1:9", offline=True)
