"""The certificate transparency log: RFC 6962 semantics over the shared log engine.

Every accepted (pre)certificate becomes an RFC 6962 §3.4 ``MerkleTreeLeaf`` in the engine; the
entry bundle holds the static-ct-api ``TileLeaf`` (issuers by fingerprint, the issuer
certificates themselves kept once in ``storage.kv``). As C2SP static-ct-api "SCT Extension"
requires, the entry is built for the index the engine assigns (``add_at_index``): its
``TimestampedEntry`` — hashed into the tree, served by ``get-entries`` and in the data tiles —
and its SCT both carry ``leaf_index``. The SCT is signed over exactly the bytes RFC 6962 §3.2
prescribes once the engine has durably sequenced and integrated the entry, so every SCT handed
out is already covered by a signed tree head, and an RFC 6962 client that rebuilds the leaf from
the certificate and its SCT gets the leaf hash that ``get-proof-by-hash`` finds.

The CA calls :meth:`CTLogService.log_precertificate` in-process (no network hop, no chain
re-verification: the CA built the chain); HTTP submitters go through
:meth:`CTLogService.add_chain`, which verifies the chain up to one of :attr:`roots`
(RFC 6962 §4.1, §4.2).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from keyless.errors import InvalidInput, NotFound
from keyless.formats.sct import (
    ENTRY_TYPE_PRECERT,
    ENTRY_TYPE_X509,
    POISON_OID,
    SignedCertificateTimestamp,
    algorithms_for_key,
    leaf_index_extension,
    log_id_for,
    precert_signed_data,
    x509_signed_data,
)
from keyless.formats.tiles import decode_entry_bundle
from keyless.formats.x509profile import strip_extension
from keyless.keys import KeySigner, PublicKey, spki_der
from keyless.log.seam import LogEngine
from keyless.services.ctlog.chain import validate_chain
from keyless.services.ctlog.entries import (
    TimestampedEntry,
    extra_data,
    fingerprint,
    parse_tile_leaf,
    tile_leaf,
    tree_head_signed_data,
)
from keyless.storage.seam import NEVER, KeyValue

#: Longest chain accepted from an HTTP submitter.
MAX_CHAIN = 10
#: Most entries one ``get-entries`` call returns (RFC 6962 §4.6 lets the log truncate).
MAX_GET_ENTRIES = 256


def digest(data: bytes) -> bytes:
    """SHA-256, the only hash of RFC 6962 logs."""
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class LoggedEntry:
    """The outcome of a submission: the SCT, and whether the entry already existed.

    ``precertificate`` is the DER precertificate of the logged entry (the existing one when
    ``duplicate``), ``None`` for ordinary certificates.
    """

    sct: SignedCertificateTimestamp
    duplicate: bool
    precertificate: bytes | None


@dataclass(frozen=True)
class LoggedCertificate:
    """One CT entry as a reader sees it: the (pre)certificate and the leaf that was hashed."""

    index: int
    timestamp_ms: int
    precert: bool
    #: DER of the certificate, or of the precertificate for precert entries
    certificate: bytes
    leaf: bytes


@dataclass(frozen=True)
class SignedTreeHead:
    """RFC 6962 §3.5 STH: the signature is a TLS DigitallySigned over TreeHeadSignature."""

    tree_size: int
    timestamp_ms: int
    root_hash: bytes
    digitally_signed: bytes

    def to_json(self) -> dict[str, object]:
        """The ``get-sth`` answer (RFC 6962 §4.3)."""
        return {
            "tree_size": self.tree_size,
            "timestamp": self.timestamp_ms,
            "sha256_root_hash": base64.b64encode(self.root_hash).decode(),
            "tree_head_signature": base64.b64encode(self.digitally_signed).decode(),
        }


class CTLogService:
    """One CT log: its key, accepted roots, and the engine and key-value store it writes to."""

    def __init__(
        self,
        *,
        engine: LogEngine,
        kv: KeyValue,
        signer: KeySigner,
        roots: Sequence[x509.Certificate],
        origin: str,
        clock: Callable[[], float] = time.time,
        namespace: str = "ctlog",
    ) -> None:
        self._engine = engine
        self._kv = kv
        self._signer = signer
        self._roots = list(roots)
        self._root_ders = {r.public_bytes(serialization.Encoding.DER) for r in roots}
        self.origin = origin
        self._clock = clock
        self._ns = namespace
        self._public_key = signer.public_key()
        self.log_id = log_id_for(self._public_key)
        self._hash_alg, self._sig_alg = algorithms_for_key(self._public_key)
        #: DER of the issuers already stored (bytes hash once: the CA passes the same objects)
        self._known_issuers: set[bytes] = set()
        #: the DER chains of :meth:`log_precertificate` (the CA's chain is the same every time)
        self._chain_ders: dict[tuple[x509.Certificate, ...], tuple[bytes, ...]] = {}
        self._key_hashes: dict[bytes, bytes] = {}
        self._issuers: dict[bytes, bytes] = {}

    # -- what the trusted root needs -------------------------------------------------------
    @property
    def public_key(self) -> PublicKey:
        """The log's public key (trusted root ``ctlogs[].publicKey``)."""
        return self._public_key

    @property
    def roots(self) -> list[x509.Certificate]:
        """The roots a submitted chain must end in (``get-roots``)."""
        return list(self._roots)

    def add_root(self, root: x509.Certificate) -> None:
        """Accept chains ending in ``root`` as well (e.g. the CA's root, known after start)."""
        self._roots.append(root)
        self._root_ders.add(root.public_bytes(serialization.Encoding.DER))

    # -- submission ----------------------------------------------------------------------
    async def log_precertificate(
        self,
        precert: x509.Certificate,
        chain: Sequence[x509.Certificate],
        *,
        dedup_key: bytes | None = None,
    ) -> LoggedEntry:
        """Log a precertificate the CA itself built; ``chain`` is issuer first, root last.

        ``dedup_key`` (default: the leaf hash) makes the append idempotent: if an entry with this
        key exists, nothing is appended and the answer describes the *existing* entry
        (``duplicate=True``, its precertificate and an SCT over it). The CA keys entries by
        identity token to bind each token to one key (:mod:`keyless.services.ca.replay`).
        """
        key = tuple(chain)
        ders = self._chain_ders.get(key)
        if ders is None:
            ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in chain)
            if len(self._chain_ders) < 16:
                self._chain_ders[key] = ders
        return await self._submit(precert, ders, precert=True, dedup_key=dedup_key)

    async def add_chain(
        self, chain_der: Sequence[bytes], *, precert: bool
    ) -> SignedCertificateTimestamp:
        """RFC 6962 §4.1 ``add-chain`` / §4.2 ``add-pre-chain`` from an untrusted submitter.

        The chain must validate to one of :attr:`roots`, every certificate above the leaf a CA
        valid now (:func:`keyless.services.ctlog.chain.validate_chain`; a missing root is
        appended when the last certificate is directly issued by one); precertificates must carry
        the critical poison and ordinary certificates must not (RFC 6962 §3.1).
        """
        if not chain_der:
            raise InvalidInput("chain is empty; it must start with the (pre)certificate")
        if len(chain_der) > MAX_CHAIN:
            raise InvalidInput(f"chain has {len(chain_der)} certificates; the limit is {MAX_CHAIN}")
        certs = []
        for i, der in enumerate(chain_der):
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise InvalidInput(f"chain[{i}] is not a DER X.509 certificate: {exc}") from exc
        leaf = certs[0]
        poison = _poison(leaf)
        if precert and (poison is None or not poison.critical):
            raise InvalidInput("add-pre-chain needs a precertificate with the critical poison")
        if not precert and poison is not None:
            raise InvalidInput("add-chain got a precertificate; submit it with add-pre-chain")
        chain = validate_chain(
            certs, self._roots, now=dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        )
        ders = [c.public_bytes(serialization.Encoding.DER) for c in chain]
        # Resubmitting the same (pre)certificate returns an SCT for the existing entry.
        dedup = digest(b"keyless-ct-entry\0%d" % int(precert) + ders[0])
        logged = await self._submit(leaf, ders[1:], precert=precert, dedup_key=dedup)
        return logged.sct

    async def _submit(
        self, cert: x509.Certificate, chain: Sequence[bytes], *, precert: bool,
        dedup_key: bytes | None,
    ) -> LoggedEntry:  # fmt: skip
        await self._remember_issuers(chain)
        timestamp_ms = int(self._clock() * 1000)
        cert_der = cert.public_bytes(serialization.Encoding.DER)
        if precert:
            issuer_key_hash = self._issuer_key_hash(chain[0])
            tbs = strip_extension(cert.tbs_certificate_bytes, POISON_OID)
            entry = TimestampedEntry(timestamp_ms, ENTRY_TYPE_PRECERT, tbs, issuer_key_hash)
        else:
            entry = TimestampedEntry(timestamp_ms, ENTRY_TYPE_X509, cert_der)
        pre = cert_der if precert else None

        def at_index(index: int) -> tuple[bytes, bytes]:
            # static-ct-api: the logged TimestampedEntry carries the same leaf_index as the SCT
            placed = replace(entry, extensions=leaf_index_extension(index))
            return placed.merkle_tree_leaf(), tile_leaf(placed, pre, chain)

        if dedup_key is None:
            dedup_key = digest(b"keyless-ct-leaf\0" + entry.merkle_tree_leaf())
        # an SCT needs no inclusion proof: none is computed
        result = await self._engine.add_at_index(at_index, dedup_key=dedup_key, proof=False)
        if result.duplicate:
            return await self._existing(result.index)
        placed = replace(entry, extensions=leaf_index_extension(result.index))
        return LoggedEntry(self._sct_for(placed), False, pre)

    async def _existing(self, index: int) -> LoggedEntry:
        """An SCT for the stored entry ``index`` (same timestamp and extensions: same signed data).

        Entries logged before the log emitted ``leaf_index`` have empty extensions, and so do
        their SCTs: the SCT always matches the logged leaf.
        """
        stored = await self._engine.entry(index)
        entry = TimestampedEntry.from_merkle_tree_leaf(stored.leaf)
        pre = None
        if entry.entry_type == ENTRY_TYPE_PRECERT:
            pre = parse_tile_leaf(stored.bundle_entry).precertificate
        return LoggedEntry(self._sct_for(entry), True, pre)

    def _sct_for(self, entry: TimestampedEntry) -> SignedCertificateTimestamp:
        """Sign the SCT of a logged entry over exactly its RFC 6962 §3.2 fields."""
        template = SignedCertificateTimestamp(
            0, self.log_id, entry.timestamp_ms, entry.extensions, self._hash_alg, self._sig_alg,
            b"",
        )  # fmt: skip
        if entry.entry_type == ENTRY_TYPE_PRECERT:
            signed = precert_signed_data(template, entry.issuer_key_hash, entry.certificate)
        else:
            signed = x509_signed_data(template, entry.certificate)
        return replace(template, signature=self._signer.sign(signed))

    def _issuer_key_hash(self, issuer_der: bytes) -> bytes:
        """SHA-256 of the issuer's SPKI (RFC 6962 §3.2 ``issuer_key_hash``), cached per issuer."""
        cached = self._key_hashes.get(issuer_der)
        if cached is None:
            cached = digest(spki_der(x509.load_der_x509_certificate(issuer_der).public_key()))
            if len(self._key_hashes) < 64:
                self._key_hashes[issuer_der] = cached
        return cached

    async def _remember_issuers(self, chain: Sequence[bytes]) -> None:
        for der in chain:
            if der in self._known_issuers:
                continue
            await self._kv.put_if_absent(self._ns + "-issuer", fingerprint(der).hex(), der, NEVER)
            if len(self._known_issuers) < 256:  # beyond: stored again each time (idempotent)
                self._known_issuers.add(der)

    # -- reads -----------------------------------------------------------------------------
    async def signed_tree_head(self) -> SignedTreeHead:
        """A freshly signed STH over the engine's latest integrated tree (RFC 6962 §3.5)."""
        size, root = await self._engine.tree()
        timestamp_ms = int(self._clock() * 1000)
        signature = self._signer.sign(tree_head_signed_data(timestamp_ms, size, root))
        ds = bytes([self._hash_alg, self._sig_alg]) + len(signature).to_bytes(2, "big") + signature
        return SignedTreeHead(size, timestamp_ms, root, ds)

    async def checkpoint(self) -> bytes:
        """The static-ct-api checkpoint: the STH as a note with an RFC6962NoteSignature."""
        sth = await self.signed_tree_head()
        body = f"{self.origin}\n{sth.tree_size}\n{base64.b64encode(sth.root_hash).decode()}\n"
        key_id = digest(self.origin.encode() + b"\n\x05" + self.log_id)[:4]
        sig = key_id + sth.timestamp_ms.to_bytes(8, "big") + sth.digitally_signed
        line = f"\u2014 {self.origin} {base64.b64encode(sig).decode()}\n"
        return (body + "\n" + line).encode()

    async def consistency(self, first: int, second: int) -> list[bytes]:
        """RFC 6962 §4.4; ``first == second`` or ``first == 0`` gives an empty proof."""
        size, _ = await self._engine.tree()
        if not 0 <= first <= second or second > size:
            raise InvalidInput(
                f"need 0 <= first <= second <= tree size {size}; got first={first}, "
                f"second={second}"
            )
        if first in (0, second):
            return []
        return list(await self._engine.consistency_proof(first, second))

    async def proof_by_hash(self, leaf_hash: bytes, tree_size: int) -> tuple[int, list[bytes]]:
        """RFC 6962 §4.5: the index of the leaf with this hash and its audit path."""
        if len(leaf_hash) != 32:
            raise InvalidInput("hash must be a base64 SHA-256 leaf hash (32 bytes)")
        size, _ = await self._engine.tree()
        if not 0 < tree_size <= size:
            raise InvalidInput(f"tree_size must be between 1 and {size}")
        index = await self._engine.index_of(leaf_hash)
        if index is None or index >= tree_size:
            raise NotFound("no entry with this leaf hash in a tree of that size")
        return index, list(await self._engine.inclusion_proof(index, tree_size))

    async def entries(self, start: int, end: int) -> list[tuple[bytes, bytes]]:
        """RFC 6962 §4.6: ``(leaf_input, extra_data)`` for ``start..end`` (truncated)."""
        size, _ = await self._engine.tree()
        if start < 0 or end < start:
            raise InvalidInput(f"need 0 <= start <= end; got start={start}, end={end}")
        if start >= size:
            raise InvalidInput(f"start={start} is beyond the tree size {size}")
        end = min(end, size - 1, start + MAX_GET_ENTRIES - 1)
        out = []
        for stored in await self._engine.entries(start, end + 1):
            try:
                parsed = parse_tile_leaf(stored.bundle_entry)
            except InvalidInput:
                out.append((stored.leaf, b""))  # a seed entry of the engine
                continue
            chain = [await self.issuer(fp) for fp in parsed.chain_fingerprints]
            out.append((stored.leaf, extra_data(parsed, chain)))
        return out

    async def tree_size(self) -> int:
        """How many entries the log holds."""
        size, _ = await self._engine.tree()
        return size

    async def certificates(self, start: int, end: int) -> list[LoggedCertificate]:
        """The (pre)certificates of entries ``start..end`` (inclusive, truncated like
        :meth:`entries`); an entry that is no certificate (an engine seed) is skipped."""
        size = await self.tree_size()
        if start < 0 or end < start or start >= size:
            raise InvalidInput(f"need 0 <= start <= end < tree size {size}")
        end = min(end, size - 1, start + MAX_GET_ENTRIES - 1)
        out = []
        for offset, stored in enumerate(await self._engine.entries(start, end + 1)):
            try:
                parsed = parse_tile_leaf(stored.bundle_entry)
            except InvalidInput:
                continue
            precert = parsed.precertificate is not None
            der = parsed.precertificate if precert else parsed.entry.certificate
            assert der is not None
            out.append(LoggedCertificate(start + offset, parsed.entry.timestamp_ms, precert,
                                         der, stored.leaf))
        return out

    async def issuer(self, fp: bytes) -> bytes:
        """An issuer certificate by SHA-256 fingerprint (static-ct-api "Issuers")."""
        der = self._issuers.get(fp)
        if der is None:
            der = await self._kv.get(self._ns + "-issuer", fp.hex())
            if der is None:
                raise NotFound(f"no issuer with fingerprint {fp.hex()}")
            if len(self._issuers) < 64:  # content-addressed, so caching is always correct
                self._issuers[fp] = der
        return der

    async def tile(self, level: int, index: int, width: int | None) -> bytes:
        return await self._engine.tile(level, index, width)

    async def data_tile(self, index: int, width: int | None) -> bytes:
        """static-ct-api data tile: the concatenated TileLeaf entries (no length prefixes)."""
        return b"".join(decode_entry_bundle(await self._engine.entry_bundle(index, width)))


def _poison(cert: x509.Certificate) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(POISON_OID))
    except x509.ExtensionNotFound:
        return None



