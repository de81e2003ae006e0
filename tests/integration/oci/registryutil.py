"""Real parts for the image tests: Debian's ``docker-registry`` (distribution 2.8.2) on a free
loopback port (optionally htpasswd Basic auth over TLS with a throwaway CA), and images built
from scratch as OCI layouts and pushed with ``skopeo copy``.

Readiness is awaited by polling ``/v2/`` (200 or 401), never by sleeping.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import datetime
import gzip
import hashlib
import io
import json
import os
import socket
import ssl
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import require_program

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
USER, PASSWORD = "ci", "registry-s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash through the system's libcrypt (htpasswd for distribution is bcrypt-only)."""
    lib = ctypes.CDLL(ctypes.util.find_library("crypt"))
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt.restype = ctypes.c_char_p
    salt = lib.crypt_gensalt(b"$2b$", 5, None, 0)
    return bytes(lib.crypt(password.encode(), salt)).decode()


def make_ca_and_server_cert(d: Path) -> tuple[Path, Path, Path]:
    """(CA cert, server cert, server key) for 127.0.0.1/localhost."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyless test registry CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (d / "ca.pem", d / "server.pem", d / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(paths[2], 0o600)
    return paths


@dataclass
class Registry:
    host: str  #: 127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    directory: Path
    ca: Path | None = None
    auth: tuple[str, str] | None = None
    log: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return ("https://" if self.ca else "http://") + self.host

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def client(self) -> httpx.Client:
        """An httpx client that talks to it directly (checks from outside keyless)."""
        return httpx.Client(base_url=self.url, verify=self.ssl_context(),
                            auth=self.auth if self.ca else None, timeout=30)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca) if self.ca else None)

    def skopeo_dest_args(self) -> list[str]:
        if self.ca is None:
            creds = ["--dest-creds", ":".join(self.auth)] if self.auth else []
            return ["--dest-tls-verify=false", *creds]
        certs = self.directory / "skopeo-certs"
        certs.mkdir(exist_ok=True)
        (certs / "ca.crt").write_bytes(self.ca.read_bytes())
        assert self.auth is not None
        return ["--dest-cert-dir", str(certs), "--dest-creds", f"{self.auth[0]}:{self.auth[1]}"]

    def skopeo_src_args(self) -> list[str]:
        return [a.replace("--dest-", "--src-") for a in self.skopeo_dest_args()]


class TokenServer:
    """A Docker token service (distribution's ``auth.token`` scheme) for the Bearer flow: GET
    with Basic credentials, or POST an OAuth2 refresh token; answers an ES256 JWT whose ``x5c``
    is the CA the registry trusts (``rootcertbundle``). Records the scopes asked."""

    SERVICE = "keyless-test-registry"
    ISSUER = "keyless-test-token-issuer"
    REFRESH = "refresh-t0ken"

    def __init__(self, directory: Path) -> None:
        import http.server
        import threading

        now = datetime.datetime.now(datetime.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyless test token CA")])
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.root_bundle = directory / "token-root.pem"
        self.root_bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.scopes: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                from urllib.parse import parse_qs, urlsplit

                query = parse_qs(urlsplit(self.path).query)
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._answer(401, {"details": "bad credentials"})
                    return
                scope = query.get("scope", [""])[0]
                server.scopes.append(scope)
                self._answer(200, {"token": server.token(scope)})

            def do_POST(self) -> None:
                from urllib.parse import parse_qs

                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                if form.get("refresh_token") != [TokenServer.REFRESH]:
                    self._answer(401, {"details": "bad refresh token"})
                    return
                scope = form.get("scope", [""])[0]
                server.scopes.append(scope)
                self._answer(200, {"access_token": server.token(scope)})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def token(self, scope: str) -> str:
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64url(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        access = []
        if scope.startswith("repository:"):
            _, name, actions = scope.split(":", 2)
            access.append({"type": "repository", "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [
            base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": self.ISSUER, "sub": USER, "aud": self.SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_registry(directory: Path, *, tls_basic_auth: bool = False,
                   token: TokenServer | None = None) -> Registry:
    directory.mkdir(parents=True, exist_ok=True)
    storage = directory / "storage"
    storage.mkdir(exist_ok=True)
    for _attempt in range(5):
        port = free_port()
        config = [
            "version: 0.1",
            "log:", "  level: warn",
            "storage:", f"  filesystem:\n    rootdirectory: {storage}", "  delete:",
            "    enabled: true",
            "http:", f"  addr: 127.0.0.1:{port}", "  secret: keyless-test-secret",
        ]
        ca = None
        auth = None
        if tls_basic_auth:
            ca, cert, key = make_ca_and_server_cert(directory)
            config += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
            htpasswd = directory / "htpasswd"
            htpasswd.write_text(f"{USER}:{bcrypt_hash(PASSWORD)}\n")
            config += ["auth:", "  htpasswd:", "    realm: keyless-test", f"    path: {htpasswd}"]
            auth = (USER, PASSWORD)
        if token is not None:
            config += ["auth:", "  token:", f"    realm: {token.realm}",
                       f"    service: {token.SERVICE}", f"    issuer: {token.ISSUER}",
                       f"    rootcertbundle: {token.root_bundle}"]
            auth = (USER, PASSWORD)
        (directory / "config.yml").write_text("\n".join(config) + "\n")
        log = directory / "registry.log"
        proc = subprocess.Popen(["docker-registry", "serve", str(directory / "config.yml")],
                                stdout=log.open("wb"), stderr=subprocess.STDOUT)
        registry = Registry(f"127.0.0.1:{port}", proc, directory, ca, auth, log)
        if _wait_ready(registry):
            return registry
        registry.stop()
    raise RuntimeError(f"docker-registry did not start: {log.read_text()[-2000:]}")


def _wait_ready(registry: Registry, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    with httpx.Client(verify=registry.ssl_context(), timeout=2) as http:
        while time.monotonic() < deadline:
            if registry.process.poll() is not None:
                return False
            try:
                if http.get(registry.url + "/v2/").status_code in (200, 401):
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling interval, not synchronisation: readiness is the /v2/ answer
    return False


# --- images built from scratch ----------------------------------------------------------------


def _tar_gz(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip'ed tar layer and its diff ID (digest of the uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


class Layout:
    """An OCI image layout directory (``oci:DIR:TAG`` for skopeo)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.refs: list[dict[str, object]] = []

    def blob(self, data: bytes, media_type: str) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (self.path / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def image(self, content: str, *, arch: str = "amd64",
              ) -> dict[str, object]:
        """A one-layer image with ``/hello`` = ``content``; its manifest descriptor."""
        layer, diff_id = _tar_gz({"hello": content.encode()})
        layer_d = self.blob(layer, OCI_LAYER)
        config = json.dumps({"architecture": arch, "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                             "config": {"Cmd": ["/hello"]}}).encode()
        config_d = self.blob(config, OCI_CONFIG)
        media_type = OCI_MANIFEST
        manifest = json.dumps({"schemaVersion": 2, "mediaType": media_type, "config": config_d,
                               "layers": [layer_d]}, indent=1).encode()
        d = self.blob(manifest, media_type)
        d["platform"] = {"architecture": arch, "os": "linux"}
        return d

    def index(self, children: list[dict[str, object]]) -> dict[str, object]:
        data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                           "manifests": children}).encode()
        return self.blob(data, OCI_INDEX)

    def tag(self, descriptor: dict[str, object], name: str) -> None:
        entry = {k: v for k, v in descriptor.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": name}
        self.refs = [r for r in self.refs if r["annotations"] != entry["annotations"]]
        self.refs.append(entry)
        (self.path / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.refs}))


def push(layout: Layout, tag: str, registry: Registry, repo: str, *, all_images: bool = False,
         docker: bool = False, dest_tag: str | None = None) -> str:
    """``skopeo copy oci:LAYOUT:TAG docker://REGISTRY/REPO:TAG``; the pushed manifest digest.

    ``docker``: skopeo converts the (OCI) image to Docker schema 2 media types on the way, as
    skopeo 1.9's OCI layout holds only OCI manifests."""
    digest_file = layout.path / f"{tag}.digest"
    cmd = ["skopeo", "copy", "--quiet", "--digestfile", str(digest_file),
           *registry.skopeo_dest_args()]
    cmd += ["--format", "v2s2"] if docker else ["--preserve-digests"]
    if all_images:
        cmd.append("--all")
    cmd += [f"oci:{layout.path}:{tag}", f"docker://{registry.host}/{repo}:{dest_tag or tag}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return digest_file.read_text().strip()


# --- fixtures (imported by the test modules) ----------------------------------------------------



@pytest.fixture(scope="session", name="registry")
def registry_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    require_program("docker-registry")
    require_program("skopeo")
    running = start_registry(tmp_path_factory.mktemp("registry"))
    yield running
    running.stop()


@pytest.fixture(scope="session", name="tls_registry")
def tls_registry_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    require_program("docker-registry")
    require_program("skopeo")
    running = start_registry(tmp_path_factory.mktemp("tls-registry"), tls_basic_auth=True)
    yield running
    running.stop()


@pytest.fixture(name="docker_config")
def docker_config_fixture(tmp_path: Path, tls_registry: Registry,
                          monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$DOCKER_CONFIG`` holding the TLS registry's credentials (as ``docker login`` writes)."""
    assert tls_registry.auth is not None
    auth = base64.b64encode(":".join(tls_registry.auth).encode()).decode()
    d = tmp_path / "docker"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"auths": {tls_registry.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d


@pytest.fixture(name="layout")
def layout_fixture(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "layout")



@pytest.fixture(scope="session", name="token_registry")
def token_registry_fixture(tmp_path_factory: pytest.TempPathFactory,
                           ) -> Iterator[tuple[Registry, TokenServer]]:
    """A plain-HTTP loopback registry behind Docker token (Bearer) auth."""
    require_program("docker-registry")
    require_program("skopeo")
    directory = tmp_path_factory.mktemp("token-registry")
    token = TokenServer(directory)
    running = start_registry(directory, token=token)
    yield running, token
    running.stop()
    token.stop()
