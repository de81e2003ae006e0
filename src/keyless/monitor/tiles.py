"""Reading a C2SP tlog-tiles log over HTTP: its checkpoint, hash tiles and entry bundles.

Every response is hostile input: sizes are capped (a full hash tile is 8 KiB, a checkpoint at
most :data:`~keyless.formats.checkpoint.MAX_NOTE_SIZE`, an entry bundle 256 entries of at most
64 KiB), redirects are not followed and anything but a 200 is an error naming the path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx

from keyless.errors import Error
from keyless.formats.note import MAX_NOTE_SIZE
from keyless.formats.tiles import (
    MAX_ENTRY_SIZE,
    TILE_BYTES,
    TILE_WIDTH,
    decode_entry_bundle,
    entries_path,
    tile_width,
)

__all__ = ["BundleError", "FetchError", "TileClient"]

T = TypeVar("T")

_MAX_BUNDLE = TILE_WIDTH * (2 + MAX_ENTRY_SIZE)
#: entry bundles fetched at once while catching up
_PARALLEL = 4


class FetchError(Error):
    """The log could not be read (network, status, oversized response): not an inconsistency."""


class BundleError(Error):
    """An entry bundle that does not parse or has the wrong number of entries (evidence)."""


class TileClient:
    """A tiled log under ``base_url`` (``<base_url>/checkpoint``, ``<base_url>/tile/…``)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(timeout=timeout, follow_redirects=False,
                                  headers={"User-Agent": "keyless-monitor"})

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, limit: int) -> bytes:
        """GET ``<base_url>/<path>`` (at most ``limit`` bytes) or raise :class:`FetchError`."""
        url = f"{self.base_url}/{path}"
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise FetchError(f"GET {url}: HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise FetchError(f"GET {url}: response exceeds {limit} bytes")
                return bytes(body)
        except httpx.HTTPError as exc:
            raise FetchError(f"GET {url}: {exc}") from exc

    def checkpoint(self) -> bytes:
        return self.get("checkpoint", MAX_NOTE_SIZE)

    def tile(self, path: str) -> bytes | None:
        """A hash tile by its path (for :class:`keyless.log.nodes.NodeReader`)."""
        return self.get(path, TILE_BYTES)

    def bundle(self, index: int, size: int) -> list[bytes]:
        """The entries of bundle ``index`` in a tree of ``size`` leaves (exactly its width)."""
        width = tile_width(0, index, size)
        data = self.get(entries_path(index, None if width == TILE_WIDTH else width), _MAX_BUNDLE)
        try:
            return decode_entry_bundle(data, width)
        except Error as exc:
            raise BundleError(f"entry bundle {index}: {exc}") from exc

    def bundles(self, start: int, size: int) -> Iterator[tuple[int, list[bytes]]]:
        """``(first leaf index, entries)`` of each bundle holding leaves ``start … size-1``,
        in order, fetched a few at a time."""
        return self.windows(start, size, self.bundle)

    def windows(
        self, start: int, size: int, fetch: Callable[[int, int], list[T]]
    ) -> Iterator[tuple[int, list[T]]]:
        """``(first leaf index, entries)`` of each level-0 tile window ``fetch(index, size)``
        reads, for leaves ``start … size-1``, in order, a few fetched at a time."""
        first, last = start // TILE_WIDTH, (size + TILE_WIDTH - 1) // TILE_WIDTH
        with ThreadPoolExecutor(_PARALLEL) as pool:
            window = range(first, last)
            for offset in range(0, len(window), _PARALLEL * 4):
                chunk = window[offset : offset + _PARALLEL * 4]
                for index, entries in zip(
                    chunk, pool.map(lambda i: fetch(i, size), chunk), strict=True
                ):
                    skip = max(0, start - index * TILE_WIDTH)
                    yield index * TILE_WIDTH + skip, entries[skip:]
