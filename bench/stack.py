"""Benchmark of the whole ``keyless serve``: Rekor v2, CA and TSA through one port, per --workers.

Run: ``.venv/bin/python bench/stack.py [--workers 1 2] [--seconds 10 | --entries N]
[--rekor-concurrency 256] [--ca-concurrency 128] [--tsa-concurrency 128] [--clients 2]
[--database sqlite|postgresql://…] [--services rekor ca tsa]``

For each worker count it starts the real CLI, ``python -m keyless serve --data-dir D --port P
[--workers N]`` (the code of this checkout: its ``src/`` goes first on PYTHONPATH), on a fresh
data directory whose ``keyless.toml`` switches the per-client budgets off (every request comes
from one address; throttling it is the budgets' job, not what is measured) and trusts one more
OpenID Connect issuer (``[[issuers]]``, type email) that this process serves on 127.0.0.1
(discovery document + JWKS), so that the benchmark mints its own ES256 identity tokens: one
fresh token per certificate, as the CA's replay guard wants. With a PostgreSQL URL it creates a
fresh database on that server for each worker count (the URL's user must be allowed to
``CREATE DATABASE``), passes ``--database URL --kek-file F`` and drops the database after. It
waits for ``/healthz``, then runs one phase per service, each after its own untimed warm-up:

* **Rekor v2** (``POST /rekor/api/v2/log/entries``): distinct ``hashedRekordRequestV002``
  requests signed with P-256 keys whose certificates this stack's CA issued (obtained through
  the CA with bench tokens before the clock starts: the entries are what a real signer logs;
  the log itself only checks the certificate's form and the signature, not the chain).
* **CA** (``POST /api/v2/signingCert``): a fresh token, a fresh P-256 key and its proof of
  possession per certificate: token verification, replay guard, precertificate, CT log append,
  SCT, certificate.
* **TSA** (``POST /api/v1/timestamp``): distinct sigstore-python-shaped RFC 3161 queries (DER,
  SHA-256, random nonce, certReq=true).

Concurrency is requests in flight. The CA and the TSA default to 128: a certificate waits for its
CT log batch to be durably committed (tens of milliseconds), so with 32 in flight the CA is bound
by that latency, not by CPU (about 620/s at --workers 2, where 128 in flight give about 1,170/s
and less CPU per certificate, as batches grow).

``--clients`` forked generator processes build every request's bytes before the clock starts,
then drive their share of raw-asyncio keep-alive HTTP/1.1 connections (uvloop) for ``--seconds``
(or until ``--entries`` requests per phase are answered). Latency is per request, send to last
byte. Server CPU is utime+stime of the serve process and all its descendants (/proc, reaped
children included), sampled just before and just after the timed window, per acknowledged
request: the machine-independent figure.

Checks after each clock stops (a 2xx that fails one is counted as an error):

* Rekor v2: every acknowledged entry is verified with the keyless verifier — its body carries
  the digest sent, its inclusion proof leads to the root of its checkpoint, the checkpoint is
  signed by the Rekor v2 key of the stack's ``client-trust-config.json``. Then the final
  ``GET /rekor/checkpoint`` (signature verified) is checked against the tiles: every level-0
  tile is read, the root recomputed; every acknowledged leaf must sit at its index, and every
  checkpoint an entry came with must be the root of a prefix of that tree (no fork).
* CA: a sample of the certificates chains to the stack's CA (keyless' chain verifier) and names
  its token's e-mail.
* TSA: a sample of the timestamps is verified with rfc3161-client against the stack's TSA chain.

Prints one line per phase, then a Markdown table (one row per service, one column per worker
count) with the targets of issue #20 beside, the core count and the load averages. Until
``keyless serve`` has ``--workers`` (checked with ``--help``), counts other than 1 are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import datetime
import json
import math
import multiprocessing as mp
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

import ca as ca_bench
import tlog_http
import tsa as tsa_bench
from _common import (
    connect,
    exchange,
    load_average,
    percentile_ms,
    post_request,
    tree_cpu_seconds,
)
from _serve import Issuer, Stack, certificates, issue_signers, serve, supports_workers

SERVICES = ("rekor", "ca", "tsa")
NOUNS = {"rekor": "entries", "ca": "certificates", "tsa": "timestamps"}
TITLES = {"rekor": "Rekor v2 verified entries", "ca": "CA certificates", "tsa": "TSA timestamps"}
TARGETS = {
    "rekor": "≥ 3,000/s, p99 ≤ 1 s, workers 2 ≥ 1.6x workers 1, CPU ≤ 0.25 ms/entry",
    "ca": "≥ 1,000/s",
    "tsa": "≥ 6,000/s",
}
#: pre-built requests per generated second in --seconds mode (a phase that runs out says so)
POOL_RATE = {"rekor": 6000, "ca": 2500, "tsa": 12000}
#: untimed warm-up requests per generator process
WARMUP = {"rekor": 200, "ca": 50, "tsa": 200}
#: first responses kept per generator for the sample checks of the CA and the TSA
SAMPLE = 50


# ---- the load generators (forked processes) -----------------------------------------------------


@dataclasses.dataclass
class Job:
    """What one generator process does in one phase."""

    service: str
    port: int
    connections: int
    count: int  # requests to build, warm-up included
    seconds: float | None  # the timed window, or None: send every request
    trust: bytes  # the stack's client-trust-config.json
    first: int = 0  # token users of the CA phase start here (distinct per process and run)
    signers: list[tuple[ec.EllipticCurvePrivateKey, str]] = dataclasses.field(
        default_factory=list)
    issuer_key: Any = None
    issuer_url: str = ""


@dataclasses.dataclass
class Outcome:
    """What one generator process reports: timed figures, then its checks."""

    ok: int = 0  # timed 2xx, less those that failed a check
    errors: int = 0  # non-2xx and 2xx that failed a check (warm-up included)
    latencies: list[float] = dataclasses.field(default_factory=list)
    start: float = 0.0
    end: float = 0.0
    exhausted: bool = False
    own_cpu: float = 0.0  # this generator's CPU seconds in the timed window
    checked: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    leaves: list[tuple[int, bytes]] = dataclasses.field(default_factory=list)
    checkpoints: set[tuple[int, bytes]] = dataclasses.field(default_factory=set)


def build(job: Job) -> list[tuple[bytes, Any]]:
    """Every request of the job as (HTTP bytes, what its check needs)."""
    if job.service == "rekor":
        bodies = tlog_http.presign(job.count, job.signers)
        return [(post_request(tlog_http.PATH, body), body) for body in bodies]
    if job.service == "ca":
        pairs = ca_bench.build_requests(job.count, "pop", job.issuer_key, issuer=job.issuer_url,
                                        first=job.first)
        raw = ca_bench.encode_requests(f"127.0.0.1:{job.port}", pairs)
        return [(r, body) for r, (body, _) in zip(raw, pairs, strict=True)]
    return tsa_bench.make_requests(job.port, json_form=False, count=job.count)


async def fire(port: int, requests: list[tuple[bytes, Any]], connections: int,
               seconds: float | None, keep: Callable[[int, int], bool],
               ) -> tuple[list[float], int, list[tuple[Any, int, bytes]], float, float, bool]:
    """Send the requests over keep-alive connections; (latencies, non-2xx answers, kept
    (context, status, body), start, end, whether the requests ran out before the time)."""
    queue = list(reversed(requests))
    latencies: list[float] = []
    failed = 0
    kept: list[tuple[Any, int, bytes]] = []
    start = time.monotonic()
    stop = start + seconds if seconds is not None else math.inf

    async def connection() -> None:
        nonlocal failed
        reader, writer = await connect(port)
        try:
            while queue and time.monotonic() < stop:
                raw, context = queue.pop()
                t0 = time.perf_counter()
                status, body = await exchange(reader, writer, raw)
                latencies.append(time.perf_counter() - t0)
                failed += not 200 <= status < 300
                if keep(status, len(kept)):
                    kept.append((context, status, body))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return latencies, failed, kept, start, time.monotonic(), seconds is not None and not queue


def generate(job: Job, pipe: Connection) -> None:
    """A generator process: build, warm up, report ready, run the timed window on "go", report
    done, check what it got, send the :class:`Outcome`."""
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    try:
        requests = build(job)
        warm, timed = requests[:WARMUP[job.service]], requests[WARMUP[job.service]:]
        keep_all = job.service == "rekor"

        def keep(status: int, kept: int) -> bool:
            return keep_all or kept < SAMPLE

        with asyncio.Runner(loop_factory=loop_factory) as runner:
            _, warm_failed, warm_kept, *_ = runner.run(
                fire(job.port, warm, min(job.connections, 8), None, lambda *_: keep_all))
            pipe.send("ready")
            if pipe.recv() != "go":
                return
            own = time.process_time()
            latencies, failed, kept, start, end, exhausted = runner.run(
                fire(job.port, timed, job.connections, job.seconds, keep))
            own = time.process_time() - own
        pipe.send("done")
        outcome = Outcome(ok=len(latencies) - failed, errors=warm_failed + failed,
                          latencies=latencies, start=start, end=end, exhausted=exhausted,
                          own_cpu=own)
        CHECKS[job.service](job, warm_kept, kept, outcome)
        pipe.send(outcome)
    except Exception as exc:  # reported to the parent, which stops the run
        import traceback

        pipe.send(f"{exc!r}\n{traceback.format_exc()}")


# ---- the checks ---------------------------------------------------------------------------------


def _trust(job: Job) -> Any:
    from keyless.formats.trustroot import ClientTrustConfig
    from keyless.trust.material import TrustMaterial

    return TrustMaterial(ClientTrustConfig.from_json(job.trust).trusted_root)


def check_rekor(job: Job, warm: list[tuple[Any, int, bytes]], timed: list[tuple[Any, int, bytes]],
                out: Outcome) -> None:
    """Every acknowledged entry: digest, inclusion proof, checkpoint signature (keyless verify)."""
    from keyless.errors import Error
    from keyless.formats.bundle import TransparencyLogEntry
    from keyless.merkle import leaf_hash
    from keyless.verify.tlog import verify_entry

    trust = _trust(job)
    for is_timed, responses in ((False, warm), (True, timed)):
        for request, status, body in responses:
            if not 200 <= status < 300:  # counted by fire()
                _note(out, f"HTTP {status}: {body[:200]!r}")
                continue
            try:
                digest = json.loads(request)["hashedRekordRequestV002"]["digest"]
                entry = TransparencyLogEntry.from_json(json.loads(body))
                if f'"digest":"{digest}"'.encode() not in entry.canonicalized_body:
                    raise ValueError("the entry's body does not carry the digest sent")
                verify_entry(entry, trust.tlogs_for(entry.log_id), require_set=False)
            except (Error, ValueError, KeyError, TypeError) as exc:
                _fail(out, is_timed, f"acknowledged entry fails its check: {exc}")
                continue
            proof = entry.inclusion_proof
            assert proof is not None
            out.checked += 1
            out.leaves.append((entry.log_index, leaf_hash(entry.canonicalized_body)))
            out.checkpoints.add((proof.tree_size, proof.root_hash))


def check_ca(job: Job, _warm: list[tuple[Any, int, bytes]], sample: list[tuple[Any, int, bytes]],
             out: Outcome) -> None:
    """A sample of the certificates: chain to the stack's CA, the token's e-mail in the SAN."""
    from keyless.errors import Error
    from keyless.verify.certificate import ChainVerifier

    verifier = ChainVerifier(_trust(job))
    now = datetime.datetime.now(datetime.UTC)
    for request, _status, body in _answered(sample, out):
        try:
            leaf = certificates(body)[0]
            verifier.verify(leaf, now)
            token = request["credentials"]["oidcIdentityToken"]
            claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if claims["email"] not in san.get_values_for_type(x509.RFC822Name):
                raise ValueError(f"the certificate does not name {claims['email']}")
            out.checked += 1
        except (Error, ValueError, KeyError, x509.ExtensionNotFound) as exc:
            _fail(out, True, f"certificate fails its check: {exc}")


def check_tsa(job: Job, _warm: list[tuple[Any, int, bytes]], sample: list[tuple[Any, int, bytes]],
              out: Outcome) -> None:
    """A sample of the timestamps, verified with rfc3161-client against the stack's TSA chain."""
    from rfc3161_client import VerifierBuilder, decode_timestamp_response

    chain = _trust(job).timestamp_authorities[0].certificates
    builder = VerifierBuilder().tsa_certificate(chain[0]).add_root_certificate(chain[-1])
    for intermediate in chain[1:-1]:
        builder = builder.add_intermediate_certificate(intermediate)
    verifier = builder.build()
    for message, _status, body in _answered(sample, out):
        try:
            verifier.verify_message(decode_timestamp_response(body), message)
            out.checked += 1
        except Exception as exc:  # rfc3161-client raises several unrelated classes
            _fail(out, True, f"timestamp fails its check: {exc}")


CHECKS: dict[str, Callable[[Job, list[tuple[Any, int, bytes]], list[tuple[Any, int, bytes]],
                            Outcome], None]] = {
    "rekor": check_rekor, "ca": check_ca, "tsa": check_tsa}


def _answered(responses: list[tuple[Any, int, bytes]], out: Outcome
              ) -> list[tuple[Any, int, bytes]]:
    """The 2xx responses; the others (counted as errors by fire()) are only noted."""
    for _, status, body in responses:
        if not 200 <= status < 300:
            _note(out, f"HTTP {status}: {body[:200]!r}")
    return [r for r in responses if 200 <= r[1] < 300]


def _fail(out: Outcome, timed: bool, problem: str) -> None:
    """A 2xx that fails its check: an error, and not acknowledged."""
    out.ok -= timed
    out.errors += 1
    _note(out, problem)


def _note(out: Outcome, problem: str) -> None:
    if len(out.problems) < 3:
        out.problems.append(problem)


def check_log(stack: Stack, trust: bytes, outcomes: list[Outcome]) -> tuple[int, list[str]]:
    """The final checkpoint against the tiles; every acknowledged leaf and every checkpoint seen
    must be in that one tree. Returns (entries checked, problems)."""
    from keyless.formats.tiles import TILE_WIDTH, tile_path
    from keyless.formats.trustroot import ClientTrustConfig
    from keyless.merkle import CompactRange
    from keyless.trust.material import TrustMaterial
    from keyless.verify.tlog import verify_checkpoint

    material = TrustMaterial(ClientTrustConfig.from_json(trust).trusted_root)
    base = stack.url + "/rekor"
    (log,) = [k for k in material.tlog_keys if k.instance.base_url.endswith("/rekor")]
    problems: list[str] = []
    with httpx.Client(timeout=30) as client:
        cp = verify_checkpoint(client.get(base + "/checkpoint").text, log)
        tiles = []
        for index in range(-(-cp.size // TILE_WIDTH)):
            width = min(TILE_WIDTH, cp.size - index * TILE_WIDTH)
            response = client.get(f"{base}/{tile_path(0, index, width)}")
            response.raise_for_status()
            tiles.append(response.content)
    leaves = b"".join(tiles)
    if len(leaves) != 32 * cp.size:
        return 0, [f"the level-0 tiles hold {len(leaves) // 32} leaves, not {cp.size}"]
    wanted: dict[int, set[bytes]] = {}
    for o in outcomes:
        for size, root in o.checkpoints:
            wanted.setdefault(size, set()).add(root)
    tree = CompactRange()
    for size in sorted(wanted):
        if size > cp.size:
            problems.append(f"a checkpoint of size {size} is newer than the final {cp.size}")
            break
        tree.extend((leaves[i * 32:(i + 1) * 32] for i in range(tree.size, size)), min_level=99)
        if wanted[size] != {tree.root()}:
            problems.append(f"a checkpoint of size {size} is not a prefix of the final tree")
    tree.extend((leaves[i * 32:(i + 1) * 32] for i in range(tree.size, cp.size)), min_level=99)
    if tree.root() != cp.root_hash:
        problems.append("the final checkpoint's root is not the root of its tiles")
    acknowledged = [leaf for o in outcomes for leaf in o.leaves]
    missing = sum(1 for index, leaf in acknowledged
                  if leaves[index * 32:(index + 1) * 32] != leaf)
    if missing:
        problems.append(f"{missing} acknowledged entries are not at their index in the tiles")
    return len(acknowledged) - missing, problems


# ---- one phase, one stack, the report -----------------------------------------------------------


@dataclasses.dataclass
class Result:
    """One service's figures on one stack."""

    service: str
    ok: int
    errors: int
    seconds: float
    p50: float
    p99: float
    cpu: float  # server CPU seconds in the timed window
    generator_cpu: float  # the load generators' CPU seconds in the timed window
    note: str

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def cell(self) -> str:
        cpu = f"{self.cpu * 1000 / self.ok:.2f}" if self.ok else "n/a"
        errors = f", **{self.errors:,} errors**" if self.errors else ""
        return (f"{self.rate:,.0f}/s, p50 {_ms(self.p50)} ms, p99 {_ms(self.p99)} ms, "
                f"{cpu} ms CPU{errors}")


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def run_phase(service: str, stack: Stack, args: argparse.Namespace, trust: bytes,
              issuer: Issuer, signers: list[tuple[ec.EllipticCurvePrivateKey, str]],
              run: int) -> Result:
    """Fork the generators, time one window, gather and check."""
    clients = max(1, args.clients)
    concurrency = getattr(args, f"{service}_concurrency")
    jobs = []
    for i in range(clients):
        if args.entries:
            timed = args.entries // clients + (i < args.entries % clients)
        else:
            timed = math.ceil(args.seconds * POOL_RATE[service] / clients)
        jobs.append(Job(
            service, stack.port, concurrency // clients + (i < concurrency % clients),
            WARMUP[service] + timed, None if args.entries else args.seconds, trust,
            first=(run * clients + i) * 10_000_000 + args.user_base, signers=signers,
            issuer_key=issuer.key, issuer_url=issuer.url))
    context = mp.get_context("fork")
    pipes, processes = [], []
    for job in jobs:
        parent, child = context.Pipe()
        process = context.Process(target=generate, args=(job, child), daemon=True)
        process.start()
        pipes.append(parent)
        processes.append(process)
    try:
        for pipe in pipes:
            _expect(pipe, "ready")
        cpu0 = tree_cpu_seconds(stack.process.pid)
        for pipe in pipes:
            pipe.send("go")
        for pipe in pipes:
            _expect(pipe, "done")
        cpu = tree_cpu_seconds(stack.process.pid) - cpu0
        outcomes = [_expect(pipe, Outcome) for pipe in pipes]
    finally:
        for process in processes:
            process.join(60)
            if process.is_alive():
                process.kill()
    latencies = [x for o in outcomes for x in o.latencies]
    ok = sum(o.ok for o in outcomes)
    errors = sum(o.errors for o in outcomes)
    problems = [p for o in outcomes for p in o.problems]
    checked = sum(o.checked for o in outcomes)
    if service == "rekor":
        in_tree, log_problems = check_log(stack, trust, outcomes)
        problems += log_problems
        errors += (checked - in_tree) or len(log_problems)
        ok -= checked - in_tree
        note = (f"every acknowledged entry checked ({checked:,}: digest, inclusion proof, "
                f"checkpoint signature; {in_tree:,} found in the final checkpoint's tiles, "
                f"{len({c for o in outcomes for c in o.checkpoints}):,} checkpoints consistent)")
    elif service == "ca":
        note = f"{checked} sampled certificates chain to the stack's CA"
    else:
        note = f"{checked} sampled timestamps verified with rfc3161-client"
    if any(o.exhausted for o in outcomes):
        note += "; the pre-built requests ran out before the time (use --entries)"
    if problems:
        note += "; problems: " + " | ".join(problems[:3])
    seconds = max(o.end for o in outcomes) - min(o.start for o in outcomes)
    return Result(service, ok, errors, seconds, percentile_ms(latencies, 50),
                  percentile_ms(latencies, 99), cpu, sum(o.own_cpu for o in outcomes), note)


def _expect(pipe: Connection, expected: Any) -> Any:
    message = pipe.recv()
    if (isinstance(expected, type) and isinstance(message, expected)) or message == expected:
        return message
    sys.exit(f"a load generator failed: {message}")


def bench_stack(workers: int, args: argparse.Namespace, issuer: Issuer, kek: Path,
                pass_workers: bool, run: int) -> dict[str, Result]:
    """Start one stack, run the chosen phases in turn, stop it."""
    results: dict[str, Result] = {}
    with serve(workers, issuer, args.database, kek, pass_workers) as stack:
        trust = httpx.get(stack.url + "/client-trust-config.json", timeout=30).content
        signers = issue_signers(stack, issuer, args.user_base + run * 10_000_000 + 9_000_000)
        for service in args.services:
            result = run_phase(service, stack, args, trust, issuer, signers, run)
            results[service] = result
            print(f"workers {workers}  {service:<5} {result.ok:>8,} {NOUNS[service]} in "
                  f"{result.seconds:5.1f} s: {result.cell()}; load generators "
                  f"{result.generator_cpu * 1000 / max(1, result.ok):.2f} ms CPU each; "
                  f"{result.note}; load average {load_average()}", flush=True)
    return results


def table(columns: dict[int, dict[str, Result] | None], services: list[str]) -> str:
    """The Markdown table: one row per service, one column per worker count, the target."""
    head = "| service | " + " | ".join(f"`--workers {w}`" for w in columns) + " | target |"
    lines = [head, "| --- |" + " --- |" * (len(columns) + 1)]
    for service in services:
        cells = [(r[service].cell() if r else "n/a (no --workers)") for r in columns.values()]
        lines.append(f"| {TITLES[service]} | " + " | ".join(cells) + f" | {TARGETS[service]} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                    help="worker counts, one stack each (default: 1 2)")
    length = ap.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=10.0,
                        help="timed window of each phase (default 10)")
    length.add_argument("--entries", type=int,
                        help="timed requests per phase instead of a time window")
    ap.add_argument("--rekor-concurrency", type=int, default=256)
    ap.add_argument("--ca-concurrency", type=int, default=128)
    ap.add_argument("--tsa-concurrency", type=int, default=128)
    ap.add_argument("--clients", type=int, default=2, help="load-generator processes (default 2)")
    ap.add_argument("--database", default="sqlite",
                    help="sqlite (default) or a postgresql:// URL (passed with a --kek-file)")
    ap.add_argument("--services", nargs="+", choices=SERVICES, default=list(SERVICES))
    args = ap.parse_args()
    if args.database != "sqlite" and not args.database.startswith(("postgresql://",
                                                                    "postgres://")):
        ap.error("--database is sqlite or a postgresql:// URL")
    # token users distinct between the worker counts' runs and their processes
    args.user_base = secrets.randbelow(10**12) * 10**9

    has_workers = supports_workers()
    size = f"{args.entries:,} requests" if args.entries else f"{args.seconds:g} s"
    print(f"keyless serve (whole stack) on {os.cpu_count()} cores; load average "
          f"{load_average()}; database {args.database.split('@')[-1]}; {size} per phase after "
          f"a warm-up; {args.clients} load-generator processes on the same machine; "
          f"concurrency rekor {args.rekor_concurrency}, ca {args.ca_concurrency}, "
          f"tsa {args.tsa_concurrency}", flush=True)
    columns: dict[int, dict[str, Result] | None] = {}
    issuer = Issuer()
    try:
        with tempfile.TemporaryDirectory(prefix="keyless-stack-bench-kek-") as tmp:
            for run, workers in enumerate(args.workers):
                if workers != 1 and not has_workers:
                    print(f"workers {workers}: skipped, this keyless serve has no --workers")
                    columns[workers] = None
                    continue
                columns[workers] = bench_stack(workers, args, issuer, Path(tmp) / "kek",
                                               has_workers, run)
    finally:
        issuer.close()
    print()
    print(table(columns, args.services))
    done = {w: r for w, r in columns.items() if r}
    if 1 in done and 2 in done and "rekor" in args.services:
        ratio = done[2]["rekor"].rate / done[1]["rekor"].rate if done[1]["rekor"].rate else 0
        print(f"\nRekor v2 workers 2 / workers 1: {ratio:.2f}x (target ≥ 1.6x)")
    print(f"\n{os.cpu_count()} cores; load average at the end {load_average()}; "
          f"CPU = server CPU per acknowledged request (serve process tree)")
    errors = sum(r.errors for results in done.values() for r in results.values())
    if errors:
        sys.exit(f"{errors:,} errors")


if __name__ == "__main__":
    main()
