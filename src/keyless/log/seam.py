"""The log seam: what a personality (CT log, Rekor v1, Rekor v2) may ask of the log engine.

architecture.md "One log engine, two personalities": the services depend on these structural
Protocols, not on :class:`keyless.log.TransparencyLog` itself, so that a service can be tested
over any engine with the same semantics and the engine can change behind it. They are defined
here once; the CT and Rekor personalities import them from here.

The semantics every implementation keeps (docs/internal-apis.md):

* :meth:`LogEngine.add` returns only once the entry is durably sequenced and covered by a signed
  checkpoint (Tessera/Sunlight "add returns a durable index"), with its inclusion proof unless
  the caller passes ``proof=False`` (then ``inclusion_proof`` is empty);
* an entry whose dedup key is already in the log is answered with the existing index and
  ``duplicate=True`` (idempotent resubmission, contracts.md §5);
* reads follow C2SP tlog-tiles (hash tiles, entry bundles, partial ``.p/W`` widths) and
  RFC 9162 §2.1.3 / §2.1.4 (inclusion and consistency proofs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

#: Builds an entry for the index it is given: ``index -> (leaf, bundle_entry)``. For logs whose
#: entries name their own position (C2SP static-ct-api ``leaf_index`` extension). It runs on the
#: sequencer's thread inside the batch's transaction, so it must be pure, cheap, never raise, and
#: give entries whose sizes do not depend on the index.
EntryAtIndex = Callable[[int], tuple[bytes, bytes]]


class AddResultLike(Protocol):
    """``keyless.log.AddResult``: the entry's place and the proof that the log holds it."""

    @property
    def index(self) -> int: ...
    @property
    def leaf_hash(self) -> bytes: ...
    @property
    def integrated_time(self) -> int: ...
    @property
    def duplicate(self) -> bool: ...
    @property
    def tree_size(self) -> int: ...
    @property
    def root_hash(self) -> bytes: ...
    @property
    def checkpoint(self) -> bytes: ...
    @property
    def inclusion_proof(self) -> Sequence[bytes]: ...


class StoredEntryLike(Protocol):
    """``keyless.storage.StoredEntry``: one sequenced entry as the log keeps it."""

    @property
    def index(self) -> int: ...
    @property
    def leaf(self) -> bytes: ...
    @property
    def bundle_entry(self) -> bytes: ...
    @property
    def integrated_time(self) -> int: ...


class LogReader(Protocol):
    """The read side: checkpoint, tiles, entries and proofs (C2SP tlog-tiles, RFC 9162 §2.1)."""

    async def checkpoint(self) -> bytes: ...
    async def tree(self) -> tuple[int, bytes]: ...
    async def tile(self, level: int, index: int, width: int | None = None) -> bytes: ...
    async def entry_bundle(self, index: int, width: int | None = None) -> bytes: ...
    async def entry(self, index: int) -> StoredEntryLike: ...
    async def entries(self, start: int, end: int) -> Sequence[StoredEntryLike]: ...
    async def index_of(self, key: bytes) -> int | None: ...
    async def inclusion_proof(self, index: int, tree_size: int) -> Sequence[bytes]: ...
    async def consistency_proof(self, first: int, second: int) -> Sequence[bytes]: ...


class LogEngine(LogReader, Protocol):
    """Reads plus the append paths.

    :meth:`add` appends a fixed leaf; :meth:`add_at_index` appends an entry built from the index
    the log assigns to it (static-ct-api: the leaf and the SCT carry ``leaf_index``), for which
    there is no natural dedup key, so the caller names one.
    """

    async def add(
        self, leaf: bytes, *, bundle_entry: bytes | None = None, dedup_key: bytes | None = None,
        proof: bool = True,
    ) -> AddResultLike: ...  # fmt: skip
    async def add_at_index(
        self, entry_at: EntryAtIndex, *, dedup_key: bytes, proof: bool = True
    ) -> AddResultLike: ...


__all__ = ["AddResultLike", "EntryAtIndex", "LogEngine", "LogReader", "StoredEntryLike"]
