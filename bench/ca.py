"""Benchmark: certificates per second and latency of the CA over HTTP, token checks included.

A server process runs the CA + CT log exactly as in the stack (uvicorn, real log engine on SQLite
by default, token-replay guard in storage.kv); this process fires pre-built signing requests at
it with a fixed concurrency. Each request carries a fresh ES256 identity token (verified against
the issuer's JWKS: signature, iss, aud, exp/iat, email_verified) and a fresh key with its proof of
possession, so the server does per certificate: one JWT verification, one PoP verification, the
replay-guard write, precert signature, SCT signature, durable CT log append, final signature.

    .venv/bin/python bench/ca.py [--requests 3000] [--concurrency 16] [--storage sqlite|memory]
                                 [--dialect pop|csr] [--workers 1]

Prints the machine's core count, throughput and latency percentiles. Target (issue 5): >= 500
certificates/s with p99 <= 100 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from _common import connect, cpu_seconds, exchange, percentile_ms, post_request

ROOT = Path(__file__).resolve().parent.parent
ISSUER = "https://issuer.bench"
SIGNING_CERT = "/api/v2/signingCert"


def serve(args: argparse.Namespace) -> None:
    """The server side: CA + CT log over the real engine, uvicorn on 127.0.0.1."""
    import httpx
    import uvicorn
    from cryptography.hazmat.primitives.asymmetric import ec
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from keyless.formats.note_keys import NoteSigner
    from keyless.http.budget import ClientBudget
    from keyless.http.errors import EXCEPTION_HANDLERS
    from keyless.identity import IdentityVerifier, IssuerConfig
    from keyless.keys import InMemorySigner
    from keyless.log import TransparencyLog
    from keyless.services.ca import CAService, TokenReplayGuard, load_or_create
    from keyless.services.ca.routes import routes as ca_routes
    from keyless.services.ctlog import CTLogService
    from keyless.services.ctlog.routes import routes as ctlog_routes
    from keyless.storage import open_storage

    data = Path(args.dir)
    jwks = json.loads((data / "jwks.json").read_text())
    state: dict[str, Any] = {}

    async def startup() -> None:
        url = "memory://" if args.storage == "memory" else f"sqlite:///{data}/keyless.db"
        storage = await open_storage(url, data_dir=data)
        ct_key = InMemorySigner(ec.generate_private_key(ec.SECP256R1()))
        origin = "localhost/ctlog"
        engine = TransparencyLog(storage, name="ctlog", origin=origin,
                                 signer=NoteSigner.for_key(origin, ct_key))
        await engine.start()
        material = load_or_create(data / "ca")
        ctlog = CTLogService(engine=engine, kv=storage.kv, signer=ct_key, roots=[material.root],
                             origin=origin)
        verifier = IdentityVerifier([IssuerConfig(ISSUER, "email")], httpx.AsyncClient(),
                                    local_jwks={ISSUER: lambda: jwks})
        ca = CAService(material=material, identity=verifier, ctlog=ctlog,
                       replay_guard=TokenReplayGuard())
        state.update(engine=engine, ca=ca)
        # the benchmark's one client measures throughput: no per-client budget
        for route in ca_routes(ca, ClientBudget.per_second(0)):
            app.router.routes.append(route)
        app.router.routes.append(
            Mount("/ctlog", routes=ctlog_routes(ctlog, ClientBudget.per_second(0)))
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await startup()
        yield
        await state["engine"].close()

    app = Starlette(exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning",
                            access_log=False)
    uvicorn.Server(config).run()


def issuer_jwks(key: Any) -> dict[str, Any]:
    """The JWKS of the bench issuer whose ES256 ``key`` signs :func:`build_requests`' tokens."""
    import jwt

    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="bench", use="sig", alg="ES256")
    return {"keys": [jwk]}


def build_requests(n: int, dialect: str, key: Any, *, issuer: str = ISSUER, first: int = 0,
                   keys: list[Any] | None = None
                   ) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Pre-built (body, headers) pairs: one token and one fresh key per request (or the given
    ``keys``, one per request, when the caller wants to sign with the certificates).

    The tokens name users ``first`` … ``first + n - 1``: requests built by different processes
    at the same second need distinct ``first`` (the CA's replay guard refuses a token twice).
    """
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    now = int(time.time())
    out: list[tuple[dict[str, Any], dict[str, str]]] = []
    for i in range(first, first + n):
        token = jwt.encode(
            {"iss": issuer, "aud": "sigstore", "sub": f"user-{i}", "email": f"u{i}@example.com",
             "email_verified": True, "iat": now, "exp": now + 3600},
            key, algorithm="ES256", headers={"kid": "bench"},
        )
        k = keys[i - first] if keys else ec.generate_private_key(ec.SECP256R1())
        if dialect == "csr":
            csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
                   .sign(k, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
            out.append(({"certificateSigningRequest": base64.b64encode(csr).decode()},
                        {"Authorization": f"Bearer {token}"}))
        else:
            pem = k.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
            proof = k.sign(f"u{i}@example.com".encode(), ec.ECDSA(hashes.SHA256()))
            key_request = {
                "publicKey": {"algorithm": "ECDSA", "content": pem.decode()},
                "proofOfPossession": base64.b64encode(proof).decode(),
            }
            out.append(({"credentials": {"oidcIdentityToken": token},
                         "publicKeyRequest": key_request}, {}))
    return out


def encode_requests(host: str, requests: list[tuple[dict[str, Any], dict[str, str]]]
                    ) -> list[bytes]:
    """The HTTP bytes of :func:`build_requests`' pairs (``POST /api/v2/signingCert``)."""
    return [post_request(SIGNING_CERT, json.dumps(body).encode(), host=host,
                         headers="".join(f"{k}: {v}\r\n" for k, v in headers.items()))
            for body, headers in requests]


async def fire(url: str, requests: list[tuple[dict[str, Any], dict[str, str]]],
               concurrency: int) -> tuple[float, list[float], int]:
    """Send the requests over ``concurrency`` keep-alive HTTP/1.1 connections.

    A minimal client on raw asyncio streams (pre-encoded requests, Content-Length framing) so
    that the load generator, which shares the 2 cores with the server, costs little CPU.
    """
    host, port = url.removeprefix("http://").split(":")
    queue = list(reversed(encode_requests(f"{host}:{port}", requests)))
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await connect(int(port), host)
        while queue:
            request = queue.pop()
            start = time.perf_counter()
            status, body = await exchange(reader, writer, request)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors += 1
                if errors <= 3:
                    print("error:", status, body[:200], file=sys.stderr)
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--storage", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--dialect", choices=["pop", "csr"], default="pop")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return

    import socket

    import httpx
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "jwks.json").write_text(json.dumps(issuer_jwks(key)))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--port", str(port), "--dir", tmp,
             "--storage", args.storage],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        try:
            for _ in range(200):
                try:
                    if httpx.get(url + "/api/v2/trustBundle", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit("server did not start")
            warm = build_requests(100, args.dialect, key)
            asyncio.run(fire(url, warm, args.concurrency))
            reqs = build_requests(args.requests, args.dialect, key, first=len(warm))
            cpu0 = cpu_seconds(proc.pid)
            elapsed, lat, errors = asyncio.run(fire(url, reqs, args.concurrency))
            server_cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"cores: {os.cpu_count()}  storage: {args.storage}  dialect: {args.dialect}  "
          f"concurrency: {args.concurrency}")
    print(f"certificates: {len(lat)} in {elapsed:.2f} s = {len(lat) / elapsed:.0f}/s  "
          f"errors: {errors}")
    print(f"server CPU: {server_cpu:.2f} s = {server_cpu / len(lat) * 1000:.2f} ms/certificate "
          f"(= {len(lat) / server_cpu:.0f} certificates per server-core-second)")
    p50, p90, p99 = (percentile_ms(lat, p) for p in (50, 90, 99))
    print(f"latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {max(lat) * 1000:.1f}")


if __name__ == "__main__":
    main()
