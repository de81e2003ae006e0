"""The default trust path without internet (issue #8, targets.md G7).

* ``--offline`` makes no network call at all: the installed ``keyless`` runs with a PEP 578 audit
  hook that records and refuses every socket connect and name lookup, and verifies a real
  public-good bundle;
* without ``--offline`` the TUF refresh of the public-good root cannot reach the network: the
  CLI warns in one line, verifies with the shipped root, and does not try again within the
  refresh window;
* a repository that accepts connections but never answers, or trickles bytes, is given up after
  the short per-request timeout or the total deadline, not python-tuf's 30 s per attempt.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from _client_vectors import BEACON, CASES, GHA, VECTORS, read, vectors_present
from _netfakes import SilentServer, write_sitecustomize

from conftest import ROOT
from keyless.errors import ConfigError
from keyless.trust.production import production_trusted_root
from keyless.trust.tuf import DEFAULT_TIMEOUT, TufTrust

KEYLESS = ROOT / ".venv" / "bin" / "keyless"
HAPPY = CASES / "happy-path-v0.3" / "bundle.sigstore.json"
VERIFY = ["verify", str(CASES / "a.txt"), "--bundle", str(HAPPY), "--cert-identity", BEACON,
          "--cert-oidc-issuer", GHA]


def run_keyless(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                                  float]:
    """The installed CLI with its own user cache dir; returns the process and its wall time."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SIGSTORE_", "KEYLESS_"))}
    clean.update({"XDG_CACHE_HOME": str(tmp_path / "cache"), **env})
    start = time.monotonic()
    proc = subprocess.run([str(KEYLESS), *args], capture_output=True, text=True, timeout=120,
                          check=False, env=clean)
    return proc, time.monotonic() - start


def no_network_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    probe = tmp_path / "probe"
    log = write_sitecustomize(probe)
    return {"PYTHONPATH": str(probe), "KEYLESS_NET_PROBE_LOG": str(log)}, log


def test_offline_verify_makes_no_network_call(tmp_path: Path) -> None:
    vectors_present()
    env, log = no_network_env(tmp_path)
    proc, _ = run_keyless(tmp_path, *VERIFY, "--offline", **env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == f"OK: {CASES / 'a.txt'}"
    assert log.read_text() == "", "offline verify attempted network calls"
    assert not (tmp_path / "cache").exists(), "offline verify must not write a TUF cache"
    # the probe works: the same hook sees (and refuses) the refresh without --offline
    proc, _ = run_keyless(tmp_path, *VERIFY, **env)
    assert log.read_text() != ""


def test_refresh_without_network_falls_back_once_per_window(tmp_path: Path) -> None:
    vectors_present()
    env, log = no_network_env(tmp_path)
    proc, took = run_keyless(tmp_path, *VERIFY, **env)
    assert proc.returncode == 0, proc.stderr
    warning, ok = proc.stderr.strip().splitlines()
    assert warning.startswith("warning: cannot refresh the trusted root from "
                              "https://tuf-repo-cdn.sigstore.dev")
    assert warning.endswith("using the trusted root shipped with keyless")
    assert ok.startswith("OK:")
    # not python-tuf's 30 s per attempt (generous: the machine may be loaded)
    assert took < 25, f"the failed refresh took {took:.1f} s"
    attempts = log.read_text()
    assert attempts
    # inside the window: no new attempt, no warning
    proc, _ = run_keyless(tmp_path, *VERIFY, **env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().startswith("OK:") and "warning" not in proc.stderr
    assert log.read_text() == attempts, "retried the refresh inside the window"
    # a zero window tries again (and warns again)
    proc, _ = run_keyless(tmp_path, *VERIFY, "--tuf-refresh-window", "0", **env)
    assert proc.returncode == 0 and "warning:" in proc.stderr
    assert len(log.read_text()) > len(attempts)
    # inside the window the default path stays as lean as --offline (cold start <= 300 ms)
    proc, _ = run_keyless(tmp_path, *VERIFY, PYTHONPROFILEIMPORTTIME="1", **env)
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert imported, "no import profile"
    assert not imported & {"httpx", "tuf", "rich", "urllib3", "platformdirs"}, imported


def test_hung_tuf_repository_does_not_hang_the_cli(tmp_path: Path) -> None:
    vectors_present()
    with SilentServer() as server:
        proc, took = run_keyless(tmp_path, *VERIFY, KEYLESS_NET_PROBE_TUF_URL=server.url,
                                 PYTHONPATH=str(write_sitecustomize(tmp_path / "p").parent))
        assert server.accepted >= 1, "the refresh never reached the fake repository"
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and f"within {DEFAULT_TIMEOUT:g} s" in proc.stderr
    assert took < DEFAULT_TIMEOUT + 20, f"a hung repository held the CLI for {took:.1f} s"


def _root() -> bytes:
    return read(VECTORS / "public-good" / "production" / "root.json")


def test_silent_repository_times_out_and_is_not_retried_within_window(tmp_path: Path) -> None:
    warnings: list[str] = []
    now = [1_000_000.0]
    with SilentServer() as server:
        tuf = TufTrust(server.url, _root(), cache_dir=tmp_path, timeout=0.5,
                       fallback_root=production_trusted_root(), on_warning=warnings.append,
                       refresh_window=60, clock=lambda: now[0])
        start = time.monotonic()
        config = tuf.client_trust_config()
        assert time.monotonic() - start < 20  # 0.5 s, not python-tuf's 30 s (machine loaded)
        assert config.trusted_root == production_trusted_root()
        assert len(warnings) == 1 and "no answer from" in warnings[0]
        connections = server.accepted
        assert connections == 1
        now[0] += 30
        tuf.client_trust_config()
        assert server.accepted == connections and len(warnings) == 1
        now[0] += 31
        tuf.client_trust_config()
        assert server.accepted == connections + 1 and len(warnings) == 2


def test_trickling_repository_hits_the_total_deadline(tmp_path: Path) -> None:
    with SilentServer(trickle=0.1) as server:
        tuf = TufTrust(server.url, _root(), cache_dir=tmp_path, timeout=1.0, deadline=1.5)
        start = time.monotonic()
        with pytest.raises(ConfigError, match=r"longer than 1\.5 s"):
            tuf.refresh()
        assert time.monotonic() - start < 20  # 1.5 s, not 30 s (generous: machine loaded)


def test_offline_never_refreshes_and_custom_repository_needs_a_cache(tmp_path: Path) -> None:
    with SilentServer() as server:
        tuf = TufTrust(server.url, _root(), cache_dir=tmp_path, offline=True)
        with pytest.raises(ConfigError, match="run once without --offline"):
            tuf.client_trust_config()
        assert server.accepted == 0


def test_failed_refresh_prefers_the_verified_cache(tmp_path: Path) -> None:
    """A root cached by an earlier refresh beats the shipped one; a corrupt cache does not."""
    from urllib.parse import quote

    staging = read(VECTORS / "public-good" / "staging" / "trusted_root.json")
    warnings: list[str] = []
    with SilentServer() as server:
        targets = tmp_path / quote(server.url, safe="") / "targets"
        targets.mkdir(parents=True)
        (targets / "trusted_root.json").write_bytes(staging)
        tuf = TufTrust(server.url, _root(), cache_dir=tmp_path, timeout=0.3,
                       fallback_root=production_trusted_root(), on_warning=warnings.append,
                       refresh_window=0)
        config = tuf.client_trust_config()
        assert config.trusted_root != production_trusted_root()
        assert config.trusted_root.to_json()["tlogs"] == json.loads(staging)["tlogs"]
        assert warnings[-1].endswith("using the trusted root cached from an earlier refresh")
        (targets / "trusted_root.json").write_text("{corrupt")
        assert tuf.client_trust_config().trusted_root == production_trusted_root()
        assert warnings[-1].endswith("using the trusted root shipped with keyless")
        assert server.accepted == 2


def test_sign_without_trust_option_or_network_says_what_to_do(tmp_path: Path) -> None:
    """No packaged signing config: without TUF the public-good services are unknown."""
    (tmp_path / "a.txt").write_text("a\n")
    env, log = no_network_env(tmp_path)
    proc, _ = run_keyless(tmp_path, "sign", str(tmp_path / "a.txt"), "--identity-token", "x",
                          **env)
    assert proc.returncode == 1
    warning, error = proc.stderr.strip().splitlines()
    assert warning.startswith("warning: cannot refresh the trusted root")
    assert error.startswith("signing failed: no signing config for the public-good instance")
    assert "--trust-config FILE or --server URL" in error
    assert log.read_text() != ""
    assert not (tmp_path / "a.txt.sigstore.json").exists()
