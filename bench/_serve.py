"""The stack under test of ``bench/stack.py``: the bench's OpenID Connect issuer, one
``keyless serve`` subprocess on a fresh data directory (and, for PostgreSQL, a fresh database),
and the signing certificates its CA issues for the Rekor v2 requests."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.server
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import ca as ca_bench
from _common import free_port

ROOT = Path(__file__).resolve().parent.parent
#: signing keys (certified by the stack's CA) the Rekor v2 requests are signed with
SIGNERS = 8


class Issuer:
    """The bench's OpenID Connect issuer: discovery + JWKS on 127.0.0.1, ES256 key in memory."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        documents: dict[str, bytes] = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = documents.get(self.path)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        documents["/.well-known/openid-configuration"] = json.dumps({
            "issuer": self.url, "jwks_uri": self.url + "/jwks",
            "id_token_signing_alg_values_supported": ["ES256"]}).encode()
        documents["/jwks"] = json.dumps(ca_bench.issuer_jwks(self.key)).encode()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def supports_workers() -> bool:
    """Whether this checkout's ``keyless serve`` has ``--workers``."""
    out = subprocess.run([sys.executable, "-m", "keyless", "serve", "--help"], env=_env(),
                         capture_output=True, text=True, check=True).stdout
    return "--workers" in out


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


@dataclasses.dataclass
class Stack:
    """One running ``keyless serve``."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def serve(workers: int, issuer: Issuer, database: str, kek: Path,
          pass_workers: bool) -> Iterator[Stack]:
    """Start ``keyless serve`` on a fresh data directory; wait for /healthz; stop it after."""
    with (tempfile.TemporaryDirectory(prefix="keyless-stack-bench-") as tmp,
          fresh_database(database) as database):
        data = Path(tmp) / "data"
        data.mkdir(mode=0o700)
        (data / "keyless.toml").write_text(
            '[server]\nclient_budget = 0\nlog_level = "warning"\n\n'
            f'[[issuers]]\nurl = "{issuer.url}"\ntype = "email"\n')
        port = free_port()
        command = [sys.executable, "-m", "keyless", "serve", "--data-dir", str(data),
                   "--port", str(port), "--log-level", "warning"]
        if pass_workers:
            command += ["--workers", str(workers)]
        if database != "sqlite":
            command += ["--database", database, "--kek-file", str(kek)]
        log = (Path(tmp) / "serve.log").open("wb")
        process = subprocess.Popen(command, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        stack = Stack(process, port, data)
        try:
            _wait_healthy(stack, Path(tmp) / "serve.log")
            yield stack
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """``url`` for SQLite; else a new, empty database on the PostgreSQL server of ``url``, which
    is dropped afterwards."""
    if url == "sqlite":
        yield url
        return
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"keyless_bench_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield urlunsplit(urlsplit(url)._replace(path="/" + name))
    finally:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def _wait_healthy(stack: Stack, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(stack.url + "/healthz").status_code == 200:
                    return
            with contextlib.suppress(subprocess.TimeoutExpired):
                stack.process.wait(0.05)  # waits on the process, so an early exit shows at once
                sys.exit(f"keyless serve exited with {stack.process.returncode}:\n"
                         + log.read_text()[-3000:])
    sys.exit("keyless serve did not become healthy:\n" + log.read_text()[-3000:])


def issue_signers(stack: Stack, issuer: Issuer, first: int
                  ) -> list[tuple[ec.EllipticCurvePrivateKey, str]]:
    """Keys whose certificates (base64 DER) this stack's CA issued, through its HTTP API."""
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(SIGNERS)]
    requests = ca_bench.build_requests(SIGNERS, "pop", issuer.key, issuer=issuer.url,
                                       first=first, keys=keys)
    signers = []
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        for key, (body, _) in zip(keys, requests, strict=True):
            response = client.post(ca_bench.SIGNING_CERT, json=body)
            response.raise_for_status()
            leaf = certificates(response.content)[0]
            der = leaf.public_bytes(serialization.Encoding.DER)
            signers.append((key, base64.b64encode(der).decode()))
    return signers


def certificates(ca_response: bytes) -> list[x509.Certificate]:
    chain = json.loads(ca_response)["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    return [x509.load_pem_x509_certificate(pem.encode()) for pem in chain]
