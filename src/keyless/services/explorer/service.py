"""The explorer's reads over every log of the instance (framework-free; routes in :mod:`.routes`).

It uses the logs' own services as the composition root hands them over: the Rekor v1 and v2
shards' search (:meth:`LogServiceBase.search`, which believes identities only of certificates
chaining to this instance's CAs), entries and inclusion proofs, and the CT log's certificates
and proofs. The CT log keeps no search index, so an identity or key search looks at its newest
:attr:`ExplorerService.ct_scan` entries and says so on the page.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from keyless import merkle
from keyless.errors import InvalidInput, NotFound
from keyless.services.ctlog.service import CTLogService, LoggedCertificate
from keyless.services.explorer.decode import (
    CertificateInfo,
    EntrySummary,
    IssuedHere,
    certificate_info,
    key_fingerprint,
    subject_alternative_names,
    summarize,
)
from keyless.services.explorer.query import Query, parse_query
from keyless.services.tlog.service import (
    LogServiceBase,
    RekorV1Service,
    RekorV2Service,
    SearchQuery,
    checkpoint_head,
)

#: Rows on one result page.
PAGE_SIZE = 20
#: Most matches one search collects per log (the page says when there are more).
MAX_MATCHES = 1000
#: Highest page number accepted.
MAX_PAGE = math.ceil(MAX_MATCHES * 8 / PAGE_SIZE)
#: How many of the CT log's newest entries an identity or key search looks at.
CT_SCAN = 512
CT_SLUG = "ctlog"
#: work units (~ms of CPU) of one result row (entry read, certificate decoded and chain-checked)
ROW_COST = 2.0
#: work units of one CT entry looked at by a scan (certificate parsed)
CT_SCAN_COST = 0.1
_SLUG = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")


@dataclass(frozen=True)
class Row:
    """One matching entry on a result page."""

    log: str
    log_label: str
    index: int
    integrated: str
    identity: str
    issuer: str
    kind: str
    digest: str
    trusted: bool


@dataclass(frozen=True)
class ResultPage:
    query: Query
    rows: list[Row]
    page: int
    pages: int
    total: int
    truncated: bool
    notes: list[str] = field(default_factory=list)
    #: work units (~ms of CPU) the page cost, for the caller's per-client budget
    cost: float = 0.0


@dataclass(frozen=True)
class ProofView:
    """An inclusion proof and whether the server recomputed the checkpoint's root from it."""

    tree_size: int
    root_hash: str
    hashes: list[str]
    checkpoint: str
    verified: bool
    problem: str = ""


@dataclass(frozen=True)
class EntryView:
    log: str
    log_label: str
    index: int
    integrated: str
    kind: str
    leaf_hash: str
    proof: ProofView
    summary: EntrySummary | None = None
    certificate: CertificateInfo | None = None


@dataclass(frozen=True)
class ChainCertificate:
    subject: str
    issuer: str
    not_after: str
    sha256: str


@dataclass(frozen=True)
class LogStatus:
    log: str
    label: str
    base_url: str
    tree_size: int
    checkpoint: str
    age: str


@dataclass(frozen=True)
class StatusView:
    logs: list[LogStatus]
    ca_chains: list[tuple[str, list[ChainCertificate]]]
    tsa_chains: list[tuple[str, list[ChainCertificate]]]
    public_url: str


@dataclass(frozen=True)
class Download:
    filename: str
    media_type: str
    content: bytes


def _iso(seconds: float) -> str:
    if seconds <= 0:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=0).isoformat()


def _age(seconds: float) -> str:
    if seconds <= 0:
        return "unknown"
    delta = max(0, int(time.time() - seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if delta >= size:
            return f"{delta // size} {unit} ago"
    return f"{delta} s ago"


def _chain(ders: Sequence[bytes]) -> list[ChainCertificate]:
    out = []
    for der in ders:
        cert = x509.load_der_x509_certificate(der)
        out.append(ChainCertificate(
            cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
            cert.not_valid_after_utc.isoformat(), cert.fingerprint(hashes.SHA256()).hex(),
        ))
    return out


class ExplorerService:
    """Search, entry and status views over ``tlogs`` (``(base URL, service)``, Rekor v1 and
    v2 shards) and ``ctlog``.

    ``ca_chains``/``tsa_chains`` are ``(name, [DER, …])`` as published in the trusted root;
    certificates issued under ``ca_chains`` are marked as this instance's on the pages (and only
    they are listed by identity from the CT log).
    """

    def __init__(
        self,
        *,
        tlogs: Sequence[tuple[str, LogServiceBase]],
        ctlog: CTLogService | None,
        public_url: str,
        ca_chains: Sequence[tuple[str, Sequence[bytes]]] = (),
        tsa_chains: Sequence[tuple[str, Sequence[bytes]]] = (),
        ct_base_url: str = "",
        page_size: int = PAGE_SIZE,
        ct_scan: int = CT_SCAN,
    ) -> None:
        self._tlogs: dict[str, tuple[str, str, LogServiceBase]] = {}
        for base, service in tlogs:
            slug = re.sub(r"[^a-z0-9.-]", "-", service.log_name.lower())
            if not _SLUG.match(slug) or slug in self._tlogs or slug == CT_SLUG:
                raise ValueError(f"log name {service.log_name!r} cannot name an explorer page")
            self._tlogs[slug] = (_label(service, base), base, service)
        self._ctlog = ctlog
        self._ct_base = ct_base_url
        self._issued_here = IssuedHere([x509.load_der_x509_certificate(der)
                                        for _name, ders in ca_chains for der in ders])
        self.public_url = public_url
        self._ca_chains = [(name, list(ders)) for name, ders in ca_chains]
        self._tsa_chains = [(name, list(ders)) for name, ders in tsa_chains]
        self.page_size = page_size
        self.ct_scan = ct_scan

    # -- search ------------------------------------------------------------------------------
    async def search(self, text: str, page: int = 1) -> ResultPage:
        """The ``page``-th page of entries matching the search box's ``text``, in every log."""
        query = parse_query(text)
        if not 1 <= page <= MAX_PAGE:
            raise InvalidInput(f"page must be between 1 and {MAX_PAGE}")
        hits: list[tuple[str, int]] = []
        truncated = False
        notes: list[str] = []
        scanned = 0
        if query.index is not None:
            for slug, (_, _, service) in self._tlogs.items():
                size, _ = await service.log.tree()
                if query.index < size:
                    hits.append((slug, query.index))
            if self._ctlog is not None and query.index < await self._ctlog.tree_size():
                hits.append((CT_SLUG, query.index))
        else:
            for slug, (_, _, service) in self._tlogs.items():
                if service.indexer is None:
                    continue
                indexes, more = await service.search(SearchQuery(query.keys, "or"),
                                                     limit=MAX_MATCHES)
                hits += [(slug, i) for i in sorted(indexes, reverse=True)]
                truncated |= more
            if self._ctlog is not None and (query.identity or query.fingerprint):
                found, scanned = await self._scan_ct(query)
                hits += [(CT_SLUG, i) for i in found]
                notes.append(f"The CT log keeps no search index: its newest {scanned} entries "
                             "were searched.")
        pages = max(1, math.ceil(len(hits) / self.page_size))
        start = (page - 1) * self.page_size
        rows = [await self._row(slug, index)
                for slug, index in hits[start:start + self.page_size]]
        cost = len(rows) * ROW_COST + scanned * CT_SCAN_COST + len(hits) / 100
        return ResultPage(query, rows, page, pages, len(hits), truncated, notes, cost)

    async def _scan_ct(self, query: Query) -> tuple[list[int], int]:
        assert self._ctlog is not None
        size = await self._ctlog.tree_size()
        start = max(0, size - self.ct_scan)
        found: list[int] = []
        position = start
        while position < size:
            batch = await self._ctlog.certificates(position, size - 1)
            if not batch:
                break
            for logged in batch:
                if self._ct_matches(logged, query):
                    found.append(logged.index)
            position = batch[-1].index + 1
        return sorted(found, reverse=True), size - start

    def _ct_matches(self, logged: LoggedCertificate, query: Query) -> bool:
        try:
            cert = x509.load_der_x509_certificate(logged.certificate)
        except ValueError:
            return False
        if query.fingerprint is not None and key_fingerprint(cert) == query.fingerprint:
            return True
        if query.identity is None:
            return False
        info_sans = _sans_lower(cert)
        wanted = query.identity.lower() if "://" not in query.identity else query.identity
        return wanted in info_sans and self._issued_here(cert)

    async def _row(self, slug: str, index: int) -> Row:
        if slug == CT_SLUG:
            logged, cert = await self._ct_entry(index)
            return Row(CT_SLUG, "CT log", index, _iso(logged.timestamp_ms / 1000),
                       ", ".join(cert.subject_alternative_names), cert.oidc_issuer,
                       "precertificate" if logged.precert else "certificate", "", cert.trusted)
        label, _base, service = self._tlogs[slug]
        stored = await service.log.entry(index)
        summary = summarize(stored.bundle_entry or stored.leaf, self._issued_here)
        return Row(slug, label, index, _iso(stored.integrated_time), summary.identity,
                   summary.issuer, f"{summary.kind} {summary.version}".strip(), summary.digest,
                   summary.trusted)

    # -- one entry ---------------------------------------------------------------------------
    def _log(self, slug: str) -> tuple[str, str, LogServiceBase]:
        if slug not in self._tlogs:
            raise NotFound(f"no log named {slug!r} here")
        return self._tlogs[slug]

    async def _ct_entry(self, index: int) -> tuple[LoggedCertificate, CertificateInfo]:
        assert self._ctlog is not None
        size = await self._ctlog.tree_size()
        if not 0 <= index < size:
            raise NotFound(f"no entry at index {index}: the CT log holds {size} entries")
        batch = await self._ctlog.certificates(index, index)
        if not batch:
            raise NotFound(f"CT log entry {index} holds no certificate")
        cert = x509.load_der_x509_certificate(batch[0].certificate)
        return batch[0], certificate_info(cert, self._issued_here)

    async def entry(self, slug: str, index: int) -> EntryView:
        """One entry with its decoded content and its inclusion proof, verified here."""
        if slug == CT_SLUG and self._ctlog is not None:
            return await self._ct_entry_view(index)
        label, _base, service = self._log(slug)
        await service.require_entry(index)
        stored = await service.log.entry(index)
        leaf_hash = merkle.leaf_hash(stored.leaf)
        proof = await service.proof_at_head(index)
        view = _proof_view(leaf_hash, index, proof.tree_size, list(proof.hashes),
                           root=proof.root_hash, checkpoint=proof.checkpoint)
        summary = summarize(stored.bundle_entry or stored.leaf, self._issued_here)
        return EntryView(slug, label, index, _iso(stored.integrated_time),
                         f"{summary.kind} {summary.version}".strip(), leaf_hash.hex(), view,
                         summary=summary)

    async def _ct_entry_view(self, index: int) -> EntryView:
        assert self._ctlog is not None
        logged, info = await self._ct_entry(index)
        leaf_hash = merkle.leaf_hash(logged.leaf)
        sth = await self._ctlog.signed_tree_head()
        found, path = await self._ctlog.proof_by_hash(leaf_hash, sth.tree_size)
        checkpoint = await self._ctlog.checkpoint()
        view = _proof_view(leaf_hash, found, sth.tree_size, path, root=sth.root_hash,
                           checkpoint=checkpoint)
        kind = "precertificate" if logged.precert else "certificate"
        return EntryView(CT_SLUG, "CT log", index, _iso(logged.timestamp_ms / 1000), kind,
                         leaf_hash.hex(), view, certificate=info)

    async def download(self, slug: str, index: int) -> Download:
        """The entry as a Sigstore bundle fragment (``{"tlogEntries": [TransparencyLogEntry]}``,
        what a bundle's ``verificationMaterial`` holds), or a CT entry's certificate as PEM."""
        if slug == CT_SLUG and self._ctlog is not None:
            logged, _info = await self._ct_entry(index)
            pem = x509.load_der_x509_certificate(logged.certificate).public_bytes(
                serialization.Encoding.PEM)
            return Download(f"ctlog-{index}.pem", "application/x-pem-file", pem)
        service = self._log(slug)[2]
        entry: dict[str, Any]
        if isinstance(service, RekorV2Service):
            entry = await service.entry_at(index)
        elif isinstance(service, RekorV1Service):
            from keyless.sign.signer import entry_from_rekor_v1

            stored = await service.entry_by_index(index)
            try:
                entry = entry_from_rekor_v1(next(iter(stored.values()))).to_json()
            except (ValueError, KeyError) as exc:
                raise NotFound("this entry is the log's placeholder, not a Rekor entry") from exc
        else:  # pragma: no cover - the wiring hands over Rekor services only
            raise NotFound(f"log {slug} has no bundle entries")
        body = json.dumps({"tlogEntries": [entry]}, indent=2).encode() + b"\n"
        return Download(f"{slug}-{index}.sigstore-fragment.json", "application/json", body)

    # -- status ------------------------------------------------------------------------------
    async def status(self) -> StatusView:
        """Each log's tree size and latest checkpoint, and the CA and TSA chains."""
        logs: list[LogStatus] = []
        for slug, (label, base, service) in self._tlogs.items():
            note = await service.log.checkpoint()
            size, _root = checkpoint_head(note)
            logs.append(LogStatus(slug, label, base, size, note.decode("utf-8", "replace"),
                                  await self._checkpoint_age(service, note, size)))
        if self._ctlog is not None:
            sth = await self._ctlog.signed_tree_head()
            logs.append(LogStatus(CT_SLUG, "CT log", self._ct_base, sth.tree_size,
                                  (await self._ctlog.checkpoint()).decode(),
                                  "signed on request (RFC 6962 get-sth), now"))
        return StatusView(
            logs,
            [(name, _chain(ders)) for name, ders in self._ca_chains],
            [(name, _chain(ders)) for name, ders in self._tsa_chains],
            self.public_url,
        )

    @staticmethod
    async def _checkpoint_age(service: LogServiceBase, note: bytes, size: int) -> str:
        for line in note.split(b"\n\n", 1)[0].split(b"\n")[3:]:
            if line.startswith(b"Timestamp: ") and line[11:].isdigit():
                return f"signed {_age(int(line[11:]) / 1e9)}"
        if size == 0:
            return "empty"
        newest = await service.log.entry(size - 1)
        return f"newest entry integrated {_age(newest.integrated_time)}"


def _label(service: LogServiceBase, base: str) -> str:
    if isinstance(service, RekorV1Service):
        return "Rekor v1"
    suffix = base.rsplit("/", 1)[-1]
    return "Rekor v2" if suffix == "rekor" else f"Rekor v2 ({suffix})"


def _sans_lower(cert: x509.Certificate) -> set[str]:
    return {s.lower() if "://" not in s else s for s in subject_alternative_names(cert)}


def _proof_view(
    leaf_hash: bytes, index: int, size: int, path: list[bytes], *, root: bytes, checkpoint: bytes
) -> ProofView:
    """The proof, checked: the root recomputed from the leaf and its audit path must be the
    root the log's latest signed checkpoint commits to."""
    problem = ""
    try:
        cp_size, cp_root = checkpoint_head(checkpoint)
        if (cp_size, cp_root) != (size, root):
            problem = "the proof is not over the latest checkpoint's tree"
        else:
            merkle.verify_inclusion(leaf_hash, index, size, path, root)
    except (merkle.InclusionProofError, InvalidInput) as exc:
        problem = str(exc)
    return ProofView(size, root.hex(), [h.hex() for h in path],
                     checkpoint.decode("utf-8", "replace"), not problem, problem)
