"""``fsck`` of a log: re-derive the whole tree from the stored entries and check every artefact.

Like Tessera's ``cmd/fsck`` (targets.md G9): walking the entries in index order, it recomputes every
leaf hash, every full hash tile and entry bundle, the partial tiles and bundle of the committed size
and the root, and compares them with what storage holds and with the checkpoint. For logs whose
entry bundles carry the leaf itself (Rekor) this is exactly "re-derive the tree from the entry
bundles"; where they differ (static-ct's TileLeaf) each bundle entry is checked against the stored
entry. Memory is O(1) in the log size: it streams 256 entries at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from keyless.errors import Error
from keyless.formats.checkpoint import Checkpoint
from keyless.formats.tiles import (
    HASH_SIZE,
    TILE_WIDTH,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    tile_path,
)
from keyless.log.edge import RightEdge
from keyless.merkle import CompactRange, leaf_hash
from keyless.storage import LogStore


@dataclass
class FsckReport:
    """What fsck found for one log; ``ok`` when ``problems`` is empty."""

    log: str
    size: int = 0
    tiles_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems


def _compare(store: LogStore, log: str, report: FsckReport, path: str, expected: bytes) -> None:
    report.tiles_checked += 1
    found = store.read_tile(log, path)
    if found is None:
        report.problems.append(f"{path}: missing")
    elif path.startswith("tile/entries/"):
        try:
            if decode_entry_bundle(found) != decode_entry_bundle(expected):
                report.problems.append(f"{path}: entries differ from the stored entries")
        except Error as exc:
            report.problems.append(f"{path}: unreadable entry bundle: {exc}")
    elif found != expected:
        report.problems.append(f"{path}: hashes differ from the ones derived from the entries")


def fsck_log(
    store: LogStore,
    log: str,
    *,
    progress: Callable[[int, int], None] | None = None,
    max_problems: int = 100,
) -> FsckReport:
    """Check ``log`` in ``store`` end to end (see the module docstring)."""
    report = FsckReport(log)
    head = store.head(log)
    if head is None:
        report.problems.append("the log has no checkpoint")
        return report
    report.size = size = head.size
    try:
        checkpoint = Checkpoint.from_note(head.checkpoint)
        if (checkpoint.size, checkpoint.root_hash) != (head.size, head.root_hash):
            report.problems.append("the signed checkpoint does not match the stored head")
    except Error as exc:
        report.problems.append(f"the checkpoint is not a valid signed note: {exc}")
    edge = RightEdge(CompactRange(), [], [])
    for start in range(0, size, TILE_WIDTH):
        entries = store.entries(log, start, min(size, start + TILE_WIDTH))
        if [e.index for e in entries] != list(range(start, start + len(entries))) or len(
            entries
        ) != min(TILE_WIDTH, size - start):
            last = min(size, start + TILE_WIDTH) - 1
            report.problems.append(f"entries {start}…{last} are incomplete")
            return report
        tiles, _obsolete = edge.extend(
            [leaf_hash(e.leaf) for e in entries], [e.bundle_entry for e in entries]
        )
        for path, data in tiles.items():
            if ".p/" not in path:  # full tiles now; partial ones are checked at the end
                _compare(store, log, report, path, data)
        if progress is not None:
            progress(edge.size, size)
        if len(report.problems) >= max_problems:
            return report
    if store.entries(log, size, size + 1):
        report.problems.append(f"there are entries beyond the checkpoint's size {size}")
    for level, partial in enumerate(edge.partials):
        if partial:
            path = tile_path(level, size >> (8 * (level + 1)), len(partial) // HASH_SIZE)
            _compare(store, log, report, path, bytes(partial))
    if edge.bundle:
        path = entries_path(size // TILE_WIDTH, len(edge.bundle))
        _compare(store, log, report, path, encode_entry_bundle(edge.bundle))
    if edge.root() != head.root_hash:
        report.problems.append("the root hash derived from the entries differs from the checkpoint")
    return report
