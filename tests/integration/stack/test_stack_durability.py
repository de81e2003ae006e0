"""Nothing acknowledged is ever lost, across ``kill -9`` and restart (contracts.md §2, §5).

Real ``keyless serve`` processes take concurrent writes on every log-backed API — Rekor v2
(``POST <v2 base>/api/v2/log/entries``), Rekor v1 (``POST /api/v1/log/entries``) and the CA
(``POST /api/v2/signingCert`` with a password-grant token, which logs a precertificate to the CT
log) — while a poller records the checkpoints they publish. Mid-load the server is killed with
SIGKILL and restarted on the same data. Then, through the public HTTP read APIs only:

* every acknowledged entry is in its log at the index it was promised, proven by an inclusion
  proof against the restarted log's *signed* checkpoint (Rekor v2 and CT: recomputed from the
  static tiles; Rekor v1: ``GET /api/v1/log/entries?logIndex=``; CT also ``get-proof-by-hash``);
* every checkpoint seen before the crash (in acknowledgements or polled) is a prefix of the
  restarted tree (tiles, or the v1 consistency proof API): the log never forked or rolled back;
* ``keyless log fsck`` finds the crashed data clean, before the restart repairs anything;
* every request the kill cut off (outcome unknown to the client) can be resubmitted after the
  restart and is then acknowledged — as new, or as already logged (v2 200, v1 409 + Location,
  the CA's certificate for the same token and key): retries never break a client (§5);
* the entries acknowledged last are found by digest once the search indexer caught up.

Several cycles run on the embedded SQLite default, then on PostgreSQL with two processes sharing
one database, killing one, the other, then both; ``keyless log fsck`` also runs beside the live
writers in every cycle. Another test crashes PostgreSQL itself under load. The last tests cover
the data-directory lock: a second ``serve`` on the same SQLite data (by directory or by database
file) is refused whichever starts first, a lock left by a killed process never blocks the
restart, and waiting for a lock (PostgreSQL first start) gives up with a message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from stackutil import (
    KEYLESS,
    PASSWORD,
    USER,
    RunningStack,
    free_port,
    kill_tree,
    launch_stack,
    proc_stat,
    process_tree,
    wait_healthy,
    workers_of,
)

from keyless.errors import VerificationError
from keyless.formats.checkpoint import Checkpoint, RFC6962NoteVerifier
from keyless.formats.note import SignedNote
from keyless.formats.note_keys import NoteVerifier
from keyless.formats.tiles import tile_path
from keyless.merkle import root_from_leaf_hashes, verify_consistency, verify_inclusion

pytestmark = pytest.mark.integration

#: how long each cycle writes before the kill (the CA path is the slowest: scrypt + signing)
LOAD_SECONDS = 2.0
WRITERS = {"v2": 6, "v1": 4, "ca": 2}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


# ---- what the clients were promised ----------------------------------------------------------


@dataclass
class Ledger:
    """Every acknowledged write and every checkpoint seen, per log (``v2``, ``v1``, ``ct``)."""

    v2: list[dict[str, Any]] = field(default_factory=list)
    v1: list[dict[str, Any]] = field(default_factory=list)
    #: the artifact digest (hex) of each acknowledged Rekor entry, by API and log index
    digests: dict[tuple[str, int], str] = field(default_factory=dict)
    certs: list[list[x509.Certificate]] = field(default_factory=list)
    #: (tree size, root hash) of checkpoints seen, per log
    heads: dict[str, set[tuple[int, bytes]]] = field(
        default_factory=lambda: {"v2": set(), "v1": set(), "ct": set()}
    )
    #: answers that break the contract (a 500, a malformed success)
    errors: list[str] = field(default_factory=list)
    #: requests cut off by a kill (API, body): never acknowledged, so they may or may not be
    #: in the log; the client resubmits them after the restart
    cut_off: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    resubmitted: int = 0
    #: resubmissions answered "already in the log" (v2 200, v1 409)
    already_logged: int = 0
    #: 429/503 answers with Retry-After (not acknowledged; the writer moves on)
    pushed_back: int = 0

    def counts(self) -> str:
        return (f"acknowledged v2={len(self.v2)} v1={len(self.v1)} ca={len(self.certs)}, "
                f"cut off and resubmitted {self.resubmitted + len(self.cut_off)} "
                f"({self.already_logged} already logged)")


@dataclass
class Identity:
    """A CA-issued signing certificate and its key, used for the Rekor writes."""

    key: ec.EllipticCurvePrivateKey
    cert_der: bytes
    cert_pem: bytes


class Client:
    """One writer's view of one ``keyless serve`` process (its own address, the public names)."""

    def __init__(self, http: httpx.AsyncClient, stack: RunningStack) -> None:
        self.http = http
        self.url = stack.url
        self.public = stack.public_url or stack.url

    async def token(self) -> str:
        response = await self.http.post(
            f"{self.url}/oidc/token",
            data={"grant_type": "password", "client_id": "sigstore",
                  "scope": "openid email", "username": USER, "password": PASSWORD},
        )
        if response.status_code == 503 and "retry-after" in response.headers:
            # a sign-in reads the user's enrolled second factors: without the database it is
            # pushed back (fails closed) like a write
            raise TokenPushedBack(response.text)
        assert response.status_code == 200, response.text
        token: str = response.json()["id_token"]
        return token

    async def certificate_request(
        self, key: ec.EllipticCurvePrivateKey | None = None
    ) -> dict[str, Any]:
        """A ``POST /api/v2/signingCert`` body in the sigstore-js dialect (public key + proof)
        for ``key`` (default: a new one), with a new token (a retry resends the same body: same
        token, same key)."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        proof = key.sign(USER.encode(), ec.ECDSA(hashes.SHA256()))
        return {
            "credentials": {"oidcIdentityToken": await self.token()},
            "publicKeyRequest": {
                "publicKey": {"algorithm": "ECDSA", "content": pem.decode()},
                "proofOfPossession": _b64(proof),
            },
        }


def _chain(response: httpx.Response) -> list[x509.Certificate]:
    pems = response.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    return [x509.load_pem_x509_certificate(p.encode()) for p in pems]


async def _identity(client: Client) -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    body = await client.certificate_request(key)
    response = await client.http.post(f"{client.url}/api/v2/signingCert", json=body)
    assert response.status_code == 200, response.text
    leaf = _chain(response)[0]
    return Identity(key, leaf.public_bytes(serialization.Encoding.DER),
                    leaf.public_bytes(serialization.Encoding.PEM))


def _signed_digest(identity: Identity) -> tuple[bytes, bytes]:
    digest = hashlib.sha256(f"durability {uuid.uuid4()}".encode()).digest()
    return digest, identity.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def _v2_request(identity: Identity) -> dict[str, Any]:
    digest, signature = _signed_digest(identity)
    return {"hashedRekordRequestV002": {
        "digest": _b64(digest),
        "signature": {"content": _b64(signature), "verifier": {
            "x509Certificate": {"rawBytes": _b64(identity.cert_der)},
            "keyDetails": "PKIX_ECDSA_P256_SHA_256"}},
    }}


def _v1_request(identity: Identity) -> dict[str, Any]:
    digest, signature = _signed_digest(identity)
    return {"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": {
        "signature": {"content": _b64(signature),
                      "publicKey": {"content": _b64(identity.cert_pem)}},
        "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
    }}


# ---- the load --------------------------------------------------------------------------------

PATHS = {"v2": "/rekor/api/v2/log/entries", "v1": "/api/v1/log/entries",
         "ca": "/api/v2/signingCert"}


async def _request(api: str, client: Client, identity: Identity) -> dict[str, Any]:
    if api == "v2":
        return _v2_request(identity)
    if api == "v1":
        return _v1_request(identity)
    return await client.certificate_request()


async def _submit(ledger: Ledger, client: Client, api: str, body: dict[str, Any], *,
                  retry: bool = False) -> bool:
    """Send one write and record what was acknowledged; False on push-back (try again).

    A ``retry`` may find its entry already in the log: Rekor v2 then answers 200 with the
    existing entry, Rekor v1 409 with its ``Location`` (contracts.md §5), the CA the
    certificate of the precertificate already logged for this token and key.
    """
    response = await client.http.post(client.url + PATHS[api], json=body)
    status = response.status_code
    ledger.already_logged += retry and (api, status) in (("v2", 200), ("v1", 409))
    if api == "v2" and (status == 201 or (retry and status == 200)):
        entry = response.json()
        ledger.v2.append(entry)
        digest = base64.b64decode(body["hashedRekordRequestV002"]["digest"]).hex()
        ledger.digests["v2", int(entry["logIndex"])] = digest
    elif api == "v1" and (status == 201 or (retry and status == 409)):
        if status == 409:
            response = await client.http.get(client.url + response.headers["location"])
            assert response.status_code == 200, f"v1 Location of a 409: {response.text}"
        ledger.v1.append(response.json())
        (entry,) = ledger.v1[-1].values()
        ledger.digests["v1", int(entry["logIndex"])] = body["spec"]["data"]["hash"]["value"]
    elif api == "ca" and status == 200:
        ledger.certs.append(_chain(response))
    elif status in (429, 503) and "retry-after" in response.headers:
        ledger.pushed_back += 1
        return False
    else:
        ledger.errors.append(f"{api}{' retry' if retry else ''}: HTTP {status}: "
                             f"{response.text[:300]}")
    return True


class TokenPushedBack(Exception):
    """The token endpoint answered 503 + Retry-After (the database is away)."""


async def _write_loop(ledger: Ledger, client: Client, api: str, identity: Identity,
                      stop: asyncio.Event) -> None:
    """Write until ``stop``. A refused connection sent nothing; a request cut off by the kill
    has an unknown outcome and is kept for resubmission; anything unexpected is a finding."""
    while not stop.is_set():
        body: dict[str, Any] = {}
        try:
            body = await _request(api, client, identity)
            await _submit(ledger, client, api, body)
        except httpx.ConnectError:
            await asyncio.sleep(0.05)
        except TokenPushedBack:
            ledger.pushed_back += 1
            await asyncio.sleep(0.05)
        except httpx.TransportError:
            if body:
                ledger.cut_off.append((api, body))
            await asyncio.sleep(0)  # never a loop that starves the task that sets ``stop``
        except Exception as exc:  # a malformed answer is a finding, not a crash of the test
            ledger.errors.append(f"{api}: {type(exc).__name__}: {exc}")
            if len(ledger.errors) > 100:
                return  # reported by the checks; not a tight loop over a closed client
            await asyncio.sleep(0.05)


async def _resubmit(ledger: Ledger, stacks: Sequence[RunningStack]) -> None:
    """Resubmit every cut-off request, round robin over ``stacks``, as a client would."""
    pending, ledger.cut_off = ledger.cut_off, []
    async with httpx.AsyncClient(timeout=30) as http:
        clients = [Client(http, s) for s in stacks]
        for n, (api, body) in enumerate(pending):
            for _attempt in range(50):
                if await _submit(ledger, clients[n % len(clients)], api, body, retry=True):
                    break
                await asyncio.sleep(0.2)
            else:
                ledger.errors.append(f"{api} retry: still pushed back")
    ledger.resubmitted += len(pending)


async def _poll_heads(ledger: Ledger, client: Client, stop: asyncio.Event) -> None:
    """Record the checkpoints each log publishes while the writers run."""
    while not stop.is_set():
        try:
            for log, path in (("v2", "/rekor/checkpoint"), ("ct", "/ctlog/checkpoint")):
                response = await client.http.get(client.url + path)
                if response.status_code == 200:
                    cp = Checkpoint.from_text(SignedNote.parse(response.text).text)
                    ledger.heads[log].add((cp.size, cp.root_hash))
            response = await client.http.get(f"{client.url}/api/v1/log")
            if response.status_code == 200:
                info = response.json()
                ledger.heads["v1"].add((int(info["treeSize"]), bytes.fromhex(info["rootHash"])))
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)


async def _live_fsck(ledger: Ledger, target: str) -> None:
    """``keyless log fsck`` while the writers run: it must find nothing wrong (no false alarm
    about the batches committed while it reads)."""
    check = await asyncio.create_subprocess_exec(
        str(KEYLESS), "log", "fsck", target,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await check.communicate()
    if check.returncode != 0:
        ledger.errors.append(f"live fsck: {out.decode(errors='replace')[-1000:]}")


async def _load_and_kill(ledger: Ledger, stacks: Sequence[RunningStack],
                         victims: Sequence[RunningStack] | Callable[[], None],
                         identity: Identity, fsck_target: str) -> None:
    """Write through every stack for :data:`LOAD_SECONDS` (running ``keyless log fsck`` on
    ``fsck_target`` meanwhile), SIGKILL ``victims`` (whole, workers included; or call the
    given kill) mid-load, let the writers run into the dead sockets for a moment, then stop
    them."""
    before = len(ledger.v2) + len(ledger.v1) + len(ledger.certs)
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        clients = [Client(http, s) for s in stacks]
        writers = [_write_loop(ledger, c, api, identity, stop)
                   for c in clients for api, count in WRITERS.items() for _ in range(count)]
        tasks = [asyncio.ensure_future(w)
                 for w in (*writers, *(_poll_heads(ledger, c, stop) for c in clients))]
        started = time.monotonic()
        await asyncio.sleep(LOAD_SECONDS / 4)
        await _live_fsck(ledger, fsck_target)
        await asyncio.sleep(max(0.0, started + LOAD_SECONDS - time.monotonic()))
        if callable(victims):
            victims()
        else:
            for victim in victims:
                kill_tree(victim)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks)
    assert len(ledger.v2) + len(ledger.v1) + len(ledger.certs) > before, "no write acknowledged"


# ---- the checks ------------------------------------------------------------------------------


def _checked_head(note: str, verifier: NoteVerifier | RFC6962NoteVerifier) -> Checkpoint:
    signed = SignedNote.parse(note)
    verifier.verify(signed) if isinstance(verifier, NoteVerifier) else _verify_ct(signed, verifier)
    return Checkpoint.from_text(signed.text)


def _verify_ct(note: SignedNote, verifier: RFC6962NoteVerifier) -> None:
    mine = [s for s in note.signatures if s.key_hint == verifier.key_hint]
    assert mine and all(verifier.check(note.text, s.signature) for s in mine), "bad CT checkpoint"


@dataclass
class Verifiers:
    v2: NoteVerifier
    v1: NoteVerifier
    ct: RFC6962NoteVerifier

    @classmethod
    def of(cls, stack: RunningStack) -> Verifiers:
        root: Any = stack.client_trust_config()["trustedRoot"]
        public = stack.public_url or stack.url
        tlogs = {t["baseUrl"]: t for t in root["tlogs"]}

        def note(base: str) -> NoteVerifier:
            t = tlogs[base]
            return NoteVerifier.from_trusted_log(
                base, base64.b64decode(t["publicKey"]["rawBytes"]),
                base64.b64decode(t["logId"]["keyId"]))

        ct_key = serialization.load_der_public_key(
            base64.b64decode(root["ctlogs"][0]["publicKey"]["rawBytes"]))
        assert isinstance(ct_key, ec.EllipticCurvePublicKey)
        origin = public.split("://", 1)[1] + "/ctlog"
        return cls(note(f"{public}/rekor"), note(public), RFC6962NoteVerifier(origin, ct_key))


def _tile_leaves(http: httpx.Client, base: str, size: int) -> list[bytes]:
    """Every leaf hash of a tree of ``size`` from its level-0 tiles (C2SP tlog-tiles)."""
    leaves: list[bytes] = []
    for n in range((size + 255) // 256):
        width = min(256, size - n * 256)
        response = http.get(f"{base}/{tile_path(0, n, None if width == 256 else width)}")
        assert response.status_code == 200, f"{base} tile {n}: {response.status_code}"
        assert len(response.content) == 32 * width
        leaves += [response.content[i : i + 32] for i in range(0, len(response.content), 32)]
    return leaves


def _check_prefixes(log: str, leaves: list[bytes], head: Checkpoint,
                    seen: set[tuple[int, bytes]]) -> None:
    """The tree from the tiles has the signed root, and every earlier checkpoint is a prefix."""
    assert root_from_leaf_hashes(leaves) == head.root_hash, f"{log}: tiles disagree with root"
    for size, root in sorted(seen):
        assert size <= head.size, f"{log}: tree shrank from {size} to {head.size}"
        assert root_from_leaf_hashes(leaves[:size]) == root, f"{log}: fork at size {size}"


def _check_v2(http: httpx.Client, url: str, verifiers: Verifiers, ledger: Ledger) -> None:
    head = _checked_head(http.get(f"{url}/rekor/checkpoint").text, verifiers.v2)
    leaves = _tile_leaves(http, f"{url}/rekor", head.size)
    for entry in ledger.v2:
        index = int(entry["logIndex"])
        leaf = _leaf_hash(base64.b64decode(entry["canonicalizedBody"]))
        proof = entry["inclusionProof"]
        promised = _checked_head(proof["checkpoint"]["envelope"], verifiers.v2)
        verify_inclusion(leaf, index, promised.size,
                         [base64.b64decode(h) for h in proof["hashes"]], promised.root_hash)
        ledger.heads["v2"].add((promised.size, promised.root_hash))
        assert index < head.size and leaves[index] == leaf, f"v2 entry {index} lost"
    _check_prefixes("rekor v2", leaves, head, ledger.heads["v2"])
    for entry in ledger.v2[:: max(1, len(ledger.v2) // 10)]:  # the entry API, sampled
        index = int(entry["logIndex"])
        again = http.get(f"{url}/rekor/api/v2/log/entries/{index}").json()
        assert again["canonicalizedBody"] == entry["canonicalizedBody"]
        proof = again["inclusionProof"]
        later = _checked_head(proof["checkpoint"]["envelope"], verifiers.v2)
        verify_inclusion(leaves[index], index, later.size,
                         [base64.b64decode(h) for h in proof["hashes"]], later.root_hash)


def _check_v1(http: httpx.Client, url: str, verifiers: Verifiers, ledger: Ledger) -> None:
    info = http.get(f"{url}/api/v1/log").json()
    head = _checked_head(info["signedTreeHead"], verifiers.v1)
    assert (head.size, head.root_hash.hex()) == (int(info["treeSize"]), info["rootHash"])
    for acked in ledger.v1:
        (entry,) = acked.values()
        index = int(entry["logIndex"])
        leaf = _leaf_hash(base64.b64decode(entry["body"]))
        promised = entry["verification"]["inclusionProof"]
        verify_inclusion(leaf, index, int(promised["treeSize"]),
                         [bytes.fromhex(h) for h in promised["hashes"]],
                         bytes.fromhex(promised["rootHash"]))
        ledger.heads["v1"].add((int(promised["treeSize"]), bytes.fromhex(promised["rootHash"])))
        response = http.get(f"{url}/api/v1/log/entries", params={"logIndex": index})
        assert response.status_code == 200, f"v1 entry {index} lost: {response.text}"
        (now,) = response.json().values()
        assert now["body"] == entry["body"], f"v1 entry {index} changed"
        proof = now["verification"]["inclusionProof"]
        assert int(proof["treeSize"]) == head.size
        verify_inclusion(leaf, index, head.size, [bytes.fromhex(h) for h in proof["hashes"]],
                         head.root_hash)
    for size, root in sorted(ledger.heads["v1"]):
        assert size <= head.size, f"rekor v1: tree shrank from {size} to {head.size}"
        response = http.get(f"{url}/api/v1/log/proof",
                            params={"firstSize": size, "lastSize": head.size})
        assert response.status_code == 200, response.text
        verify_consistency(size, head.size, root, head.root_hash,
                           [bytes.fromhex(h) for h in response.json()["hashes"]])


def _precert_leaf(chain: list[x509.Certificate]) -> bytes:
    """The RFC 6962 §3.4 MerkleTreeLeaf of the precertificate behind a final certificate:
    the SCT's timestamp, SHA-256 of the issuer's SPKI and the TBS without the SCT list."""
    leaf, issuer = chain[0], chain[1]
    (sct,) = leaf.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps).value
    timestamp: int = (sct.timestamp - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
    spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    tbs: bytes = leaf.tbs_precertificate_bytes
    extensions: bytes = sct.extension_bytes
    return (b"\x00\x00" + timestamp.to_bytes(8, "big") + b"\x00\x01"
            + hashlib.sha256(spki).digest() + len(tbs).to_bytes(3, "big") + tbs
            + len(extensions).to_bytes(2, "big") + extensions)


def _check_ct(http: httpx.Client, url: str, verifiers: Verifiers, ledger: Ledger) -> None:
    head = _checked_head(http.get(f"{url}/ctlog/checkpoint").text, verifiers.ct)
    sth = http.get(f"{url}/ctlog/ct/v1/get-sth").json()
    assert (int(sth["tree_size"]), base64.b64decode(sth["sha256_root_hash"])) == (
        head.size, head.root_hash)
    leaves = _tile_leaves(http, f"{url}/ctlog", head.size)
    positions = {h: i for i, h in enumerate(leaves)}
    for chain in ledger.certs:
        leaf = _leaf_hash(_precert_leaf(chain))
        assert leaf in positions, (
            f"the precertificate of serial {chain[0].serial_number:x} is not in the CT log "
            f"of size {head.size}")
    for chain in ledger.certs[:: max(1, len(ledger.certs) // 10)]:  # the RFC 6962 API, sampled
        leaf = _leaf_hash(_precert_leaf(chain))
        response = http.get(f"{url}/ctlog/ct/v1/get-proof-by-hash",
                            params={"hash": _b64(leaf), "tree_size": head.size})
        assert response.status_code == 200, response.text
        proof = response.json()
        assert proof["leaf_index"] == positions[leaf]
        verify_inclusion(leaf, positions[leaf], head.size,
                         [base64.b64decode(h) for h in proof["audit_path"]], head.root_hash)
    _check_prefixes("ct", leaves, head, ledger.heads["ct"])


def _check_search(http: httpx.Client, url: str, ledger: Ledger, recent: int = 20) -> None:
    """The search index is derived data, written after the acknowledgement: the entries
    acknowledged last before each kill must be found by their digest once the restarted indexer
    has caught up (Rekor v1 ``index/retrieve``, v2 ``search``)."""

    def found(api: str, index: int) -> bool:
        query = f"sha256:{ledger.digests[api, index]}"
        if api == "v1":
            response = http.post(f"{url}/api/v1/index/retrieve", json={"hash": query})
            wanted = next(k for acked in ledger.v1 for k, e in acked.items()
                          if e["logIndex"] == index)
            return response.status_code == 200 and wanted in response.json()
        response = http.get(f"{url}/rekor/api/v2/search", params={"digest": query})
        return response.status_code == 200 and index in {
            int(e["logIndex"]) for e in response.json()["entries"]}

    latest = sorted(ledger.digests)
    wanted = [k for api in ("v1", "v2") for k in [k for k in latest if k[0] == api][-recent:]]
    deadline = time.monotonic() + 60
    while wanted:
        wanted = [(api, index) for api, index in wanted if not found(api, index)]
        assert not wanted or time.monotonic() < deadline, f"not found by digest: {wanted[:5]}"
        time.sleep(0.2 if wanted else 0)


def check_nothing_lost(stack: RunningStack, ledger: Ledger) -> None:
    """Every acknowledged write and every seen checkpoint, against ``stack``'s signed heads."""
    assert not ledger.errors, "\n".join(ledger.errors[:20])
    verifiers = Verifiers.of(stack)
    with httpx.Client(timeout=30) as http:
        _check_v2(http, stack.url, verifiers, ledger)
        _check_v1(http, stack.url, verifiers, ledger)
        _check_ct(http, stack.url, verifiers, ledger)
        _check_search(http, stack.url, ledger)


def check_the_checks(stack: RunningStack, ledger: Ledger) -> None:
    """The checks are not vacuous: a forged earlier head (a fork) and a promise for an entry
    that is not where it was promised are both caught, on every log."""
    verifiers = Verifiers.of(stack)
    checks = {"v2": _check_v2, "v1": _check_v1, "ct": _check_ct}
    with httpx.Client(timeout=30) as http:
        for log, check in checks.items():
            size, root = max(ledger.heads[log])
            forged = Ledger(heads={**ledger.heads, log: {(size - 1, root)}})
            with pytest.raises((AssertionError, VerificationError)):
                check(http, stack.url, verifiers, forged)
        moved = dict(ledger.v2[-1], logIndex=str(int(ledger.v2[-1]["logIndex"]) - 1))
        with pytest.raises((AssertionError, VerificationError)):
            _check_v2(http, stack.url, verifiers, Ledger(v2=[moved]))
        (uuid_, entry), = ledger.v1[-1].items()
        moved = {uuid_: {**entry, "logIndex": entry["logIndex"] - 1}}
        with pytest.raises((AssertionError, VerificationError)):
            _check_v1(http, stack.url, verifiers, Ledger(v1=[moved]))
        other = [ledger.certs[-1][0], ledger.certs[-1][0]]  # wrong issuer key hash
        with pytest.raises(AssertionError, match="not in the CT log"):
            _check_ct(http, stack.url, verifiers, Ledger(certs=[other]))


def fsck(target: str) -> None:
    result = subprocess.run([str(KEYLESS), "log", "fsck", target], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, f"fsck {target}:\n{result.stdout}{result.stderr}"
    assert "problem" not in result.stdout, result.stdout


def _restart(stack: RunningStack) -> RunningStack:
    again = launch_stack(stack.data_dir, *stack.extra_args, port=stack.port)
    again.public_url = stack.public_url
    return again


# ---- the tests -------------------------------------------------------------------------------


def test_kill_9_under_load_loses_nothing_on_sqlite(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stack = wait_healthy(launch_stack(data), 60)
    ledger = Ledger()
    try:
        identity = asyncio.run(_with_client(stack, _identity))
        for cycle in range(3):
            asyncio.run(_load_and_kill(ledger, [stack], [stack], identity, str(data)))
            fsck(str(data))  # the crashed state itself is consistent
            stack = wait_healthy(_restart(stack), 60)
            asyncio.run(_resubmit(ledger, [stack]))
            try:
                check_nothing_lost(stack, ledger)
            except AssertionError as exc:
                raise AssertionError(f"cycle {cycle} ({ledger.counts()}): {exc}") from exc
            print(f"sqlite cycle {cycle}: {ledger.counts()}")
        check_the_checks(stack, ledger)
    finally:
        assert stack.stop() in (0, -signal.SIGKILL), stack.output()
    fsck(str(data))
    assert min(len(ledger.v2), len(ledger.v1), len(ledger.certs)) > 0, ledger.counts()
    # the served folders hold no temporary file, and the crashes' ones were removed at restart
    assert not [p for p in (data / "logs").rglob("*.tmp") if p.is_file()], "temporaries left"
    assert ledger.resubmitted > 0, "no request was in flight at a kill: not a kill under load"


def _cpu_seconds(pid: int) -> float:
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_kill_9_of_one_worker_under_load_loses_nothing_and_it_is_replaced(
    tmp_path: Path,
) -> None:
    """``--workers 2`` on SQLite: both workers admit and sequence into the one log; a worker
    killed with SIGKILL mid-load loses nothing acknowledged, the supervisor starts a new one,
    and resubmissions are answered from the shared log whichever worker takes them."""
    data = tmp_path / "data"
    stack = wait_healthy(launch_stack(data, "--workers", "2"), 60)
    ledger = Ledger()
    try:
        workers = workers_of(stack)
        assert len(workers) == 2, (workers, process_tree(stack.process.pid))
        identity = asyncio.run(_with_client(stack, _identity))
        busy = {pid: _cpu_seconds(pid) for pid in workers}
        victim = workers[0]

        def kill_one_worker() -> None:
            for pid in workers:  # both took part before the kill
                assert _cpu_seconds(pid) > busy[pid] + 0.05, f"worker {pid} idle under load"
            os.kill(victim, signal.SIGKILL)

        asyncio.run(_load_and_kill(ledger, [stack], kill_one_worker, identity, str(data)))
        deadline = time.monotonic() + 60
        while len(set(workers_of(stack)) - {victim}) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the supervisor replaces the worker: wait for the new process
        assert len(set(workers_of(stack)) - {victim}) == 2, stack.output()
        asyncio.run(_resubmit(ledger, [stack]))
        check_nothing_lost(stack, ledger)
        assert "starting a new one" in stack.output()
    finally:
        assert stack.stop() == 0, stack.output()
    fsck(str(data))
    assert min(len(ledger.v2), len(ledger.v1), len(ledger.certs)) > 0, ledger.counts()


def test_kill_9_under_load_loses_nothing_on_postgres_with_two_processes(
    postgres_cluster: Any, tmp_path: Path
) -> None:
    database = postgres_cluster.create_database()
    port_a, port_b = free_port(), free_port()
    args = ("--database", database, "--public-url", f"http://localhost:{port_a}",
            "--kek-file", str(tmp_path / "kek"))
    a = launch_stack(tmp_path / "a" / "data", *args, port=port_a)
    b = launch_stack(tmp_path / "b" / "data", *args, port=port_b)
    b.public_url = a.url
    ledger = Ledger()
    try:
        wait_healthy(a, 60)
        wait_healthy(b, 60)
        identity = asyncio.run(_with_client(a, _identity))
        for cycle, victims in enumerate(("a", "b", "ab")):
            pair = {"a": a, "b": b}
            killed = [pair[v] for v in victims]
            asyncio.run(_load_and_kill(ledger, [a, b], killed, identity, database))
            if len(killed) == 2:
                fsck(database)  # nobody is left to repair anything
            restarted = {v: _restart(pair[v]) for v in victims}
            for stack in restarted.values():
                wait_healthy(stack, 60)
            a, b = restarted.get("a", a), restarted.get("b", b)
            asyncio.run(_resubmit(ledger, [b, a]))
            try:
                for stack in (a, b):  # one log, whichever process answers
                    check_nothing_lost(stack, ledger)
            except AssertionError as exc:
                raise AssertionError(
                    f"cycle {cycle}, killed {victims} ({ledger.counts()}): {exc}") from exc
            print(f"postgres cycle {cycle}, killed {victims}: {ledger.counts()}")
    finally:
        a.stop()
        b.stop()
    fsck(database)
    assert min(len(ledger.v2), len(ledger.v1), len(ledger.certs)) > 0, ledger.counts()
    assert ledger.resubmitted > 0, "no request was in flight at a kill: not a kill under load"


def _crash_restart(cluster: Any) -> None:
    """``pg_ctl restart -m immediate``: PostgreSQL dies without a shutdown checkpoint and
    recovers from its own WAL at start, as after a power cut of the database host."""
    cluster._run([cluster._pg_ctl, "-D", str(cluster.datadir), "-l", str(cluster.root / "log"),
                  "-m", "immediate", "-w", "restart"])


def test_a_postgres_crash_under_load_loses_nothing_and_serve_reconnects(
    tmp_path: Path,
) -> None:
    """The database, not keyless, crashes mid-load: writes in flight are answered 503 with
    Retry-After (never acknowledged, never a 500), the running ``serve`` reconnects by itself,
    and everything acknowledged before and after is there (its own cluster: the crash must not
    hit other tests)."""
    from conftest import require
    from pgcluster import PgCluster, pg_program

    require(pg_program("initdb") is not None, "PostgreSQL server (initdb)")
    cluster = PgCluster()
    try:
        database = cluster.create_database()
        stack = wait_healthy(launch_stack(tmp_path / "data", "--database", database,
                                          "--kek-file", str(tmp_path / "kek")), 60)
        ledger = Ledger()
        try:
            identity = asyncio.run(_with_client(stack, _identity))

            async def load() -> None:
                stop = asyncio.Event()
                async with httpx.AsyncClient(timeout=30) as http:
                    client = Client(http, stack)
                    tasks = [asyncio.ensure_future(_write_loop(ledger, client, api, identity, stop))
                             for api, count in WRITERS.items() for _ in range(count)]
                    await asyncio.sleep(LOAD_SECONDS / 2)
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(None, _crash_restart, cluster)
                    acknowledged = len(ledger.v2) + len(ledger.v1) + len(ledger.certs)
                    # serve reconnects after its back-off: wait for a write acknowledged after
                    # the crash (the event itself), however long a loaded machine takes
                    deadline = time.monotonic() + 120
                    while (len(ledger.v2) + len(ledger.v1) + len(ledger.certs) <= acknowledged
                           and time.monotonic() < deadline and not ledger.errors):
                        await asyncio.sleep(0.1)
                    stop.set()
                    await asyncio.gather(*tasks)
                after = len(ledger.v2) + len(ledger.v1) + len(ledger.certs)
                assert after > acknowledged, f"no write acknowledged after the crash: {after}"

            asyncio.run(load())
            asyncio.run(_resubmit(ledger, [stack]))
            check_nothing_lost(stack, ledger)
            assert ledger.pushed_back > 0, "no write met the outage: the crash was not under load"
        finally:
            assert stack.stop() == 0, stack.output()
        fsck(database)
    finally:
        cluster.stop()


async def _with_client(
    stack: RunningStack, fn: Callable[[Client], Awaitable[Identity]]
) -> Identity:
    async with httpx.AsyncClient(timeout=30) as http:
        return await fn(Client(http, stack))


def _serve(data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """A second ``keyless serve`` that is expected to refuse quickly."""
    return subprocess.run(
        [str(KEYLESS), "serve", "--data-dir", str(data), "--port", str(free_port()), *extra],
        capture_output=True, text=True, timeout=60, check=False)


def test_second_serve_on_the_same_sqlite_data_is_refused_and_a_killed_lock_is_not_stale(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    # order 1: a second process while the first is still initialising (first start)
    first = launch_stack(data)
    deadline = time.monotonic() + 30
    lock = data / "keyless.lock"
    while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.01)  # the owner's pid is written once it holds the lock
    early = _serve(data)
    first = wait_healthy(first, 60)
    assert early.returncode == 2 and "in use" in early.stderr, early.stderr
    assert "Traceback" not in early.stderr
    # order 2: a second process while the first serves, by data dir and by database file
    assert _serve(data).returncode == 2
    by_database = _serve(tmp_path / "other", "--database", f"sqlite:///{data / 'keyless.db'}")
    assert by_database.returncode == 2 and "in use" in by_database.stderr, by_database.stderr
    # the other way round: the database's owner has another data dir, then comes the process
    # whose default database it is; and a database named otherwise is locked by its own name
    x = tmp_path / "x"
    shared = tmp_path / "shared" / "logs.db"
    owners = [wait_healthy(launch_stack(tmp_path / "y", "--database", f"sqlite:///{x}/keyless.db"),
                           60),
              wait_healthy(launch_stack(tmp_path / "owner", "--database", f"sqlite:///{shared}"),
                           60)]
    try:
        default = _serve(x)
        assert default.returncode == 2 and "in use" in default.stderr, default.stderr
        again = _serve(tmp_path / "third", "--database", f"sqlite:///{shared}")
        assert again.returncode == 2 and f"database {shared}" in again.stderr, again.stderr
    finally:
        for owner in owners:
            assert owner.stop() == 0, owner.output()
    assert httpx.get(f"{first.url}/healthz", timeout=5).status_code == 200
    # a lock held by a process killed with SIGKILL (all of it, workers included) does not
    # block the restart (the supervisor alone: test_stack_workers.py)
    kill_tree(first)
    second = wait_healthy(launch_stack(data, port=first.port), 60)
    try:
        refused = _serve(data)
        assert refused.returncode == 2 and f"pid {second.process.pid}" in refused.stderr
    finally:
        assert second.stop() == 0, second.output()
    # and the first owner can come back after the second stopped
    third = wait_healthy(launch_stack(data, port=first.port), 60)
    assert third.stop() == 0, third.output()
    fsck(str(data))



def test_waiting_for_a_data_dir_lock_gives_up_with_a_message(tmp_path: Path) -> None:
    """A PostgreSQL ``serve`` waits for another's first-start initialisation of a shared data
    directory, but not forever: a lifetime owner (a SQLite ``serve``) turns it away."""
    from keyless.errors import ConfigError
    from keyless.server.datadir import DataDirLock

    owner = DataDirLock(tmp_path)
    owner.acquire()
    try:
        started = time.monotonic()
        with pytest.raises(ConfigError, match=f"in use by keyless serve \\(pid {os.getpid()}\\)"):
            DataDirLock(tmp_path).acquire(wait=True, timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 30  # waited, then gave up (machine loaded)
    finally:
        owner.release()
    waiter = DataDirLock(tmp_path)
    waiter.acquire(wait=True, timeout=0.3)  # free again: taken at once
    waiter.release()
