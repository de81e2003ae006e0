"""What an explorer search box query means: an identity, a digest, a log index or a key.

Pure: a query string in, the search keys of :mod:`keyless.services.tlog.search` out. Anything
the box cannot mean is refused with :class:`~keyless.errors.InvalidInput` naming why (too long,
control characters, nothing recognisable), which the routes answer 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keyless.errors import InvalidInput
from keyless.services.tlog import search

#: Longest query accepted: the longest SAN or digest spelling is far shorter.
MAX_QUERY = 512
#: Largest log index the box takes (a 63-bit database column).
MAX_INDEX = 2**63 - 1

_HEX_SIZES = {64: "sha256", 96: "sha384", 128: "sha512"}
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class Query:
    """A classified query: ``kind`` is ``identity``, ``digest``, ``index`` or ``fingerprint``
    (``digest`` also matches a key fingerprint with the same SHA-256 value)."""

    text: str
    kind: str
    keys: tuple[str, ...] = ()
    index: int | None = None
    #: the certificate identity searched (CT entries are matched against it)
    identity: str | None = None
    #: SHA-256 of a DER SPKI, for matching CT certificates by key
    fingerprint: str | None = None


def parse_query(text: str) -> Query:
    """Classify the search box's ``text`` (surrounding blanks ignored)."""
    if len(text) > MAX_QUERY:
        raise InvalidInput(f"the query is {len(text)} characters; the limit is {MAX_QUERY}")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text):
        raise InvalidInput("the query must not contain control characters")
    text = text.strip()
    if not text:
        raise InvalidInput("the query is empty")
    lowered = text.lower()
    if text.isascii() and text.isdigit():
        index = int(text)
        if index > MAX_INDEX:
            raise InvalidInput(f"log index {text} is beyond any log")
        return Query(text, "index", index=index)
    if lowered.startswith("key:"):
        value = lowered.removeprefix("key:").removeprefix("sha256:")
        if len(value) != 64 or not _HEX.match(value):
            raise InvalidInput("a key fingerprint is key:sha256:<64 hex digits> of the DER SPKI")
        return Query(text, "fingerprint", (f"key:sha256:{value}",), fingerprint=value)
    algorithm, sep, value = lowered.partition(":")
    if (sep and algorithm in ("sha256", "sha384", "sha512")) or (
        not sep and len(lowered) in _HEX_SIZES and _HEX.match(lowered)
    ):
        key = search.parse_digest_query(lowered if sep else f"{_HEX_SIZES[len(lowered)]}:{lowered}")
        hex_digest = key.rsplit(":", 1)[1]
        keys: tuple[str, ...] = (key,)
        if len(hex_digest) == 64:  # a SHA-256 value may also be a key's fingerprint
            keys += (f"key:sha256:{hex_digest}",)
        return Query(text, "digest", keys,
                     fingerprint=hex_digest if len(hex_digest) == 64 else None)
    if "://" in text:
        return Query(text, "identity", (search.uri_key(text),), identity=text)
    if "@" in text and " " not in text:
        return Query(text, "identity", (search.email_key(text),), identity=text.lower())
    raise InvalidInput(
        "search for an e-mail address or URI, sha256:<hex> (or bare hex), a log index, "
        "or key:sha256:<hex>"
    )
