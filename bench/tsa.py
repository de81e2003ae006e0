"""Benchmark: RFC 3161 timestamps per second and latency over HTTP with concurrent clients.

Starts the TSA alone (``keyless.services.tsa.standalone``) under uvicorn on a free 127.0.0.1
port, then drives it from separate client processes, each keeping ``--connections`` keep-alive
HTTP/1.1 connections busy with sigstore-python-shaped queries (DER, SHA-256, random nonce,
certReq=true). Every response is checked for status 200; a sample is verified cryptographically
with rfc3161-client against the published chain. Prints throughput, p50/p95/p99, the CPU time per
timestamp of the server (all its processes, from /proc) and of the load generator over the
measured window (the machine-independent figures), and the machine's core count and load (the
machine is shared, so throughput figures are pessimistic).

    .venv/bin/python bench/tsa.py [--seconds 10] [--workers 2] [--clients 2] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import multiprocessing as mp
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from rfc3161_client import VerifierBuilder, decode_timestamp_response

from _common import connect, exchange, percentile_ms, tree_cpu_seconds
from keyless.formats.tsp import encode_query

PATH = "/api/v1/timestamp"


def make_requests(port: int, json_form: bool, count: int = 256) -> list[tuple[bytes, bytes]]:
    """``count`` distinct HTTP requests and the message each one timestamps.

    DER: as sigstore-python sends it (SHA-256, random nonce, certReq=true). JSON: as sigstore-js
    sends it (``{"artifactHash", "hashAlgorithm"}``, no nonce, no certificates).
    """
    out = []
    for _ in range(count):
        message = secrets.token_bytes(64)
        digest = hashlib.sha256(message).digest()
        if json_form:
            body = json.dumps(
                {"artifactHash": base64.b64encode(digest).decode(), "hashAlgorithm": "sha256"}
            ).encode()
            media = "application/json"
        else:
            body = encode_query(digest, nonce=secrets.randbits(64), cert_req=True)
            media = "application/timestamp-query"
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: {media}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append((head + body, message))
    return out


async def _connection(
    port: int,
    requests: list[tuple[bytes, bytes]],
    start: float,
    stop: float,
    latencies: list[float],
    samples: list[tuple[bytes, bytes]],
) -> int:
    reader, writer = await connect(port)
    errors = 0
    i = secrets.randbelow(len(requests))
    while True:
        raw, message = requests[i % len(requests)]
        i += 1
        t0 = time.perf_counter()
        if t0 >= stop:
            break
        status, body = await exchange(reader, writer, raw)
        t1 = time.perf_counter()
        if status != 200:
            errors += 1
        elif t0 >= start:
            latencies.append(t1 - t0)
            if len(samples) < 20 and secrets.randbelow(200) == 0:
                samples.append((body, message))
    writer.close()
    return errors


def client_process(
    port: int,
    connections: int,
    start: float,
    stop: float,
    json_form: bool,
    out: mp.Queue,  # type: ignore[type-arg]
) -> None:
    """One load-generating process (uvloop when available), measuring between the
    ``time.perf_counter()`` instants ``start`` and ``stop`` (a system-wide clock on Linux)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    requests = make_requests(port, json_form)
    latencies: list[float] = []
    samples: list[tuple[bytes, bytes]] = []

    cpu: list[float] = []

    async def meter() -> None:
        await asyncio.sleep(start - time.perf_counter())
        cpu.append(time.process_time())
        await asyncio.sleep(stop - time.perf_counter())
        cpu.append(time.process_time())

    async def main() -> int:
        results = await asyncio.gather(
            meter(),
            *(
                _connection(port, requests, start, stop, latencies, samples)
                for _ in range(connections)
            ),
        )
        return sum(results[1:])

    errors = asyncio.run(main())
    out.put((latencies, errors, samples, cpu[1] - cpu[0]))


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(
                    b"GET /api/v1/timestamp/certchain HTTP/1.1\r\n"
                    b"Host: x\r\nConnection: close\r\n\r\n"
                )
                if s.recv(12).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("TSA did not start")


def fetch_chain(port: int) -> list[x509.Certificate]:
    import httpx

    r = httpx.get(f"http://127.0.0.1:{port}/api/v1/timestamp/certchain")
    r.raise_for_status()
    return x509.load_pem_x509_certificates(r.content)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--clients", type=int, default=1, help="load-generating processes")
    ap.add_argument("--connections", type=int, default=32, help="connections per client process")
    ap.add_argument("--json", action="store_true", help="sigstore-js JSON requests instead of DER")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        # uvicorn's --fd assumes a Unix socket (no TCP_NODELAY: 40 ms delayed-ACK stalls), so the
        # workers bind the port themselves; it is picked free just before.
        sock = free_socket()
        port = sock.getsockname()[1]
        sock.close()
        # the benchmark's one client measures throughput: no per-client budget
        env = dict(
            os.environ, KEYLESS_TSA_DIR=str(Path(tmp) / "tsa"), KEYLESS_TSA_CLIENT_BUDGET="0"
        )
        # Generate the credentials once, before the workers start, so all share one chain.
        subprocess.run(
            [sys.executable, "-c", "import keyless.services.tsa.standalone as s; s.app_from_env()"],
            env=env,
            check=True,
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "keyless.services.tsa.standalone:app_from_env",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=env,
        )
        try:
            wait_ready(port)
            chain = fetch_chain(port)
            queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
            start = time.perf_counter() + args.warmup
            stop = start + args.seconds
            procs = [
                mp.Process(
                    target=client_process,
                    args=(port, args.connections, start, stop, args.json, queue),
                )
                for _ in range(args.clients)
            ]
            for p in procs:
                p.start()
            time.sleep(max(0.0, start - time.perf_counter()))
            server_cpu = tree_cpu_seconds(server.pid)
            time.sleep(max(0.0, stop - time.perf_counter()))
            server_cpu = tree_cpu_seconds(server.pid) - server_cpu
            results = [queue.get() for _ in procs]
            for p in procs:
                p.join()
        finally:
            server.terminate()
            server.wait(10)

    latencies = sorted(x for lat, _, _, _ in results for x in lat)
    errors = sum(e for _, e, _, _ in results)
    samples = [s for _, _, ss, _ in results for s in ss]
    client_cpu = sum(c for _, _, _, c in results)
    verifier = VerifierBuilder().tsa_certificate(chain[0]).add_root_certificate(chain[-1]).build()
    for body, message in samples:
        verifier.verify_message(decode_timestamp_response(body), message)

    ok = len(latencies)
    rate = ok / args.seconds
    p50, p95, p99 = (percentile_ms(latencies, p) for p in (50, 95, 99))
    load = os.getloadavg()
    print(f"cores: {os.cpu_count()}  load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"config: {args.workers} uvicorn workers, {args.clients} client processes x "
        f"{args.connections} connections, {'JSON' if args.json else 'DER'} requests, "
        f"{args.seconds:.0f} s measured "
        f"after {args.warmup:.0f} s warm-up"
    )
    print(f"timestamps: {ok} ok, {errors} non-200")
    print(f"throughput: {rate:,.0f} timestamps/s")
    print(
        f"latency ms: p50 {p50:.2f}  p95 {p95:.2f}  p99 {p99:.2f}  max {latencies[-1] * 1000:.2f}"
    )
    print(
        f"CPU ms/timestamp: server {server_cpu / ok * 1000:.3f}  "
        f"load generator {client_cpu / ok * 1000:.3f}  "
        f"(sum {(server_cpu + client_cpu) / ok * 1000:.3f})"
    )
    print(f"verified with rfc3161-client: {len(samples)} sampled responses")
    target = rate >= 3000 and p95 <= 50
    print(f"target (>= 3000/s, p95 <= 50 ms): {'met' if target else 'NOT met'}")


if __name__ == "__main__":
    main()
