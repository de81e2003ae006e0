"""The compact JWS grammar of identity tokens, and what a token *means* (its replay identity).

A compact JWS (RFC 7515 §7.1) is three base64url segments (§2: no padding, no whitespace, no
other characters) joined by dots. Several strings verify as the same token: surrounding
whitespace that a lenient parser strips, base64url with non-zero unused bits, and for ECDSA the
signature (r, n - s) next to (r, s). Anything that must recognise a token it has seen (the CA's
one-token-one-key guard) therefore keys on :func:`token_id`, computed from the verified claims and
the signed part of the token, never on the raw string.

Whitespace is handled in one place only: :func:`normalize_token`, called where a token enters
(the CA's request parsing). :func:`parse_compact_jws` and :func:`decode_compact_jws` (used by the
verifier, which reads the header and the unverified claims from the one decoding) refuse it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keyless.errors import Unauthenticated

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
#: What :func:`normalize_token` strips around a token (HTTP and JSON whitespace).
_WHITESPACE = " \t\r\n"


def _canonical_segment(segment: str) -> bytes | None:
    """The octets of ``segment`` if it is base64url in its only canonical form (RFC 7515 §2,
    RFC 4648 §3.5), else None."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if base64.urlsafe_b64encode(data).rstrip(b"=").decode() == segment else None


def _segments(token: str) -> tuple[list[str], bytes, bytes]:
    """The three segments of a strict compact JWS and its decoded header and payload octets."""
    parts = token.split(".")
    header = payload = None
    # An empty signature is grammatical (an unsecured JWS, RFC 7515 §A.5); the verifier then
    # refuses its algorithm by name.
    if len(parts) == 3 and (parts[2] == "" or _canonical_segment(parts[2]) is not None):
        header, payload = _canonical_segment(parts[0]), _canonical_segment(parts[1])
    if header is None or payload is None:
        raise Unauthenticated(
            "identity token is not a signed JWT (compact JWS: three base64url segments without "
            "padding or whitespace, RFC 7515 §7.1)"
        )
    return parts, header, payload


def parse_compact_jws(token: str) -> str:
    """The JWS signing input ``header.payload`` of a strictly well-formed compact JWS.

    Raises :class:`Unauthenticated` for anything else: whitespace, padding, characters outside
    base64url, non-canonical base64url, an empty header or payload, or other than three segments.
    """
    parts = _segments(token)[0]
    return f"{parts[0]}.{parts[1]}"


@dataclass(frozen=True)
class CompactJws:
    """A strict compact JWS decoded once: its signing input, JOSE header and (unverified)
    claims. Nothing here is verified; the signature check is the verifier's."""

    signing_input: str
    header: dict[str, Any]
    claims: dict[str, Any]


def _json_object(octets: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(octets)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Unauthenticated(f"identity token cannot be parsed: invalid {what}: {exc}") from exc
    if not isinstance(value, dict):
        raise Unauthenticated(f"identity token cannot be parsed: the {what} is not a JSON object")
    return value


def decode_compact_jws(token: str) -> CompactJws:
    """:func:`parse_compact_jws` plus the header and claims, each required to be a JSON object
    (RFC 7515 §4, RFC 7519 §7.2 step 10); raises :class:`Unauthenticated` otherwise."""
    parts, header, payload = _segments(token)
    return CompactJws(
        f"{parts[0]}.{parts[1]}", _json_object(header, "header"), _json_object(payload, "payload")
    )


def normalize_token(raw: str) -> str:
    """The one place surrounding whitespace is removed; the result is a strict compact JWS."""
    token = raw.strip(_WHITESPACE)
    parse_compact_jws(token)
    return token


def token_id(claims: Mapping[str, Any], signing_input: str) -> str:
    """What a verified token means, the same for every encoding of it.

    ``iss`` + ``jti`` when the token has a string ``jti`` (unique per issuer, RFC 7519 §4.1.7);
    otherwise ``iss`` + ``sub`` + ``iat`` + the signing input (header.payload, which the
    signature covers byte for byte — the signature itself is left out, it is malleable).
    A JSON array, so that no two different tuples give the same text.
    """
    iss, jti = claims["iss"], claims.get("jti")
    if isinstance(jti, str) and jti:
        return json.dumps(["jti", iss, jti], separators=(",", ":"))
    parts = ["signing-input", iss, claims.get("sub"), claims.get("iat"), signing_input]
    return json.dumps(parts, separators=(",", ":"))
