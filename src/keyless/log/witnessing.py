"""The log asks witnesses to cosign its checkpoints (C2SP tlog-witness, client side).

:class:`Witnessing` is the engine's checkpoint-publishing hook (:class:`CheckpointPublisher`):
after the engine commits a new signed checkpoint it calls :meth:`Witnessing.publish`, which sends
``add-checkpoint`` to every configured witness in parallel and returns the note with the valid
cosignatures appended. Without ``quorum`` valid cosignatures the checkpoint is not published
(:class:`keyless.errors.Unavailable`: writes get 503 + Retry-After and the last witnessed
checkpoint stays served) unless ``fail_open`` is set.

Per witness and log it remembers the size the witness last cosigned. It starts unknown (sent as
``old 0``); a 409 with ``Content-Type: text/x.tlog.size`` tells the witness's size, and the
request is sent again with a fresh consistency proof from that size (at most a few times). A 409
without that media type, a 422, or a witness ahead of the log is a refusal: the witness saw a
different tree (a fork, or this log was restored from a backup) and is counted as failed.

A witness ahead of the checkpoint offered, whose size the log's own committed tree does reach, is
not a refusal: another process serving the same log (``keyless serve --workers N``) published a
newer checkpoint first. :meth:`Witnessing.publish` then raises :class:`CheckpointSuperseded`, and
the engine waits (at most ``settle`` seconds, one round of witness requests) for that larger
checkpoint, which covers the batch too, to be stored by the process publishing it.

The HTTP transport is injected (``post``), so this module stays free of any HTTP library.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from keyless.errors import NotFound, Unavailable, VerificationError
from keyless.formats.cosignature import verifier_for_vkey
from keyless.formats.note import MalformedNoteError, NoteSignature, SignedNote
from keyless.formats.note_keys import verify_note
from keyless.formats.vkey import VerifierKey
from keyless.storage.model import LogHead

_log = logging.getLogger(__name__)

#: ``post(url, body, timeout) -> (status, content type, body)``; raises OSError-like errors
PostFn = Callable[[str, bytes, float], Awaitable[tuple[int, str, bytes]]]
#: ``consistency(first, second) -> proof`` from the log's own tiles
ProveFn = Callable[[int, int], Awaitable[Sequence[bytes]]]
SIZE_MEDIA_TYPE = "text/x.tlog.size"
_MAX_RESYNC = 3
_MAX_RESPONSE = 64 * 1024


class CheckpointPublisher(Protocol):
    """The engine's hook: turns a committed head into the checkpoint that may be published."""

    async def publish(self, log: str, head: LogHead, consistency: ProveFn) -> bytes: ...

    async def last_published(self, log: str) -> bytes | None: ...


class PublishedStore(Protocol):
    """Where the last published checkpoint of each log is remembered across restarts."""

    async def load(self, log: str) -> bytes | None: ...

    async def save(self, log: str, note: bytes) -> None: ...


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness the log asks: its submission prefix and cosigning key."""

    url: str
    vkey: VerifierKey

    @property
    def name(self) -> str:
        return self.vkey.name


@dataclass
class WitnessState:
    """What the log knows of one witness (shown in ``/metrics``)."""

    sizes: dict[str, int] = field(default_factory=dict)  # per log: size it cosigned
    successes: int = 0
    failures: int = 0
    refusals: int = 0  # 422 / root mismatch / witness ahead: it saw another tree
    last_error: str = ""
    last_success: float = 0.0
    up: bool = False


class WitnessRefused(VerificationError):
    """The witness refused for a reason retrying does not fix (fork, bad proof)."""


class _WitnessAhead(Exception):
    """The witness cosigned a larger checkpoint of this very tree than the one offered."""

    def __init__(self, size: int) -> None:
        super().__init__(f"witness is at size {size}")
        self.size = size


class CheckpointSuperseded(Unavailable):
    """A witness has already cosigned a larger checkpoint of this log (published by another
    process of the same log): offer a newer one instead of this, which is not published."""

    def __init__(self, log: str, offered: int, size: int, settle: float) -> None:
        super().__init__(
            f"checkpoint {offered} of {log} is superseded: a witness cosigned size {size}",
            retry_after=1.0,
        )
        self.size = size
        #: seconds the process that publishes the larger checkpoint may need to store it
        self.settle = settle


class Witnessing:
    """Collects cosignatures from ``witnesses``; ``quorum`` of them are needed to publish."""

    def __init__(
        self,
        witnesses: Sequence[WitnessEndpoint],
        *,
        quorum: int,
        timeout: float,
        fail_open: bool,
        post: PostFn,
        published: PublishedStore | None = None,
        clock: Callable[[], float] = time.time,
        interval: float = 0.0,
    ) -> None:
        if not 0 <= quorum <= len(witnesses):
            raise ValueError("quorum must be between 0 and the number of witnesses")
        self.witnesses = list(witnesses)
        self.quorum = quorum
        self.timeout = timeout
        self.fail_open = fail_open
        self._post = post
        self._published = published
        self._clock = clock
        #: at least this many seconds between two rounds of requests (witnesses rate-limit each
        #: log); writes arriving meanwhile wait and are covered by the next, larger batch
        self.interval = interval
        self._last_round = -float("inf")
        self._verifiers = {w.name: verifier_for_vkey(w.vkey) for w in witnesses}
        self.state = {w.name: WitnessState() for w in witnesses}
        self.withheld = 0  # checkpoints not published for lack of a quorum
        self.witnessed_sizes: dict[str, int] = {}

    async def last_published(self, log: str) -> bytes | None:
        return None if self._published is None else await self._published.load(log)

    async def publish(self, log: str, head: LogHead, consistency: ProveFn) -> bytes:
        """The head's checkpoint with the witnesses' cosignatures, or Unavailable."""
        note = SignedNote.parse(head.checkpoint)
        wait = self._last_round + self.interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_round = time.monotonic()
        ahead: list[int] = []
        asks = [
            self._ask(w, log, note, head, consistency=consistency, ahead=ahead)
            for w in self.witnesses
        ]
        results = await asyncio.gather(*asks)
        lines = [line for found in results for line in found]
        agreed = sum(1 for found in results if found)
        if agreed < self.quorum and ahead:
            # the other process's round: its interval, the witnesses' answers, storing the note
            settle = self.interval + self.timeout + 1.0
            raise CheckpointSuperseded(log, head.size, max(ahead), settle)
        if agreed < self.quorum:
            self.withheld += 1
            failed = ", ".join(
                f"{w.name} ({self.state[w.name].last_error or 'no answer'})"
                for w, found in zip(self.witnesses, results, strict=True) if not found
            )
            message = (
                f"checkpoint {head.size} of {log} has {agreed} of the {self.quorum} witness "
                f"cosignatures it needs; failing: {failed}"
            )
            if not self.fail_open:
                _log.warning("%s; not published", message)
                raise Unavailable(message, retry_after=max(1.0, self.timeout))
            _log.warning("%s; published anyway (fail_open)", message)
        published = SignedNote(note.text, (*note.signatures, *lines)).to_bytes()
        self.witnessed_sizes[log] = head.size
        if self._published is not None:
            await self._published.save(log, published)
        return published

    async def _ask(
        self, witness: WitnessEndpoint, log: str, note: SignedNote, head: LogHead,
        *, consistency: ProveFn, ahead: list[int],
    ) -> list[NoteSignature]:
        state = self.state[witness.name]
        try:
            async with asyncio.timeout(self.timeout):
                lines = await self._exchange(
                    witness, state, log, note, head=head, consistency=consistency
                )
        except _WitnessAhead as exc:
            _log.info("witness %s: %s, beyond checkpoint %d of %s", witness.name, exc,
                      head.size, log)
            ahead.append(exc.size)
            return []
        except (TimeoutError, OSError, VerificationError, ValueError) as exc:
            state.failures += 1
            state.up = False
            state.last_error = str(exc) or type(exc).__name__
            if isinstance(exc, WitnessRefused):
                state.refusals += 1
            _log.warning("witness %s: %s", witness.name, state.last_error)
            return []
        state.successes += 1
        state.up = True
        state.last_error = ""
        state.last_success = self._clock()
        state.sizes[log] = head.size
        return lines

    async def _exchange(
        self, witness: WitnessEndpoint, state: WitnessState, log: str, note: SignedNote,
        *, head: LogHead, consistency: ProveFn,
    ) -> list[NoteSignature]:
        old = state.sizes.get(log, 0)
        url = witness.url.rstrip("/") + "/add-checkpoint"
        for _attempt in range(_MAX_RESYNC + 1):
            if old > head.size:
                await self._check_reached(log, old, head.size, consistency)
                raise _WitnessAhead(old)
            proof = await consistency(old, head.size) if 0 < old < head.size else []
            body = (
                f"old {old}\n".encode()
                + b"".join(_b64(h) + b"\n" for h in proof)
                + b"\n"
                + note.to_bytes()
            )
            status, content_type, answer = await self._post(url, body, self.timeout)
            if status == 200:
                return self._check(witness, note, answer)
            if status == 409 and content_type.split(";")[0].strip() == SIZE_MEDIA_TYPE:
                old = _parse_size(answer)
                state.sizes[log] = old
                continue
            reason = answer[:200].decode("utf-8", "replace").strip()
            if status in (409, 422):
                raise WitnessRefused(f"witness refused checkpoint {head.size} ({status}): {reason}")
            raise ValueError(f"witness answered {status}: {reason}")
        raise ValueError("witness kept changing its size")

    @staticmethod
    async def _check_reached(log: str, size: int, offered: int, consistency: ProveFn) -> None:
        """Refuse unless the log's committed tree has ``size`` entries: a witness that cosigned
        a size this log never reached saw another tree (a rollback or a fork)."""
        try:
            await consistency(offered, size)
        except NotFound:
            raise WitnessRefused(
                f"witness has cosigned size {size}, larger than {log}'s committed tree: "
                "the log was rolled back or forked"
            ) from None

    def _check(
        self, witness: WitnessEndpoint, note: SignedNote, answer: bytes
    ) -> list[NoteSignature]:
        """The cosignature lines of this witness's key that verify over the checkpoint."""
        if len(answer) > _MAX_RESPONSE:
            raise ValueError("witness answer is too large")
        try:
            text = answer.decode("utf-8")
            lines = [NoteSignature.from_line(li) for li in text.split("\n") if li]
        except (UnicodeDecodeError, MalformedNoteError) as exc:
            raise ValueError(f"witness answer is not signature lines: {exc}") from exc
        verifier = self._verifiers[witness.name]
        mine = [s for s in lines if (s.name, s.key_hint) == (verifier.name, verifier.key_hint)]
        if not mine:
            raise ValueError("witness answer has no cosignature of its configured key")
        return verify_note(SignedNote(note.text, tuple(mine)), [verifier])


def _b64(data: bytes) -> bytes:
    import base64

    return base64.b64encode(data)


def _parse_size(answer: bytes) -> int:
    text = answer.decode("ascii", "replace").strip()
    if not text.isdigit() or len(text) > 20 or (len(text) > 1 and text[0] == "0"):
        raise ValueError(f"witness sent a malformed size {text[:30]!r}")
    return int(text)
