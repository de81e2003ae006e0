"""Plain records exchanged between the log engine and the storage backends.

They carry no behaviour so that every backend (memory, SQLite + files, PostgreSQL) stores exactly
the same facts: the sequenced entries, the head of each log (the compare-and-swap checkpoint) and
the tiles of C2SP tlog-tiles (architecture.md "Layers": storage protocols split by guarantee).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from keyless.errors import ConfigError

#: log names become directory names and SQL keys: keep them boring.
_LOG_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def check_log_name(name: str) -> str:
    """Return ``name`` if it is a valid log name (``[a-z0-9][a-z0-9._-]*``, ≤ 63 characters)."""
    if not _LOG_NAME.match(name):
        raise ConfigError(
            f"invalid log name {name!r}: use lower-case letters, digits, '.', '_', '-'"
        )
    return name


@dataclass(frozen=True)
class StoredEntry:
    """One sequenced entry as the log keeps it.

    ``leaf`` is what is hashed into the tree (RFC 6962 §2.1 leaf input); ``bundle_entry`` is what
    the entry bundle of tlog-tiles carries (for static-ct the TileLeaf; for Rekor the canonical
    body);
    ``integrated_time`` is the unix time (seconds) at which the entry was sequenced.
    """

    index: int
    leaf: bytes
    bundle_entry: bytes
    integrated_time: int


class NewEntry(NamedTuple):
    """An entry being committed by a sequencing batch (engine → storage).

    A NamedTuple rather than a frozen dataclass: tens of thousands are built per second on the
    append path, and tuple construction is several times cheaper.
    """

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose
    leaf: bytes
    bundle_entry: bytes | None  # None: same as ``leaf`` (saves storing it twice)
    leaf_hash: bytes
    dedup_key: bytes
    integrated_time: int


@dataclass(frozen=True)
class LogHead:
    """The committed head of a log: the latest signed checkpoint and what it commits to."""

    size: int
    root_hash: bytes
    checkpoint: bytes


@dataclass(frozen=True)
class Batch:
    """Everything one sequencing step makes durable, atomically with the checkpoint swap.

    ``tiles`` maps C2SP tlog-tiles paths (``tile/0/x001/234.p/7``, ``tile/entries/000``) to their
    bytes. A backend must make the tiles durable no later than the head swap, so that any committed
    checkpoint can be served in full (tlog-tiles: every tile a checkpoint needs must exist).
    ``obsolete`` lists partial-tile directories (``tile/0/000.p``) that the batch completed: the
    backend may delete them once the commit is durable (readers are served by truncating the full
    tile instead).
    """

    old_size: int
    head: LogHead
    entries: Sequence[NewEntry]
    tiles: Mapping[str, bytes]
    obsolete: Sequence[str] = field(default_factory=tuple)
