"""``--server URL`` trusts an instance only through its TUF repository (issue #13, defect 8).

A fake instance on the loopback serves a real keyless TUF repository (``keyless.services.tuf``)
and whatever ``/client-trust-config.json`` the test wants. The "genuine" instance's trusted root
is the public-good *staging* root; the forger's is the *production* root, under which the
conformance happy-path bundle (standing in for a forged signature) verifies. So a client that
believed the forger would print ``OK``.

* after ``keyless trust-instance URL ROOT.json``, a server that swaps its trust config, or
  serves a TUF repository with other keys, is refused;
* an instance not pinned is trusted on first use with its root's fingerprint on stderr, and
  nothing learnt that way is kept;
* plain http to a host other than the loopback is refused before any connection (PEP 578 audit
  hook in the child process, as in test_tuf_network.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from _client_vectors import BEACON, CASES, GHA, VECTORS, read, vectors_present
from _netfakes import write_sitecustomize
from cryptography.hazmat.primitives.asymmetric import ed25519
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from conftest import ROOT
from keyless._cli.main import main
from keyless.errors import ConfigError
from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.services.tuf import MemoryMetadataStore, TufRepository, TufService
from keyless.services.tuf.routes import routes as tuf_routes
from keyless.trust.instances import (
    PINNED_ROOT,
    default_store,
    fingerprint,
    is_loopback,
    normalize_url,
    pinned_root,
)

KEYLESS = ROOT / ".venv" / "bin" / "keyless"
HAPPY = CASES / "happy-path-v0.3" / "bundle.sigstore.json"
VERIFY = ["verify", str(CASES / "a.txt"), "--bundle", str(HAPPY), "--cert-identity", BEACON,
          "--cert-oidc-issuer", GHA]
ROLES = ("root", "targets", "snapshot", "timestamp")


def _trusted_root(name: str) -> bytes:
    vectors_present()
    return read(VECTORS / "public-good" / name / "trusted_root.json")


def _forged_trust_config() -> bytes:
    """A ClientTrustConfig under which the happy-path bundle verifies."""
    return json.dumps({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": json.loads(_trusted_root("production")),
        "signingConfig": json.loads(read(VECTORS / "public-good" / "production"
                                         / "signing_config.v0.2.json")),
    }).encode()


class Repository:
    """A keyless TUF repository with fresh keys publishing one trusted root."""

    def __init__(self, trusted_root: bytes) -> None:
        keys = {role: ed25519.Ed25519PrivateKey.generate() for role in ROLES}
        self.repo = TufRepository(MemoryMetadataStore(), keys)
        asyncio.run(self.repo.publish({"trusted_root.json": trusted_root}))
        self.root = asyncio.run(self.repo.root_json(1))
        app = Starlette(routes=[Mount("/tuf", routes=tuf_routes(TufService(self.repo)))],
                        exception_handlers=EXCEPTION_HANDLERS)
        self.client = TestClient(app)


class FakeInstance:
    """A loopback HTTP server: ``/tuf/…`` from ``repository``, ``/client-trust-config.json``
    from ``trust_config``; both may be swapped while it runs. Records the paths asked for."""

    def __init__(self, repository: Repository, trust_config: bytes) -> None:
        self.repository = repository
        self.trust_config = trust_config
        self.paths: list[str] = []
        instance = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                instance.paths.append(self.path)
                status, body = 404, b'{"code":404,"message":"not found"}'
                if self.path == "/client-trust-config.json":
                    status, body = 200, instance.trust_config
                elif self.path.startswith("/tuf/"):
                    answer = instance.repository.client.get(self.path)
                    status, body = answer.status_code, answer.content
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeInstance:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private user data and cache dir for the pins and TUF caches."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def genuine() -> Repository:
    return Repository(_trusted_root("staging"))


def _keyless(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def _root_file(home: Path, repository: Repository) -> str:
    path = home / "tuf-root.json"
    path.write_bytes(repository.root)
    return str(path)


def test_pinned_server_ignores_a_swapped_trust_config(
    home: Path, genuine: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = home / "forged.json"
    forged.write_bytes(_forged_trust_config())
    # the test can fail: whoever believes the swapped trust config accepts the bundle
    assert _keyless(capsys, *VERIFY, "--trust-config", str(forged))[0] == 0
    with FakeInstance(genuine, forged.read_bytes()) as fake:
        code, err = _keyless(capsys, "trust-instance", fake.url + "/", _root_file(home, genuine))
        assert code == 0, err
        assert err.startswith(f"pinned {fake.url}: TUF root {fingerprint(genuine.root)}")
        code, err = _keyless(capsys, *VERIFY, "--server", fake.url)
        assert code == 1, err
        assert err.startswith("verification failed:") and "warning" not in err
        assert "/client-trust-config.json" not in fake.paths
    # the pin is private to the user
    folder = default_store() / normalize_url(fake.url).replace(":", "%3A").replace("/", "%2F")
    assert stat.S_IMODE(default_store().stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / PINNED_ROOT).stat().st_mode) == 0o600
    assert sorted(p.name for p in default_store().iterdir()) == [folder.name]


def test_pinned_server_refuses_a_repository_with_other_keys(
    home: Path, genuine: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    forger = Repository(_trusted_root("production"))
    with FakeInstance(genuine, b"{}") as fake:
        root_file = _root_file(home, genuine)
        assert _keyless(capsys, "trust-instance", fake.url, root_file)[0] == 0
        fake.repository = forger
        # a refresh is due: the forger's timestamp is not signed by the pinned keys
        code, err = _keyless(capsys, *VERIFY, "--server", fake.url, "--tuf-refresh-window", "0")
        assert code == 1
        warning, failure = err.strip().splitlines()
        assert warning.startswith(f"warning: cannot refresh the trusted root from {fake.url}/tuf")
        assert failure.startswith("verification failed:")
        # pinning the genuine root again against the forger fails and keeps the earlier pin
        code, err = _keyless(capsys, "trust-instance", fake.url, root_file)
        assert code == 1
        assert err.startswith("trust-instance failed:")
        assert "did not prove that it holds the keys of the root given" in err
        assert pinned_root(fake.url) == genuine.root
        assert not [p for p in default_store().iterdir() if p.name.startswith(".")]


def test_a_failed_first_pin_stores_nothing(
    home: Path, genuine: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    forger = Repository(_trusted_root("production"))
    with FakeInstance(forger, b"{}") as fake:
        code, err = _keyless(capsys, "trust-instance", fake.url, _root_file(home, genuine))
        assert code == 1, err
        assert pinned_root(fake.url) is None
        assert list(default_store().iterdir()) == []
        # without a pin, --server is trust on first use of whatever the server says
        code, err = _keyless(capsys, *VERIFY, "--server", fake.url)
    assert code == 0, err
    warning, ok = err.strip().splitlines()
    assert warning == (
        f"warning: {fake.url} is not pinned: trusting its TUF root {fingerprint(forger.root)} "
        "on first use; check this fingerprint with the instance's operator (sha256sum "
        f"DIR/tuf-root.json) and pin it once with `keyless trust-instance {fake.url} "
        "tuf-root.json`"
    )
    assert ok.startswith("OK:")
    # nothing learnt on first use is kept: no pin, no TUF cache
    assert list(default_store().iterdir()) == []
    assert not (home / "cache").exists()


def test_bad_root_files_are_refused_before_any_request(
    home: Path, genuine: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = json.loads(genuine.root)
    tampered["signed"]["expires"] = "2099-01-01T00:00:00Z"
    cases = {
        "trusted_root.json": (_trusted_root("staging"), "is not TUF root metadata"),
        "tampered.json": (json.dumps(tampered).encode(), "is not signed by its own root keys"),
    }
    with FakeInstance(genuine, b"{}") as fake:
        for name, (data, message) in cases.items():
            path = home / name
            path.write_bytes(data)
            code, err = _keyless(capsys, "trust-instance", fake.url, str(path))
            assert code == 1 and f"{path} {message}" in err, err
        code, err = _keyless(capsys, "trust-instance", "ftp://x", str(path))
        assert code == 2 and "URL 'ftp://x' is not an http:// or https:// URL" in err
        code, err = _keyless(capsys, "trust-instance", fake.url, str(home / "missing.json"))
        assert code == 2 and "cannot read" in err
        assert fake.paths == []


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://localhost:3000", True), ("http://LOCALHOST", True), ("http://127.0.0.1:1", True),
    ("http://127.9.8.7", True), ("http://[::1]:3000/x", True),
    ("http://localhost.example.com", False), ("http://10.0.0.1", False),
    ("http://[::ffff:7f00:1]", False), ("http://keyless.example.com", False),
])
def test_loopback_hosts(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


def test_instance_urls_are_checked() -> None:
    assert normalize_url("https://k.example.com/a/") == "https://k.example.com/a"
    for bad in ("k.example.com", "file:///etc", "https://u:p@k.example.com", "https://k/?a=b"):
        with pytest.raises(ConfigError):
            normalize_url(bad)


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """The installed CLI under an audit hook that records (and refuses) every network call."""
    probe = tmp_path / "probe"
    log = write_sitecustomize(probe)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGSTORE_", "KEYLESS_"))}
    env.update(PYTHONPATH=str(probe), KEYLESS_NET_PROBE_LOG=str(log),
               XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.run([str(KEYLESS), *args], capture_output=True, text=True, timeout=120,
                          check=False, env=env)
    return proc, log.read_text()


def test_plain_http_to_a_remote_host_is_refused_before_any_connection(tmp_path: Path) -> None:
    vectors_present()
    remote = "http://keyless.example.com"
    artifact = tmp_path / "a.txt"
    artifact.write_text("a\n")
    for argv in ([*VERIFY, "--server", remote],
                 ["sign", str(artifact), "--identity-token", "x", "--server", remote]):
        proc, attempts = _run(tmp_path, *argv)
        assert proc.returncode == 1, proc.stderr
        assert f"refusing to trust {remote} on first use over plain HTTP" in proc.stderr
        assert "--allow-insecure-http" in proc.stderr
        assert f"keyless trust-instance {remote} ROOT.json" in proc.stderr
        assert attempts == "", f"{argv[0]} reached the network: {attempts}"
    # the probe works, and the flag is the way through
    proc, attempts = _run(tmp_path, *VERIFY, "--server", remote, "--allow-insecure-http")
    assert proc.returncode == 1 and "cannot fetch" in proc.stderr
    assert attempts != ""
