"""Strict protobuf-JSON reading and writing, shared by every Sigstore message in formats/.

Parsing follows proto3 JSON rules (architecture-docs client-spec §5): lowerCamelCase keys, 64-bit
integers as decimal strings (numbers tolerated), bytes as standard base64, RFC 3339 timestamps,
``null`` read as "absent". Unknown keys are rejected and every error names the JSON path of the
offending field (the strictness of sigstore-python's ``extra_forbidden`` models). Also the one
message every document shares: ``TimeRange`` (:class:`ValidityPeriod`). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keyless.errors import InvalidInput, field_name

#: A proto3 JSON int64 as text: an optional minus and at most 19 digits (RFC 7159 numbers are
#: not what protojson writes, but a longer string cannot be an int64 anyway).
INT64_TEXT = re.compile(r"-?[0-9]{1,19}")


class StrictObject:
    """A JSON object being read strictly: every key must be consumed or is reported unknown."""

    __slots__ = ("_data", "_path", "_seen")

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise InvalidInput(f"{path or 'the document'} must be a JSON object")
        self._data: dict[str, Any] = data
        self._path = path
        self._seen: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def get(self, *keys: str) -> Any:
        """The value of the first present key among aliases (``null`` counts as absent)."""
        for key in keys:
            self._seen.add(key)
        for key in keys:
            value = self._data.get(key)
            if value is not None:
                return value
        return None

    def obj(self, key: str, *, required: bool = False) -> StrictObject | None:
        value = self.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.path(key)} is required")
            return None
        return StrictObject(value, self.path(key))

    def req_obj(self, key: str) -> StrictObject:
        value = self.obj(key, required=True)
        assert value is not None
        return value

    def items(self, key: str, *, required: bool = False) -> list[Any]:
        value = self.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.path(key)} is required")
            return []
        if not isinstance(value, list):
            raise InvalidInput(f"{self.path(key)} must be a list")
        return value

    def text(self, key: str, *, required: bool = True, default: str = "") -> str:
        value = self.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.path(key)} is required")
            return default
        if not isinstance(value, str):
            raise InvalidInput(f"{self.path(key)} must be a string")
        if not value.isascii():
            check_utf8(value, self.path(key))
        return value

    def raw(self, key: str, *, required: bool = True) -> bytes:
        value = self.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.path(key)} is required")
            return b""
        return b64decode(value, self.path(key))

    def integer(self, key: str, *, required: bool = True, minimum: int = 0) -> int:
        """A 64-bit integer: proto3 JSON writes it as a decimal string, numbers are tolerated."""
        value = self.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.path(key)} is required")
            return 0
        result: int
        if isinstance(value, bool):
            raise InvalidInput(f"{self.path(key)} must be an integer")
        if isinstance(value, int):
            result = value
        elif isinstance(value, str) and INT64_TEXT.fullmatch(value):
            result = int(value)
        else:
            raise InvalidInput(f"{self.path(key)} must be an integer")
        if result < minimum:
            raise InvalidInput(f"{self.path(key)} must be ≥ {minimum}, got {result}")
        if result >= 1 << 63:
            raise InvalidInput(f"{self.path(key)} is out of range")
        return result

    def done(self) -> None:
        """Reject keys nobody asked for (strict parsing, like ``extra_forbidden``)."""
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            where = f"{self._path}." if self._path else ""
            raise InvalidInput(f"{where}{field_name(unknown[0])} is not a known field")


def check_utf8(value: str, what: str) -> None:
    """JSON may escape lone UTF-16 surrogates (``\\ud800``) that no UTF-8 text can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} is not valid Unicode (a lone surrogate)") from exc


def b64decode(value: Any, what: str) -> bytes:
    """Bytes as protobuf-JSON reads them (RFC 4648 §4 standard base64, as Go's protojson does:
    line breaks are ignored, the URL-safe alphabet (§5) and missing padding are accepted).
    Anything else is rejected rather than silently skipped."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a base64 string")
    try:  # the common, canonical case (strict_mode: alphabet and padding, RFC 4648 §4)
        return binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    text = value.replace("\n", "").replace("\r", "")
    if "-" in text or "_" in text:
        text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} is not valid base64") from exc


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


def parse_time(value: Any, what: str) -> datetime:
    """An RFC 3339 timestamp (``Z`` or offset, fractional seconds allowed) as aware UTC."""
    if not isinstance(value, str) or "T" not in value:
        raise InvalidInput(f"{what} must be an RFC 3339 timestamp")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{what} is not a valid RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        raise InvalidInput(f"{what} must carry a time zone")
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 with ``Z``, as proto3 JSON writes ``google.protobuf.Timestamp``."""
    text = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return text


def load_json(data: bytes | str | Mapping[str, Any], what: str) -> Any:
    if isinstance(data, bytes | str):
        try:
            return json.loads(data)
        except RecursionError as exc:
            raise InvalidInput(f"{what} is nested too deeply") from exc
        except ValueError as exc:
            raise InvalidInput(f"{what} is not valid JSON: {exc}") from exc
    return data


# --- common messages (sigstore_common.proto) --------------------------------------------------


@dataclass(frozen=True)
class ValidityPeriod:
    """``TimeRange``; both ends inclusive (protocols.md §7: ``validFor`` inclusive)."""

    start: datetime
    end: datetime | None = None

    def contains(self, when: datetime) -> bool:
        """Whether ``when`` lies in [start, end] (closed interval)."""
        return self.start <= when and (self.end is None or when <= self.end)

    def to_json(self) -> dict[str, str]:
        out = {"start": format_time(self.start)}
        if self.end is not None:
            out["end"] = format_time(self.end)
        return out

    @classmethod
    def parse(cls, o: StrictObject | None, path: str) -> ValidityPeriod:
        """A ``validFor`` whose ``start`` is mandatory (the conformance suite rejects roots
        without it: trust-root-tlog-missing-validity-start_fail)."""
        if o is None:
            raise InvalidInput(f"{path} is required")
        start = o.get("start")
        if start is None:
            raise InvalidInput(f"{path}.start is required")
        begin = parse_time(start, f"{path}.start")
        end_value = o.get("end")
        end = parse_time(end_value, f"{path}.end") if end_value is not None else None
        o.done()
        if end is not None and end < begin:
            raise InvalidInput(f"{path}.end is before its start")
        return cls(begin, end)
