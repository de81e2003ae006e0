"""The transparency log's two Rekor personalities over one log engine each.

:class:`RekorV2Service` is rekor-tiles' write API (protocols.md §4) plus the C2SP tlog-tiles read
API; :class:`RekorV1Service` is Rekor v1's openapi (protocols.md §3). Both verify every proposed
entry (:mod:`keyless.services.tlog.kinds`), log its canonical body, answer only once a signed
checkpoint covers it (``TransparencyLog.add``), and feed the search index. HTTP lives in
:mod:`keyless.services.tlog.routes` (``routes(service)``), which imports this module and never the
other way round; this module is plain async Python so it can be tested and
reused (e.g. by the CLI's ``reindex``) without a server.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keyless import merkle
from keyless.errors import InvalidInput, NotFound
from keyless.formats.note_keys import ed25519_key_id
from keyless.keys import KeySigner, spki_der
from keyless.log.seam import AddResultLike, LogEngine
from keyless.services.tlog import kinds, search
from keyless.services.tlog.identities import TrustedIssuers
from keyless.services.tlog.indexer import SearchIndexer
from keyless.services.tlog.kinds.common import Proposed, load_pem_verifier
from keyless.services.tlog.limits import TlogLimits
from keyless.services.tlog.responses import (
    Proof,
    entry_id,
    parse_entry_id,
    v1_entry,
    v2_entry,
    v2_entry_json,
)
from keyless.storage.seam import KeyValue, SearchIndexStore


def checkpoint_head(note: bytes) -> tuple[int, bytes]:
    """Tree size and root hash a signed checkpoint commits to (C2SP tlog-checkpoint)."""
    try:
        lines = note.split(b"\n\n", 1)[0].split(b"\n")
        return int(lines[1]), base64.b64decode(lines[2], validate=True)
    except (IndexError, ValueError, binascii.Error) as exc:  # pragma: no cover - engine bug
        raise InvalidInput("the log's checkpoint is malformed") from exc


def kind_version(body: bytes) -> tuple[str, str]:
    """``(kind, apiVersion)`` of a canonical body (bundles' ``kindVersion``)."""
    import json

    try:
        value = json.loads(body)
        return str(value["kind"]), str(value["apiVersion"])
    except (ValueError, KeyError, TypeError) as exc:
        raise NotFound("this entry is the log's placeholder, not a Rekor entry") from exc


async def propose(
    validator: Callable[[dict[str, Any]], Proposed], request: dict[str, Any], *, offload: bool
) -> Proposed:
    """Run an entry validator, in a worker thread when ``offload``.

    Verification is CPU-bound: a large DSSE envelope (16 signatures x 16 keys over a
    multi-megabyte payload) costs over a second, and even a small body can hold 16 x 16 P-521
    checks (a quarter second), which on the event loop would stall every other request. The
    HTTP routes therefore offload all but small single-signature requests (hashedrekord: a
    thread hop costs about as much as its one check; ``kinds.single_check_v1/v2``);
    in-process callers may not offload at all.
    """
    if offload:
        return await asyncio.to_thread(validator, request)
    return validator(request)


@dataclass(frozen=True)
class SearchQuery:
    """A search over the index: all keys must match (``and``) or any (``or``)."""

    keys: tuple[str, ...]
    operator: str = "and"


#: Longest search value accepted (an email, URI or digest is far shorter).
MAX_SEARCH_VALUE = 2048


def check_search_value(name: str, value: str) -> str:
    """Refuse search values no index key can hold: control characters (NUL cannot even be
    stored in a PostgreSQL text column) and values over :data:`MAX_SEARCH_VALUE` characters."""
    if len(value) > MAX_SEARCH_VALUE:
        raise InvalidInput(f"{name} is {len(value)} characters; the limit is {MAX_SEARCH_VALUE}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidInput(f"{name} must not contain control characters")
    return value


def query_from_params(params: dict[str, str]) -> SearchQuery:
    """Build a query from keyless search parameters (see routes: ``GET …/search``)."""
    for name, value in params.items():
        check_search_value(name, value)
    keys: list[str] = []
    if params.get("digest"):
        keys.append(search.parse_digest_query(params["digest"]))
    if params.get("email"):
        keys.append(search.email_key(params["email"]))
    if params.get("uri"):
        keys.append(search.uri_key(params["uri"]))
    identity, issuer = params.get("identity"), params.get("issuer")
    if issuer and not identity:
        raise InvalidInput("issuer must be given together with identity")
    if identity:
        keys.append(search.identity_key(issuer, identity) if issuer else _identity_any(identity))
    if params.get("keyFingerprint"):
        fingerprint = params["keyFingerprint"].lower().removeprefix("sha256:")
        if len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint):
            raise InvalidInput("keyFingerprint must be sha256:<64 hex digits> of the DER SPKI")
        keys.append(f"key:sha256:{fingerprint}")
    operator = params.get("operator", "and")
    if operator not in ("and", "or"):
        raise InvalidInput("operator must be 'and' or 'or'")
    if not keys:
        raise InvalidInput(
            "search needs at least one of digest, email, uri, identity (+issuer), keyFingerprint"
        )
    return SearchQuery(tuple(keys), operator)


def _identity_any(identity: str) -> str:
    return search.email_key(identity) if "@" in identity and "://" not in identity else (
        search.uri_key(identity)
    )


class LogServiceBase:
    """What both personalities share: the engine, limits, search.

    ``trusted`` names the CAs whose certificates' identities the search index believes
    (:mod:`keyless.services.tlog.identities`); without it no identity is indexed.
    """

    def __init__(
        self,
        log: LogEngine,
        *,
        log_name: str,
        search_index: SearchIndexStore | None,
        kv: KeyValue | None,
        limits: TlogLimits,
        trusted: TrustedIssuers | None,
    ) -> None:
        self.log = log
        self.log_name = log_name
        self.limits = limits
        self.indexer = (
            SearchIndexer(log, search_index, log_name, kv=kv, trusted=trusted)
            if search_index is not None else None
        )

    async def start(self) -> None:
        """Start background indexing (and catch up on entries a crash left unindexed)."""
        if self.indexer is not None:
            await self.indexer.start()

    async def close(self) -> None:
        """Stop background work, writing what is pending."""
        if self.indexer is not None:
            await self.indexer.close()

    async def _log_proposed(self, proposed: Proposed) -> AddResultLike:
        """Log a verified entry (waiting for a covering checkpoint) and queue it for search."""
        self.limits.check_entry(len(proposed.body))
        result = await self.log.add(proposed.body)
        if not result.duplicate and self.indexer is not None:
            self.indexer.submit(result.index, proposed.body, proposed.parsed)
        return result

    async def require_entry(self, index: int) -> None:
        """404 for an index the log does not hold yet (checked before storage sees it, which
        keeps absurd indexes such as 2**63-1 away from 64-bit database columns)."""
        if index < 0:
            raise InvalidInput(f"log index {index} is negative")
        size, _ = await self.log.tree()
        if index >= size:
            raise NotFound(f"no entry at log index {index}: the log holds {size} entries")

    async def proof_at_head(self, index: int) -> Proof:
        """Inclusion proof of ``index`` in the tree of the latest checkpoint."""
        note = await self.log.checkpoint()
        size, root = checkpoint_head(note)
        if index >= size:
            raise NotFound(f"entry {index} is not yet covered by a checkpoint")
        hashes = await self.log.inclusion_proof(index, size)
        return Proof(index, size, root, list(hashes), note)

    async def search(
        self, query: SearchQuery, *, after: int = -1, limit: int = 100
    ) -> tuple[list[int], bool]:
        """Matching log indexes above ``after`` (at most ``limit``), and whether more exist."""
        if self.indexer is None:
            raise NotFound("search is not enabled on this log")
        limit = max(1, min(limit, self.limits.max_search_results))
        indexes = [i for i in await self.indexer.lookup(query.keys, operator=query.operator)
                   if i > after]
        return indexes[:limit], len(indexes) > limit


class _Created(NamedTuple):
    """A logged v2 entry: its index, whether it was there already, and :func:`v2_entry`'s
    arguments."""

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose
    duplicate: bool
    fields: dict[str, Any]


class RekorV2Service(LogServiceBase):
    """Rekor v2 (rekor-tiles) write API + tlog-tiles read API over an Ed25519-signed log.

    ``log_id`` is the trusted root's ``logId.keyId``: for an Ed25519 log the C2SP note key ID
    SHA-256(origin ‖ 0x0A ‖ 0x01 ‖ key), not SHA-256(SPKI) (interop.md §5 gotcha 9); see
    :func:`ed25519_log_id`.
    """

    def __init__(
        self,
        log: LogEngine,
        *,
        log_id: bytes,
        log_name: str = "rekor-v2",
        search_index: SearchIndexStore | None = None,
        kv: KeyValue | None = None,
        limits: TlogLimits | None = None,
        trusted: TrustedIssuers | None = None,
    ) -> None:
        super().__init__(
            log, log_name=log_name, search_index=search_index, kv=kv,
            limits=limits or TlogLimits(), trusted=trusted,
        )
        if len(log_id) != 32:
            raise InvalidInput("a Rekor v2 log ID is the full 32-byte note key ID")
        self.log_id = log_id

    async def create_entry(
        self, request: dict[str, Any], *, offload: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """Verify and log a ``CreateEntryRequest``; the ``TransparencyLogEntry`` and duplicate flag.

        A resubmitted entry is answered with the existing one (contracts.md §5: idempotent).
        ``offload`` verifies in a worker thread (see :func:`propose`).
        """
        entry = await self._create(request, offload=offload)
        return v2_entry(**entry.fields), entry.duplicate

    async def create_entry_json(
        self, request: dict[str, Any], *, offload: bool = False
    ) -> tuple[bytes, int, bool]:
        """:meth:`create_entry` answered as compact JSON (what the HTTP route sends), with the
        entry's log index and the duplicate flag."""
        entry = await self._create(request, offload=offload)
        return v2_entry_json(**entry.fields), entry.index, entry.duplicate

    async def _create(self, request: dict[str, Any], *, offload: bool) -> _Created:
        proposed = await propose(kinds.propose_v2, request, offload=offload)
        result = await self._log_proposed(proposed)
        proof = Proof(
            result.index, result.tree_size, result.root_hash,
            result.inclusion_proof, result.checkpoint,
        )
        fields = {
            "index": result.index, "log_id": self.log_id, "kind": proposed.kind,
            "version": proposed.api_version, "body": proposed.body, "proof": proof,
        }
        return _Created(result.index, bool(result.duplicate), fields)

    async def entry_at(self, index: int) -> dict[str, Any]:
        """The ``TransparencyLogEntry`` of an existing entry, proven at the latest checkpoint."""
        await self.require_entry(index)
        stored = await self.log.entry(index)
        body = stored.bundle_entry or stored.leaf
        kind, version = kind_version(body)
        return v2_entry(
            index=index, log_id=self.log_id, kind=kind, version=version, body=body,
            proof=await self.proof_at_head(index),
        )



def ed25519_log_id(origin: str, raw_public_key: bytes) -> bytes:
    """C2SP signed-note key ID of an Ed25519 key: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)."""
    return ed25519_key_id(origin, Ed25519PublicKey.from_public_bytes(raw_public_key))


def _lookup_hashes(entries: list[Any]) -> list[list[bytes]]:
    """For each proposed entry, the leaf hashes it may be logged under (no signature checked)."""
    out = []
    for item in entries:
        if not isinstance(item, dict):
            raise InvalidInput("entries must hold proposed entries")
        out.append([merkle.leaf_hash(body) for body in kinds.lookup_bodies_v1(item)])
    return out


class RekorV1Service(LogServiceBase):
    """Rekor v1 API over an ECDSA-signed log (entries carry SETs and integrated times).

    ``signer`` is the log key (ECDSA P-256): it signs SETs, its SHA-256(SPKI) is the log ID, and
    the same key signs the log's checkpoints through the engine's ``NoteSigner``. ``tree_id``
    names the shard in entry IDs and in the checkpoint origin ``"<host> - <treeID>"``.
    """

    def __init__(
        self,
        log: LogEngine,
        *,
        signer: KeySigner,
        tree_id: int,
        log_name: str = "rekor-v1",
        search_index: SearchIndexStore | None = None,
        kv: KeyValue | None = None,
        limits: TlogLimits | None = None,
        trusted: TrustedIssuers | None = None,
    ) -> None:
        super().__init__(
            log, log_name=log_name, search_index=search_index, kv=kv,
            limits=limits or TlogLimits(), trusted=trusted,
        )
        if not 0 <= tree_id < 2**63:
            raise InvalidInput("tree ID must be a non-negative 63-bit integer")
        self.signer = signer
        self.tree_id = tree_id
        self.log_id_hex = hashlib.sha256(spki_der(signer.public_key())).hexdigest()

    def public_key_pem(self) -> bytes:
        """The log key as PEM (``GET /api/v1/log/publicKey``)."""
        return self.signer.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _entry(self, *, index: int, leaf_hash: bytes, body: bytes, integrated_time: int,
               proof: Proof) -> dict[str, Any]:
        return v1_entry(
            tree_id=self.tree_id, leaf_hash=leaf_hash, body=body,
            integrated_time=integrated_time, log_id_hex=self.log_id_hex, index=index,
            proof=proof, signer=self.signer,
        )

    async def create_entry(
        self, proposed_entry: dict[str, Any], *, offload: bool = False
    ) -> tuple[str, dict[str, Any], bool]:
        """Verify and log a ``ProposedEntry``: ``(entryID, {entryID: LogEntry}, duplicate)``."""
        proposed = await propose(kinds.propose_v1, proposed_entry, offload=offload)
        result = await self._log_proposed(proposed)
        proof = Proof(
            result.index, result.tree_size, result.root_hash,
            list(result.inclusion_proof), result.checkpoint,
        )
        entry = self._entry(
            index=result.index, leaf_hash=result.leaf_hash, body=proposed.body,
            integrated_time=result.integrated_time, proof=proof,
        )
        return entry_id(self.tree_id, result.leaf_hash), entry, bool(result.duplicate)

    async def entry_by_index(self, index: int) -> dict[str, Any]:
        """``GET /api/v1/log/entries?logIndex=N``."""
        await self.require_entry(index)
        stored = await self.log.entry(index)
        return self._entry(
            index=index, leaf_hash=merkle.leaf_hash(stored.leaf),
            body=stored.bundle_entry or stored.leaf, integrated_time=stored.integrated_time,
            proof=await self.proof_at_head(index),
        )

    async def index_of_uuid(self, uuid: str) -> int:
        """The log index of a 64-hex UUID or 80-hex entryID."""
        index = await self.log.index_of(parse_entry_id(uuid, self.tree_id))
        if index is None:
            raise NotFound(f"no entry with UUID {uuid}")
        return index

    async def entry_by_uuid(self, uuid: str) -> dict[str, Any]:
        """``GET /api/v1/log/entries/{entryUUID}``."""
        return await self.entry_by_index(await self.index_of_uuid(uuid))

    async def retrieve(
        self, request: dict[str, Any], *, offload: bool = False
    ) -> list[dict[str, Any]]:
        """``POST /api/v1/log/entries/retrieve``: entries by UUIDs, indexes or proposed entries.

        A proposed entry is looked up by the leaf hash of its canonical body, computed without
        verifying any signature (:func:`kinds.lookup_bodies_v1`): a lookup logs nothing, so a
        bad signature only means "not found", and an anonymous request costs no verification.
        ``offload`` canonicalises in a worker thread (large requests).
        """
        fields = [f for f in ("entryUUIDs", "logIndexes", "entries") if request.get(f)]
        unknown = sorted(set(request) - {"entryUUIDs", "logIndexes", "entries"})
        if unknown:
            raise InvalidInput(f"unknown field(s) {', '.join(unknown)}")
        if not fields:
            raise InvalidInput("give entryUUIDs, logIndexes or entries (1 to 10 items)")
        for field in fields:
            items = request[field]
            if not isinstance(items, list) or not 1 <= len(items) <= self.limits.max_retrieve:
                raise InvalidInput(f"{field} must be a list of 1 to {self.limits.max_retrieve}")
        indexes: list[int] = []
        for field in fields:
            if field == "entries":
                candidates = (await asyncio.to_thread(_lookup_hashes, request[field]) if offload
                              else _lookup_hashes(request[field]))
                for hashes in candidates:
                    found = await self._first_index(hashes)
                    if found is not None:
                        indexes.append(found)
                continue
            for item in request[field]:
                found = await self._retrieve_one(field, item)
                if found is not None:
                    indexes.append(found)
        return [await self.entry_by_index(i) for i in dict.fromkeys(indexes)]

    async def _first_index(self, leaf_hashes: list[bytes]) -> int | None:
        for leaf_hash in leaf_hashes:
            index = await self.log.index_of(leaf_hash)
            if index is not None:
                return index
        return None

    async def _retrieve_one(self, field: str, item: Any) -> int | None:
        if field == "logIndexes":
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                raise InvalidInput("logIndexes must hold non-negative integers")
            size, _ = await self.log.tree()
            return item if item < size else None
        if not isinstance(item, str):
            raise InvalidInput("entryUUIDs must hold strings")
        try:
            return await self.index_of_uuid(item)
        except NotFound:
            return None

    async def log_info(self) -> dict[str, Any]:
        """``GET /api/v1/log``."""
        note = await self.log.checkpoint()
        size, root = checkpoint_head(note)
        return {
            "rootHash": root.hex(),
            "treeSize": size,
            "signedTreeHead": note.decode(),
            "treeID": str(self.tree_id),
            "inactiveShards": [],
        }

    async def consistency(self, first: int, last: int | None) -> dict[str, Any]:
        """``GET /api/v1/log/proof?firstSize=&lastSize=``: RFC 6962 consistency proof."""
        note = await self.log.checkpoint()
        size, root = checkpoint_head(note)
        last = size if last is None else last
        if first < 1 or last < first:
            raise InvalidInput("need 1 <= firstSize <= lastSize")
        if last > size:
            raise InvalidInput(f"lastSize {last} is larger than the tree size {size}")
        if last < size:
            # Root of an older tree: recompute it from the proof of its last leaf.
            leaf = merkle.leaf_hash((await self.log.entry(last - 1)).leaf)
            path = await self.log.inclusion_proof(last - 1, last)
            root = merkle.root_from_inclusion_proof(leaf, last - 1, last, list(path))
        hashes: Sequence[bytes] = (
            [] if first == last else await self.log.consistency_proof(first, last)
        )
        return {"rootHash": root.hex(), "hashes": [h.hex() for h in hashes]}

    async def index_retrieve(self, request: dict[str, Any]) -> list[str]:
        """``POST /api/v1/index/retrieve`` (Rekor's deprecated search): matching entryIDs."""
        allowed = {"hash", "email", "publicKey", "operator"}
        unknown = sorted(set(request) - allowed)
        if unknown:
            raise InvalidInput(f"unknown search field(s) {', '.join(unknown)}")
        keys: list[str] = []
        if request.get("hash"):
            if not isinstance(request["hash"], str):
                raise InvalidInput("hash must be a string such as sha256:<hex>")
            keys.append(search.parse_digest_query(check_search_value("hash", request["hash"])))
        if request.get("email"):
            if not isinstance(request["email"], str):
                raise InvalidInput("email must be a string")
            keys.append(search.email_key(check_search_value("email", request["email"])))
        if request.get("publicKey"):
            keys.append(self._public_key_query(request["publicKey"]))
        operator = request.get("operator", "and") or "and"
        if not isinstance(operator, str) or operator not in ("and", "or"):
            raise InvalidInput("operator must be 'and' or 'or'")
        if not keys:
            raise InvalidInput("search needs at least one of hash, email, publicKey")
        indexes, _ = await self.search(SearchQuery(tuple(keys), operator),
                                       limit=self.limits.max_search_results)
        ids: list[str] = []
        for index in indexes:
            leaf = (await self.log.entry(index)).leaf
            ids.append(entry_id(self.tree_id, merkle.leaf_hash(leaf)))
        return ids

    @staticmethod
    def _public_key_query(value: Any) -> str:
        if not isinstance(value, dict):
            raise InvalidInput("publicKey must be an object with format and content")
        if value.get("url"):
            raise InvalidInput("publicKey.url is not supported; send publicKey.content")
        fmt = value.get("format")
        if fmt not in ("x509", "pkix", None):
            raise InvalidInput("publicKey.format must be x509")
        content = value.get("content")
        if not isinstance(content, str):
            raise InvalidInput("publicKey.content must be base64 PEM")
        try:
            pem = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("publicKey.content is not valid base64") from exc
        return search.key_fingerprint_key(load_pem_verifier(pem, "publicKey.content").spki)
