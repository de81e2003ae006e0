"""Reading a Rekor v1 log through its API: signed tree head, consistency proofs, entries by index.

Rekor v1 serves no tiles, so the monitor keeps the tree's right edge (compact range) in its state
and rebuilds the tree from every entry it reads, one ``GET /api/v1/log/entries?logIndex=N`` each
(a few at a time). Responses are hostile input: sizes are capped and every field is checked.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from keyless.formats.note import MAX_NOTE_SIZE
from keyless.monitor.tiles import FetchError, TileClient

__all__ = ["RekorV1Client"]

_MAX_ENTRY = 4 << 20
_PARALLEL = 8


class RekorV1Client(TileClient):
    """A Rekor v1 log under ``base_url`` (``<base_url>/api/v1/…``)."""

    def _json(self, path: str, limit: int) -> Any:
        data = self.get(path, limit)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise FetchError(f"GET {self.base_url}/{path}: not JSON") from exc

    def checkpoint(self) -> bytes:
        info = self._json("api/v1/log", 2 * MAX_NOTE_SIZE)
        note = info.get("signedTreeHead") if isinstance(info, dict) else None
        if not isinstance(note, str):
            raise FetchError(f"GET {self.base_url}/api/v1/log: no signedTreeHead")
        return note.encode()

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The log's RFC 9162 consistency proof between two tree sizes (unverified)."""
        path = f"api/v1/log/proof?firstSize={first}&lastSize={second}"
        proof = self._json(path, 1 << 16)
        hashes = proof.get("hashes") if isinstance(proof, dict) else None
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise FetchError(f"GET {self.base_url}/{path}: no hashes")
        try:
            return [bytes.fromhex(h) for h in hashes]
        except ValueError as exc:
            raise FetchError(f"GET {self.base_url}/{path}: hashes are not hex") from exc

    def entry(self, index: int) -> bytes:
        """The canonical body of entry ``index`` (its leaf is ``leaf_hash(body)``)."""
        path = f"api/v1/log/entries?logIndex={index}"
        found = self._json(path, _MAX_ENTRY)
        values = list(found.values()) if isinstance(found, dict) else []
        if len(values) != 1 or not isinstance(values[0], dict):
            raise FetchError(f"GET {self.base_url}/{path}: not one entry")
        entry = values[0]
        if entry.get("logIndex") != index or not isinstance(entry.get("body"), str):
            raise FetchError(f"GET {self.base_url}/{path}: the entry of another index")
        try:
            return base64.b64decode(entry["body"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FetchError(f"GET {self.base_url}/{path}: body is not base64") from exc

    def entries(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(index, body)`` for ``start … end-1`` in order, fetched a few at a time."""
        with ThreadPoolExecutor(_PARALLEL) as pool:
            for first in range(start, end, _PARALLEL * 8):
                chunk = range(first, min(end, first + _PARALLEL * 8))
                yield from zip(chunk, pool.map(self.entry, chunk), strict=True)


