"""The witness (C2SP tlog-witness ``add-checkpoint``), without any HTTP framework.

:meth:`WitnessService.add_checkpoint` takes the request body::

    old <size>\\n
    <base64 consistency-proof hash>\\n     (0 to 63 lines)
    \\n
    <checkpoint signed note>

and either returns this witness's cosignature lines or raises :class:`WitnessRefusal` carrying
the status the spec gives:

=====  ===============================================================================
400    unparseable body, ``old`` larger than the checkpoint's size
403    no signature of a trusted key for the origin, or a trusted key's line fails
404    the origin is not a log this witness is configured for
409    ``old`` is not the size the witness last cosigned (body ``<size>\\n``,
       ``Content-Type: text/x.tlog.size``)
422    bad consistency proof, same size with a different root, non-empty proof from 0,
       size 0 with a root other than SHA-256("")
429    the log exceeded its request rate
=====  ===============================================================================

The checks and the store are one compare-and-swap per log (an asyncio lock per origin, and
:meth:`WitnessStore.advance` in one SQLite transaction), and the new checkpoint is durable before
the cosignature is returned. What is cosigned is the re-encoded checkpoint text, and the
published note carries only the log signatures that verified. A validly signed checkpoint that is
inconsistent with the cosigned state (fork, rollback) is kept as evidence.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from keyless.errors import ConfigError, Error, VerificationError
from keyless.formats.checkpoint import Checkpoint
from keyless.formats.cosignature import Cosigner, verifier_for_vkey
from keyless.formats.note import MalformedNoteError, NoteSignature, SignedNote
from keyless.formats.note_keys import SignatureVerifier, verify_note
from keyless.formats.vkey import SIG_ED25519, VerifierKey
from keyless.merkle import EMPTY_ROOT, verify_consistency
from keyless.witness.store import WitnessStore

__all__ = ["MAX_BODY", "MAX_PROOF_LINES", "LogConfig", "WitnessRefusal", "WitnessService"]

#: request-body cap: a checkpoint with 16+ signature lines, including a few ML-DSA ones
MAX_BODY = 64 * 1024
MAX_PROOF_LINES = 63
_OLD_RE = re.compile(r"old (0|[1-9][0-9]{0,19})\Z")


class WitnessRefusal(Error):
    """The witness does not cosign; ``status`` is the HTTP status the spec assigns."""

    def __init__(self, status: int, message: str, *, size: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.size = size  # 409: the size the witness has
        self.retry_after = retry_after


@dataclass(frozen=True)
class LogConfig:
    """A log this witness follows: its origin and the keys that sign its checkpoints."""

    origin: str
    vkeys: tuple[VerifierKey, ...]

    @classmethod
    def from_vkeys(cls, vkeys: Iterable[VerifierKey]) -> list[LogConfig]:
        """One entry per origin (= the vkey's name); several keys of one origin are merged."""
        by_origin: dict[str, list[VerifierKey]] = {}
        for vkey in vkeys:
            if vkey.sig_type != SIG_ED25519:
                raise WitnessConfigError(
                    f"log vkey {vkey.name!r}: only Ed25519 (type 0x01) log keys are supported"
                )
            by_origin.setdefault(vkey.name, []).append(vkey)
        return [cls(origin, tuple(keys)) for origin, keys in by_origin.items()]


class WitnessConfigError(ConfigError):
    """The witness configuration is wrong."""


@dataclass
class _Bucket:
    """A token bucket: ``rate`` requests per second, bursts of ``burst``."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """0 if a request may go now, else the seconds to wait."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class WitnessStats:
    """Counters for ``/metrics``: answers by origin and status."""

    answers: dict[tuple[str, int], int] = field(default_factory=dict)

    def count(self, origin: str, status: int) -> None:
        key = (origin, status)
        self.answers[key] = self.answers.get(key, 0) + 1


def origin_hash(origin: str) -> str:
    """Lowercase hex SHA-256 of the origin: the monitoring path ``<hash>/checkpoint``."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def parse_request(body: bytes) -> tuple[int, list[bytes], bytes]:
    """``(old size, proof hashes, checkpoint note)`` of an add-checkpoint body (400 if bad)."""
    if len(body) > MAX_BODY:
        raise WitnessRefusal(413, f"request body exceeds {MAX_BODY} bytes")
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise WitnessRefusal(400, "body has no blank line between the proof and the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError as exc:
        raise WitnessRefusal(400, "the old size and proof lines must be ASCII") from exc
    found = _OLD_RE.match(lines[0])
    if found is None:
        raise WitnessRefusal(400, "first line must be 'old <size>' (decimal, no leading zeros)")
    old = int(found.group(1))
    if old >= 1 << 63:
        raise WitnessRefusal(400, "old size is too large")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof: list[bytes] = []
    for line in lines[1:]:
        try:
            raw = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WitnessRefusal(400, "a consistency proof line is not base64") from exc
        if len(raw) != 32 or base64.b64encode(raw).decode() != line:
            raise WitnessRefusal(400, "a consistency proof line is not a canonical 32-byte hash")
        proof.append(raw)
    return old, proof, note


class WitnessService:
    """Cosigns checkpoints of the configured logs that extend what it cosigned before."""

    def __init__(
        self,
        store: WitnessStore,
        cosigners: Sequence[Cosigner],
        logs: Sequence[LogConfig],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rate: float = 5.0,
        burst: float = 50.0,
    ) -> None:
        if not cosigners:
            raise WitnessConfigError("a witness needs at least one key")
        names = {c.name for c in cosigners}
        if len(names) != 1:
            raise WitnessConfigError("all witness keys must carry the same name")
        self.name = next(iter(names))
        self.store = store
        self.cosigners = list(cosigners)
        self.logs = {log.origin: log for log in logs}
        if self.name in self.logs:
            raise WitnessConfigError("the witness name must not be the origin of a log")
        self._verifiers: dict[str, list[SignatureVerifier]] = {
            log.origin: [verifier_for_vkey(v) for v in log.vkeys] for log in logs
        }
        self._by_hash = {origin_hash(origin): origin for origin in self.logs}
        self._locks: dict[str, asyncio.Lock] = {origin: asyncio.Lock() for origin in self.logs}
        self._clock = clock
        self._monotonic = monotonic
        self._buckets = {
            origin: _Bucket(rate, burst, burst, monotonic()) for origin in self.logs
        }
        self.stats = WitnessStats()

    @property
    def vkeys(self) -> list[VerifierKey]:
        return [c.vkey for c in self.cosigners]

    async def add_checkpoint(self, body: bytes) -> bytes:
        """Check and cosign; the cosignature lines, or :class:`WitnessRefusal`."""
        origin = "-"
        try:
            old, proof, envelope = parse_request(body)
            try:
                note = SignedNote.parse(envelope)
                cp = Checkpoint.from_text(note.text)
            except MalformedNoteError as exc:
                raise WitnessRefusal(400, f"checkpoint: {exc}") from exc
            if cp.origin not in self.logs:
                raise WitnessRefusal(404, f"unknown log origin {cp.origin[:100]!r}")
            origin = cp.origin
            try:
                verified = verify_note(note, self._verifiers[origin])
            except VerificationError as exc:
                raise WitnessRefusal(403, f"log signature: {exc}") from exc
            wait = self._buckets[origin].take(self._monotonic())
            if wait > 0:
                raise WitnessRefusal(429, f"log {origin} is over its request rate",
                                     retry_after=wait)
            if old > cp.size:
                raise WitnessRefusal(400, f"old size {old} exceeds the checkpoint's {cp.size}")
            if cp.size == 0 and cp.root_hash != EMPTY_ROOT:
                raise WitnessRefusal(422, "an empty tree's root must be SHA-256 of nothing")
            async with self._locks[origin]:
                lines = await asyncio.to_thread(self._locked_add, cp, old, proof, verified, body)
            self.stats.count(origin, 200)
            return lines
        except WitnessRefusal as exc:
            self.stats.count(origin, exc.status)
            raise

    def _locked_add(
        self, cp: Checkpoint, old: int, proof: list[bytes], verified: list[NoteSignature],
        body: bytes,
    ) -> bytes:
        state = self.store.state(cp.origin)
        if old != state.size:
            raise WitnessRefusal(409, f"witness has size {state.size}", size=state.size)
        try:
            verify_consistency(old, cp.size, state.root or EMPTY_ROOT, cp.root_hash, proof)
        except VerificationError as exc:
            if old > 0:  # a log-signed tree that contradicts the cosigned one: a fork
                self.store.keep_evidence(cp.origin, str(exc), body)
            raise WitnessRefusal(422, f"consistency proof: {exc}") from exc
        text = cp.to_text()  # re-encoded: what is cosigned is exactly what was checked
        now = int(self._clock())
        cosignatures = [c.cosign(text, now) for c in self.cosigners if _can_sign(c, cp)]
        published = SignedNote(text, (*verified, *cosignatures)).to_bytes()
        moved = self.store.advance(cp.origin, old, cp.size, cp.root_hash, published)
        if moved is not None:
            raise WitnessRefusal(409, f"witness has size {moved}", size=moved)
        return b"".join(sig.to_line() for sig in cosignatures)

    def monitoring_checkpoint(self, hashed_origin: str) -> bytes | None:
        """The latest cosigned checkpoint of the log whose origin hashes to ``hashed_origin``."""
        origin = self._by_hash.get(hashed_origin)
        return None if origin is None else self.store.state(origin).note

    def sizes(self) -> dict[str, float]:
        """Latest cosigned size per origin (a ``/metrics`` gauge)."""
        return {origin: float(self.store.state(origin).size) for origin in self.logs}


def _can_sign(cosigner: Cosigner, cp: Checkpoint) -> bool:
    # ML-DSA-44 cosignatures do not cover extension lines (C2SP tlog-cosignature)
    return not (cp.extensions and cosigner.vkey.sig_type != 0x04)
