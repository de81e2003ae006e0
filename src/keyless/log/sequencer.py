"""Sequencing and integration of one batch, inside the storage's exclusive session.

One call of :meth:`Sequencer.sequence` is one step of the Tessera/Sunlight pipeline
(architecture.md "Layers"): dedup against the durable index, assign indexes, extend the tree, build
the full and partial hash tiles and entry bundles, sign the new checkpoint (C2SP tlog-checkpoint)
and commit all of it with the checkpoint compare-and-swap. Entries are therefore *sequenced and
integrated in the same transaction*: an acknowledged entry is always covered by a durable signed
checkpoint, and a crash anywhere before the commit leaves nothing a reader could see.

Recovery on start is :meth:`Sequencer.sync`: the right edge is reloaded from the partial tiles the
committed head references (they were made durable no later than the head) and checked against the
head's root hash; a tile that is missing is rebuilt from the stored entries and written again
with the next batch. When another process sharing the storage (``keyless serve --workers N``) has
committed batches since this one's last, the edge instead follows its entries from the entry table
(at most 4,096) and is checked against the head's root hash the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from keyless.errors import StorageError
from keyless.formats.checkpoint import Checkpoint, sign_checkpoint
from keyless.formats.note_keys import NoteSigner
from keyless.formats.tiles import (
    HASH_SIZE,
    TILE_WIDTH,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    tile_levels,
    tile_path,
)
from keyless.log.edge import RightEdge
from keyless.log.nodes import NodeReader
from keyless.log.seam import EntryAtIndex
from keyless.merkle import EMPTY_ROOT, CompactRange, leaf_hash, root_from_leaf_hashes
from keyless.storage import SequencingSession
from keyless.storage.model import Batch, LogHead, NewEntry

#: most entries another process may have added for :meth:`Sequencer._catch_up` to follow them
_CATCH_UP_MAX = 4096


class Pending(NamedTuple):
    """An entry waiting to be sequenced (the engine hashes it before queueing).

    ``at_index`` is set for entries that name their own position (static-ct-api ``leaf_index``):
    the sequencer then replaces ``leaf`` and ``bundle_entry`` by ``at_index(index)`` once the
    index is assigned, inside the same transaction, and hashes that leaf into the tree.
    """

    leaf: bytes
    bundle_entry: bytes | None
    leaf_hash: bytes
    dedup_key: bytes
    at_index: EntryAtIndex | None = None


class Outcome(NamedTuple):
    """Where a pending entry ended up."""

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose
    integrated_time: int
    duplicate: bool
    leaf_hash: bytes  # of the leaf as sequenced (for a duplicate: as submitted)


class Sequencer:
    """Holds the right edge of one log between batches (valid while the head does not move)."""

    def __init__(
        self,
        *,
        origin: str,
        signer: NoteSigner,
        clock: Callable[[], float],
        extensions: Callable[[], Sequence[str]] | None = None,
        nodes: NodeReader,
    ) -> None:
        self._origin = origin
        self._signer = signer
        self._clock = clock
        self._extensions = extensions
        self.nodes = nodes
        self.edge: RightEdge | None = None
        self.head: LogHead | None = None
        self._repairs: dict[str, bytes] = {}

    def sign(self, size: int, root: bytes) -> bytes:
        """The signed note of a checkpoint (C2SP tlog-checkpoint + signed-note)."""
        extensions = tuple(self._extensions()) if self._extensions else ()
        return sign_checkpoint(Checkpoint(self._origin, size, root, extensions), self._signer)

    # recovery ---------------------------------------------------------------------------------
    def sync(self, session: SequencingSession) -> LogHead:
        """Bring the in-memory right edge to the committed head (creating an empty log if new)."""
        head = session.head()
        if head is None:
            head = LogHead(0, EMPTY_ROOT, self.sign(0, EMPTY_ROOT))
            session.commit(Batch(old_size=0, head=head, entries=(), tiles={}))
        if self.edge is None or self.head is None or self.edge.size != head.size:
            edge = self._catch_up(session, head)
            if edge is None:
                self.nodes.forget()
                edge = self._load(session, head)
            self.edge = edge
        self.head = head
        return head

    def _catch_up(self, session: SequencingSession, head: LogHead) -> RightEdge | None:
        """The edge moved to ``head`` by the entries another process committed since this one's
        last batch (``keyless serve --workers N``: the workers take turns), read from the entry
        table and checked against the head's root hash; None if it takes a full reload.

        Cheaper than :meth:`_load`, which reads and decodes the partial entry bundle (up to 255
        entries) and the partial tiles at every turn.
        """
        edge, known = self.edge, self.head
        if edge is None or known is None or self._repairs or known.size != edge.size:
            return None
        if not edge.size < head.size <= edge.size + _CATCH_UP_MAX:
            return None
        entries = session.entries(edge.size, head.size)
        if len(entries) != head.size - edge.size:
            return None
        self.edge = None  # extended in place: a failure below leaves no half-moved edge behind
        tiles, _obsolete = edge.extend(
            [leaf_hash(e.leaf) for e in entries], [e.bundle_entry for e in entries]
        )
        if edge.root() != head.root_hash:
            return None
        self._remember(tiles)
        return edge

    def _tile(self, session: SequencingSession, level: int, index: int, width: int) -> bytes:
        """Tile ``(level, index)`` of ``width`` hashes, rebuilt from below if lost."""
        full = width == TILE_WIDTH
        path = tile_path(level, index, None if full else width)
        data = session.read_tile(path)
        if data is None and not full:
            wider = session.read_tile(tile_path(level, index))
            data = wider[: HASH_SIZE * width] if wider else None
        if data is not None and len(data) >= HASH_SIZE * width:
            return data[: HASH_SIZE * width]
        if level == 0:
            hashes = session.leaf_hashes(index * TILE_WIDTH, index * TILE_WIDTH + width)
        else:
            hashes = []
            for j in range(width):
                child = self._tile(session, level - 1, index * TILE_WIDTH + j, TILE_WIDTH)
                hashes.append(
                    root_from_leaf_hashes(
                        [child[i : i + HASH_SIZE] for i in range(0, len(child), HASH_SIZE)]
                    )
                )
        if len(hashes) != width:
            raise StorageError(f"cannot rebuild {path}: entries are missing")
        data = b"".join(hashes)
        self._repairs[path] = data
        return data

    def _load(self, session: SequencingSession, head: LogHead) -> RightEdge:
        size = head.size
        partials: list[bytes] = []
        for level in range(tile_levels(size)):
            width = (size >> (8 * level)) % TILE_WIDTH
            index = size >> (8 * (level + 1))
            data = self._tile(session, level, index, width) if width else b""
            partials.append(data)
            if data:
                self.nodes.put_tile(level, index, data)
        bundle: list[bytes] = []
        width = size % TILE_WIDTH
        if width:
            raw = session.read_tile(entries_path(size // TILE_WIDTH, width))
            if raw is not None:
                bundle = decode_entry_bundle(raw)
            if len(bundle) != width:
                stored = session.entries(size - width, size)
                bundle = [e.bundle_entry for e in stored]
                if len(bundle) != width:
                    raise StorageError(f"cannot rebuild the partial entry bundle at size {size}")
                self._repairs[entries_path(size // TILE_WIDTH, width)] = encode_entry_bundle(bundle)

        def head_size() -> int:
            return size

        reader = NodeReader(session.read_tile, head_size)
        for level, data in enumerate(partials):
            if data:
                reader.put_tile(level, size >> (8 * (level + 1)), data)
        tree = CompactRange.from_getter(size, reader.get_hash)
        if tree.root() != head.root_hash:
            raise StorageError(
                f"the tiles at size {size} do not match the checkpoint's root hash; "
                "run `keyless log fsck`"
            )
        return RightEdge(tree, partials, bundle)

    # sequencing -------------------------------------------------------------------------------
    def sequence(
        self, session: SequencingSession, items: Sequence[Pending]
    ) -> tuple[list[Outcome], LogHead]:
        """Dedup, assign indexes, integrate and commit ``items``; return where each one is."""
        head = self.sync(session)
        found = session.find(list({item.dedup_key: None for item in items}))
        now = int(self._clock())
        size = head.size
        new: list[NewEntry] = []
        seen: dict[bytes, tuple[int, int]] = {}
        outcomes: list[Outcome] = []
        for item in items:
            existing = found.get(item.dedup_key) or seen.get(item.dedup_key)
            if existing is not None:
                h = item.leaf_hash
                if item.at_index is not None:  # the submitted entry, placed where it already is
                    h = leaf_hash(item.at_index(existing[0])[0])
                outcomes.append(Outcome(existing[0], existing[1], True, h))
                continue
            index = size + len(new)
            leaf, bundle, h = item.leaf, item.bundle_entry, item.leaf_hash
            if item.at_index is not None:
                leaf, bundle = item.at_index(index)
                h = leaf_hash(leaf)
            new.append(NewEntry(index, leaf, bundle, h, item.dedup_key, now))
            seen[item.dedup_key] = (index, now)
            outcomes.append(Outcome(index, now, False, h))
        if not new and not self._repairs:
            return outcomes, head
        edge = self.edge
        assert edge is not None
        try:
            tiles, obsolete = edge.extend(
                [e.leaf_hash for e in new],
                [e.bundle_entry if e.bundle_entry is not None else e.leaf for e in new],
            )
            new_size = edge.size
            root = edge.root()
            new_head = LogHead(
                new_size, root, self.sign(new_size, root) if new else head.checkpoint
            )
            if self._repairs:
                tiles = {**self._repairs, **tiles}
            session.commit(Batch(size, new_head, new, tiles, obsolete))
        except BaseException:
            self.edge = None  # the edge may hold the failed batch: reload on the next step
            self.nodes.forget()
            raise
        self._repairs.clear()
        self.head = new_head
        self._remember(tiles)
        return outcomes, new_head

    def _remember(self, tiles: dict[str, bytes]) -> None:
        """Hand the hash tiles of the committed tree to the node reader (for proofs)."""
        for path, data in tiles.items():
            if path.startswith("tile/entries/"):
                continue
            level, index = _tile_coordinates(path)
            self.nodes.put_tile(level, index, data, authoritative=True)


def _tile_coordinates(path: str) -> tuple[int, int]:
    from keyless.formats.tiles import parse_tile_path

    level, index, _width = parse_tile_path(path)
    return level, index


__all__ = ["Outcome", "Pending", "Sequencer"]
