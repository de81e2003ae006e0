"""Entry kinds of the transparency log: explicit tables from request shape to validator.

Each validator checks a proposed entry (signature included) and returns a
:class:`~keyless.services.tlog.kinds.common.Proposed` with the canonical body (the Merkle leaf).
No registration at import time (architecture.md house style): the tables below are the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from keyless.errors import InvalidInput, shown
from keyless.services.tlog.kinds import dsse, hashedrekord, intoto
from keyless.services.tlog.kinds.common import Proposed, field_names

Validator = Callable[[Any], Proposed]
_T = TypeVar("_T")

#: Rekor v1 ``ProposedEntry`` (kind, apiVersion) → validator of its ``spec`` (protocols.md §3.1).
V1_KINDS: dict[tuple[str, str], Validator] = {
    ("hashedrekord", "0.0.1"): hashedrekord.propose_v001,
    ("dsse", "0.0.1"): dsse.propose_v001,
    ("intoto", "0.0.2"): intoto.propose_v002,
}

#: Rekor v2 ``CreateEntryRequest`` oneof field → validator (protocols.md §4).
V2_REQUESTS: dict[str, Validator] = {
    "hashedRekordRequestV002": hashedrekord.propose_v002,
    "dsseRequestV002": dsse.propose_v002,
}

#: Rekor v1 (kind, apiVersion) → the canonical bodies a proposal may have been logged as,
#: computed *without* verifying signatures (``POST /api/v1/log/entries/retrieve`` looks entries
#: up by their leaf hash; an unauthenticated lookup must not cost signature verifications).
V1_LOOKUPS: dict[tuple[str, str], Callable[[Any], list[bytes]]] = {
    ("hashedrekord", "0.0.1"): lambda spec: [hashedrekord.propose_v001(spec, verify=False).body],
    ("dsse", "0.0.1"): dsse.candidate_bodies_v001,
    ("intoto", "0.0.2"): lambda spec: [intoto.propose_v002(spec, verify=False).body],
}

#: Shapes whose verification is a single signature check with a single key — at most ~0.7 ms of
#: CPU (a P-384 or P-521 ECDSA verify; P-256 ~70 µs), about what a worker-thread hop costs. A small
#: request of these shapes may be verified on the event loop (``single_check_v1/v2``); DSSE and
#: in-toto (up to 16 signatures x 16 keys, a quarter second and more) never are.
SINGLE_CHECK_V1: frozenset[tuple[str, str]] = frozenset({("hashedrekord", "0.0.1")})
SINGLE_CHECK_V2: frozenset[str] = frozenset({"hashedRekordRequestV002"})

__all__ = [
    "SINGLE_CHECK_V1", "SINGLE_CHECK_V2", "V1_KINDS", "V1_LOOKUPS", "V2_REQUESTS", "Proposed",
    "lookup_bodies_v1", "propose_v1", "propose_v2", "single_check_v1", "single_check_v2",
]


def single_check_v1(entry: dict[str, Any]) -> bool:
    """Whether verifying this Rekor v1 ``ProposedEntry`` is one signature check (see above)."""
    kind, version = entry.get("kind"), entry.get("apiVersion")
    return isinstance(kind, str) and isinstance(version, str) and (kind, version) in SINGLE_CHECK_V1


def single_check_v2(request: dict[str, Any]) -> bool:
    """Whether verifying this Rekor v2 ``CreateEntryRequest`` is one signature check."""
    return len(request) == 1 and next(iter(request)) in SINGLE_CHECK_V2


def _kind_spec(entry: dict[str, Any], table: dict[tuple[str, str], Any]) -> tuple[Any, Any]:
    """The table entry for a Rekor v1 ``ProposedEntry``'s kind and version, and its spec."""
    kind = entry.get("kind")
    version = entry.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(version, str):
        raise InvalidInput("proposed entry needs string fields kind and apiVersion")
    handler = table.get((kind, version))
    if handler is None:
        supported = ", ".join(f"{k} {v}" for k, v in table)
        raise InvalidInput(f"unsupported entry kind {shown(kind)} version {shown(version)}; "
                           f"supported: {supported}")
    if "spec" not in entry:
        raise InvalidInput("proposed entry has no spec")
    return handler, entry["spec"]


def propose_v1(entry: dict[str, Any]) -> Proposed:
    """Validate a Rekor v1 ``ProposedEntry`` (``{"kind", "apiVersion", "spec"}``)."""
    validator: Validator
    validator, spec = _kind_spec(entry, V1_KINDS)
    return _guarded(validator, spec)


def lookup_bodies_v1(entry: dict[str, Any]) -> list[bytes]:
    """The canonical bodies a Rekor v1 ``ProposedEntry`` may have been logged as (one, or a few
    for dsse), without verifying any signature: for looking it up, never for logging it."""
    lookup: Callable[[Any], list[bytes]]
    lookup, spec = _kind_spec(entry, V1_LOOKUPS)
    return _guarded(lookup, spec)


def _guarded(validator: Callable[[Any], _T], value: Any) -> _T:
    """Run a validator; JSON may smuggle lone surrogates that cannot be encoded (RFC 8259 §8.2)."""
    try:
        return validator(value)
    except UnicodeError as exc:
        raise InvalidInput("request holds a string that is not valid Unicode") from exc


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _all_camel(value: Any, depth: int = 0) -> bool:
    """Whether no key of ``value`` needs :func:`camel_keys` (and it is nested at most 32 deep):
    then the request is used as it is, without copying (the usual case, a few µs saved)."""
    if depth > 32:
        return False
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(key, str) and "_" in key:
            return False
        if isinstance(item, dict | list) and not _all_camel(item, depth + 1):
            return False
    return True


def camel_keys(value: Any, depth: int = 0) -> Any:
    """protojson accepts the proto (snake_case) names too: map them to JSON (camelCase) names."""
    if depth == 0 and (not isinstance(value, dict | list) or _all_camel(value)):
        return value
    if depth > 32:
        raise InvalidInput("request is nested too deeply")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _camel(key) if "_" in key else key
            if name in out:
                raise InvalidInput(f"field {shown(name)} given twice")
            out[name] = camel_keys(item, depth + 1)
        return out
    if isinstance(value, list):
        return [camel_keys(item, depth + 1) for item in value]
    return value


def propose_v2(request: dict[str, Any]) -> Proposed:
    """Validate a Rekor v2 ``CreateEntryRequest`` (exactly one of the ``*RequestV002`` fields)."""
    request = camel_keys(request)
    if len(request) == 1:  # the usual case, without the error path's bookkeeping
        name, value = next(iter(request.items()))
        if name in V2_REQUESTS:
            return _guarded(V2_REQUESTS[name], value)
    present = [name for name in request if name in V2_REQUESTS]
    unknown = sorted(set(request) - set(V2_REQUESTS))
    if unknown:
        raise InvalidInput(
            f"unknown request field(s) {field_names(unknown)}; expected one of "
            f"{', '.join(V2_REQUESTS)}"
        )
    if len(present) != 1:
        raise InvalidInput(f"request must have exactly one of {', '.join(V2_REQUESTS)}")
    return _guarded(V2_REQUESTS[present[0]], request[present[0]])
