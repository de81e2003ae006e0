"""Configurable limits of the transparency-log APIs (contracts.md §5, issue 4 "Limits and errors").

A request over a limit is refused with 413 naming the limit and its value before any signature is
checked, so a large or abusive request costs the log as little as possible.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyless.errors import TooLarge
from keyless.http.requests import DEFAULT_MAX_BODY


@dataclass(frozen=True)
class TlogLimits:
    """Limits of one log's HTTP API."""

    max_body: int = DEFAULT_MAX_BODY
    """Largest accepted request body in bytes (default 4 MiB)."""
    max_entry: int = 64 * 1024
    """Largest canonical entry (the Merkle leaf) in bytes (default 64 KiB)."""
    max_retrieve: int = 10
    """Most UUIDs/indexes/entries per ``/api/v1/log/entries/retrieve`` list (Rekor: 10)."""
    max_search_results: int = 1000
    """Most results one search answer lists."""

    def check_entry(self, size: int) -> None:
        """Refuse a canonical entry larger than :attr:`max_entry` (HTTP 413)."""
        if size > self.max_entry:
            raise TooLarge(
                f"entry of {size} bytes exceeds the maximum entry size of {self.max_entry} bytes"
            )
