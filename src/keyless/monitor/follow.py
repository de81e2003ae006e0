"""Following one log: verify, prove append-only, read every new entry, report watched signers.

Rekor v2 logs are read from their tiles (below); Rekor v1 logs through their API, with the tree's
right edge kept in the state (:meth:`Follower._catch_up_v1`).

Per run, for a log whose last verified checkpoint (size ``m``, root ``r_m``) is in the state:

1. the stored note is verified again with the log's key (a hand-edited state is caught);
2. the log's checkpoint is fetched and its signature verified (and the witness policy, if any);
   a smaller size is a rollback, the same size with another root a fork;
3. the right edge of the tree of size ``m`` is read from the hash tiles and must hash to ``r_m``
   (so the tiles are those of the verified tree), then every new entry is read from the entry
   bundles, hashed and appended to it; the result must be the new root ``r_n``. That single
   check proves the new tree extends the old one *and* that the entries served are exactly the
   tree's leaves. When it fails, an RFC 9162 consistency proof built from the tiles tells a fork
   (no proof) from entry bundles that do not match the tiles;
4. with a witness policy whose witnesses have URLs, each witness's published checkpoint of the
   log must be consistent with the log's (split-view check, :meth:`Follower._split_view`);
5. only then are the matches reported, the checkpoint recorded durably, and a ``checkpoint``
   event emitted.

Any failed check is an :class:`Inconsistency`: an ``inconsistency`` event with its evidence saved
next to the state file; the state keeps the last good checkpoint.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import sys
from dataclasses import dataclass
from typing import Any

from keyless.errors import Error
from keyless.formats.checkpoint import Checkpoint, RFC6962NoteVerifier, open_checkpoint
from keyless.formats.note import MAX_NOTE_SIZE
from keyless.formats.note_keys import name_from_base_url
from keyless.formats.witnesspolicy import WitnessPolicy
from keyless.log.nodes import NodeReader
from keyless.merkle import CompactRange, consistency_proof, leaf_hash, verify_consistency
from keyless.monitor.events import EventSink, save_evidence
from keyless.monitor.rekorv1 import RekorV1Client
from keyless.monitor.state import MonitorState, Verified
from keyless.monitor.staticct import StaticCTClient
from keyless.monitor.tiles import BundleError, TileClient
from keyless.monitor.watch import Match, Watch
from keyless.trust.material import LogKey
from keyless.verify.tlog import verify_checkpoint

__all__ = ["Follower", "Inconsistency", "LogTarget"]

#: Leaves past any level this deep are never complete (keeps CompactRange from reporting nodes).
_NO_NODES = 64


@dataclass(frozen=True)
class LogTarget:
    """A log to follow: its URL, its trusted key, and how it is read (``tiles``: C2SP
    tlog-tiles, Rekor v2; ``rekor-v1``: the Rekor v1 API; ``static-ct``: a CT log's C2SP
    static-ct-api tiles)."""

    url: str
    key: LogKey
    kind: str = "tiles"


class Inconsistency(Exception):
    """The log (or the state about it) is not consistent; ``evidence`` is saved with the event."""

    def __init__(self, reason: str, evidence: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.evidence = evidence


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Follower:
    """One monitor run's logic for tiled logs (shared by ``--once`` and ``--interval``)."""

    def __init__(
        self,
        state: MonitorState,
        watch: Watch,
        sink: EventSink,
        *,
        policy: WitnessPolicy | None = None,
        from_now: bool = False,
    ) -> None:
        self.state = state
        self.watch = watch
        self.sink = sink
        self.policy = policy
        self.from_now = from_now
        self.entries_read = 0

    def run(self, target: LogTarget) -> bool:
        """Follow ``target`` up to its current checkpoint: True if consistent, False if an
        inconsistency was reported. Network trouble raises :class:`keyless.errors.Error`."""
        client = {"rekor-v1": RekorV1Client, "static-ct": StaticCTClient}.get(
            target.kind, TileClient
        )(target.url)
        try:
            self._follow(target, client)
        except Inconsistency as exc:
            path = save_evidence(self.state.evidence_dir, target.url, exc.reason, exc.evidence)
            self.sink.emit({"event": "inconsistency", "log": target.url, "reason": exc.reason,
                            "evidence": str(path)})
            return False
        finally:
            client.close()
        return True

    def _verify_note(self, note: str, target: LogTarget, what: str) -> Checkpoint:
        try:
            if target.kind == "static-ct":
                name = name_from_base_url(target.url)
                verifier = RFC6962NoteVerifier(name, target.key.key)
                return open_checkpoint(note, verifier, origin=name)
            return verify_checkpoint(note, target.key)
        except Error as exc:
            raise Inconsistency(f"{what}: {exc}", {"checkpoint": note}) from exc

    def _last(self, target: LogTarget) -> Verified | None:
        last = self.state.latest(target.url)
        if last is None:
            return None
        cp = self._verify_note(last.note, target, "the state's last checkpoint does not verify")
        if (cp.size, cp.root_hash) != (last.size, last.root):
            raise Inconsistency(
                "the state's last checkpoint was altered: its size or root differs from its note",
                {"checkpoint": last.note, "stored_size": last.size,
                 "stored_root": _b64(last.root)},
            )
        return last

    def _fetch_checkpoint(self, target: LogTarget, client: TileClient) -> tuple[str, Checkpoint]:
        raw = client.checkpoint()
        try:
            note = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Inconsistency("the log's checkpoint is not UTF-8",
                                {"checkpoint_b64": _b64(raw)}) from exc
        cp = self._verify_note(note, target, "the log's checkpoint does not verify")
        if self.policy is not None and target.kind == "tiles":  # Rekor v1 is not witnessed
            try:
                self.policy.verify(note)
            except Error as exc:
                raise Inconsistency(f"witness policy: {exc}", {"checkpoint": note}) from exc
        return note, cp

    def _follow(self, target: LogTarget, client: TileClient) -> None:
        last = self._last(target)
        note, cp = self._fetch_checkpoint(target, client)
        evidence = {"previous": last.note if last else None, "checkpoint": note}
        if last is not None:
            if cp.size < last.size:
                raise Inconsistency(
                    f"rollback: the log's tree size {cp.size} is smaller than the verified "
                    f"{last.size}", evidence)
            if cp.size == last.size:
                if cp.root_hash != last.root:
                    raise Inconsistency(
                        f"fork: two different roots for tree size {cp.size}", evidence)
                if target.kind == "tiles":  # nothing new here, but the witnesses may know more
                    self._split_view(target, client, cp, note)
                return
        elif self.from_now:
            self._record(target, cp, note, None, [])
            return
        if isinstance(client, RekorV1Client):
            matches, edge = self._catch_up_v1(client, last, cp, evidence)
            self._record(target, cp, note, last, matches, edge=b"".join(edge.hashes))
            return
        matches = self._catch_up(target, client, last, cp, evidence)
        if target.kind == "tiles":
            self._split_view(target, client, cp, note)
        self._record(target, cp, note, last, matches)

    def _catch_up(
        self,
        target: LogTarget,
        client: TileClient,
        last: Verified | None,
        cp: Checkpoint,
        evidence: dict[str, Any],
    ) -> list[tuple[int, Match]]:
        reader = NodeReader(client.tile, lambda: cp.size)
        start = last.size if last is not None else 0
        edge = CompactRange.from_getter(start, reader.get_hash)
        if last is not None and edge.root() != last.root:
            raise Inconsistency(
                f"fork: the log's tiles for tree size {start} do not hash to the verified root",
                evidence)
        matches: list[tuple[int, Match]] = []
        try:
            if isinstance(client, StaticCTClient):
                for first, leaves in client.windows(start, cp.size, client.data_tile):
                    edge.extend([leaf_hash(x.merkle_leaf) for x in leaves], min_level=_NO_NODES)
                    for offset, leaf in enumerate(leaves):
                        matches.extend((first + offset, m)
                                       for m in self.watch.certificate_matches(leaf.certificate))
                    self.entries_read += len(leaves)
            else:
                for first, entries in client.bundles(start, cp.size):
                    edge.extend([leaf_hash(e) for e in entries], min_level=_NO_NODES)
                    for offset, entry in enumerate(entries):
                        matches.extend((first + offset, m) for m in self.watch.matches(entry))
                    self.entries_read += len(entries)
        except BundleError as exc:
            raise Inconsistency(f"bad entry bundle: {exc}", evidence) from exc
        if edge.root() != cp.root_hash:
            raise Inconsistency(self._diagnose(reader, last, cp, start), evidence)
        return matches

    def _catch_up_v1(
        self,
        client: RekorV1Client,
        last: Verified | None,
        cp: Checkpoint,
        evidence: dict[str, Any],
    ) -> tuple[list[tuple[int, Match]], CompactRange]:
        """Rekor v1: the right edge kept in the state, extended by every new entry read through
        the API, must reach the new root; a consistency proof from the log names a fork. Before
        the first full read (``--from-now``) the tree is rebuilt from index 0, reporting only
        entries past the recorded checkpoint."""
        start, report_from, edge = 0, 0, CompactRange()
        if last is not None:
            report_from = last.size
            try:
                proof = client.consistency(last.size, cp.size) if last.size else []
                verify_consistency(last.size, cp.size, last.root, cp.root_hash, proof)
            except Error as exc:
                raise Inconsistency(
                    f"fork: the tree of size {cp.size} does not extend the verified tree of "
                    f"size {last.size} ({exc})", evidence) from exc
            if last.edge is not None:
                try:
                    hashes = [last.edge[i : i + 32] for i in range(0, len(last.edge), 32)]
                    edge = CompactRange(last.size, hashes)
                except Error:
                    edge = CompactRange()
                if edge.root() != last.root:
                    raise Inconsistency("the state's right edge of the verified tree was altered",
                                        evidence)
                start = last.size
        matches: list[tuple[int, Match]] = []
        for index, body in client.entries(start, cp.size):
            edge.extend([leaf_hash(body)], min_level=_NO_NODES)
            if index >= report_from:
                matches.extend((index, m) for m in self.watch.matches(body, prefilter=False))
            self.entries_read += 1
        if edge.root() != cp.root_hash:
            raise Inconsistency(
                f"the entries {start}..{cp.size - 1} do not hash to the checkpoint's root",
                evidence)
        return matches, edge

    def _split_view(
        self, target: LogTarget, client: TileClient, cp: Checkpoint, note: str
    ) -> None:
        """Compare with each policy witness's published checkpoint of this log (C2SP
        tlog-witness ``GET <prefix>/<hex sha256(origin)>/checkpoint``): same size, same root;
        otherwise the smaller tree must be consistent with the larger, by a proof from the log's
        tiles. A witness that cannot be read is skipped with a warning (an extra check)."""
        if self.policy is None:
            return
        path = hashlib.sha256(cp.origin.encode()).hexdigest() + "/checkpoint"
        for witness in self.policy.witnesses.values():
            if not witness.url:
                continue
            theirs = self._witness_checkpoint(witness.name, witness.url, path, target)
            if theirs is None:
                continue
            seen, their_note = theirs
            evidence = {"checkpoint": note, "witness": witness.name, "witness_checkpoint":
                        their_note}
            small, big = sorted(((cp.size, cp.root_hash), (seen.size, seen.root_hash)))
            try:
                reader = NodeReader(client.tile, functools.partial(int, big[0]))
                proof = consistency_proof(small[0], big[0], reader.get_hash) if small[0] else []
                verify_consistency(small[0], big[0], small[1], big[1], proof)
            except Error as exc:
                raise Inconsistency(
                    f"split view: witness {witness.name} saw tree size {seen.size} with another "
                    f"history than the log's size {cp.size} ({exc})", evidence) from exc

    def _witness_checkpoint(
        self, name: str, url: str, path: str, target: LogTarget
    ) -> tuple[Checkpoint, str] | None:
        client = TileClient(url)
        try:
            note = client.get(path, MAX_NOTE_SIZE).decode("utf-8")
            return verify_checkpoint(note, target.key), note
        except (Error, UnicodeDecodeError) as exc:
            print(f"warning: witness {name}: no usable checkpoint of {target.url} "
                  f"({' '.join(str(exc).split())[:200]})", file=sys.stderr)
            return None
        finally:
            client.close()

    @staticmethod
    def _diagnose(reader: NodeReader, last: Verified | None, cp: Checkpoint, start: int) -> str:
        if last is not None:
            try:
                proof = consistency_proof(last.size, cp.size, reader.get_hash)
                verify_consistency(last.size, cp.size, last.root, cp.root_hash, proof)
            except Error:
                return (f"fork: the tree of size {cp.size} does not extend the verified tree "
                        f"of size {last.size} (no consistency proof from the tiles)")
        return (f"the entries {start}..{cp.size - 1} do not hash to the checkpoint's root "
                f"(entry bundles differ from the tiles)")

    def _record(
        self,
        target: LogTarget,
        cp: Checkpoint,
        note: str,
        last: Verified | None,
        matches: list[tuple[int, Match]],
        *,
        edge: bytes | None = None,
    ) -> None:
        for index, match in matches:
            self.sink.emit({"event": "match", "log": target.url, "index": index,
                            "identity": match.identity, "issuer": match.issuer,
                            "digest": match.digest, "key_fingerprint": match.fingerprint})
        self.state.append(target.url, Verified(cp.size, cp.root_hash, note, edge))
        self.sink.emit({"event": "checkpoint", "log": target.url, "origin": cp.origin,
                        "size": cp.size, "root": _b64(cp.root_hash),
                        "previous_size": last.size if last is not None else None,
                        "scanned_from": None if last is None and self.from_now
                        else (last.size if last is not None else 0)})

