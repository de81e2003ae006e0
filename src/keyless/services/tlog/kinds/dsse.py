"""The ``dsse`` kind: a DSSE envelope whose signatures are verified over the PAE.

* v0.0.1 (Rekor v1, rekor ``pkg/types/dsse/v0.0.1``, protocols.md §3.1): the client proposes
  ``proposedContent{envelope: "<JSON string>", verifiers: [b64 PEM]}``; the log verifies every
  signature and stores only hashes and ``{signature, verifier}`` pairs, sorted by signature — the
  server-side transformation both clients rely on (interop.md §5 gotcha 5).
* v0.0.2 (Rekor v2's deprecated ``dsseRequestV002``, rekor-tiles ``fa390b1^:pkg/types/dsse``,
  protocols.md §4): still sent by sigstore-js 5, so it is accepted (interop.md §5 gotcha 4).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from keyless.errors import InvalidInput, TooLarge
from keyless.formats.dsse import Envelope
from keyless.http.requests import parse_json_object
from keyless.services.tlog.kinds import common
from keyless.services.tlog.kinds.common import EntrySignatureError, Proposed, Verifier
from keyless.services.tlog.kinds.hashedrekord import parse_verifier_v2

KIND = "dsse"
MAX_VERIFIERS = 16
#: Most signatures one envelope may carry. Each is tried against up to MAX_VERIFIERS keys on the
#: request path, so the product bounds the CPU one request can cost; a 4 MiB body could otherwise
#: hold ~30,000 signatures (about 40 s of verification with the event loop blocked).
MAX_SIGNATURES = 16
#: Most candidate bodies a retrieve-by-entry of one dsse 0.0.1 proposal may cost (see
#: :func:`candidate_bodies_v001`): one signature with up to 16 verifiers, or 2 with 4.
MAX_LOOKUP_CANDIDATES = 16


def _match(
    envelope: Envelope, verifiers: list[Verifier], what: str
) -> list[tuple[bytes, int]]:
    """For each signature, the index of a verifier it verifies with (over the PAE)."""
    if len(envelope.signatures) > MAX_SIGNATURES:
        raise TooLarge(
            f"{what} has {len(envelope.signatures)} signatures; the limit is {MAX_SIGNATURES}"
        )
    message = envelope.pae()
    matched: list[tuple[bytes, int]] = []
    for i, signature in enumerate(envelope.signatures):
        for j, verifier in enumerate(verifiers):
            try:
                common.verify_message(verifier, signature.sig, message)
            except EntrySignatureError:
                continue
            matched.append((signature.sig, j))
            break
        else:
            raise EntrySignatureError(
                f"{what} signature {i} does not verify over the DSSE PAE with any verifier"
            )
    return matched


def _parse_v001(spec: Any) -> tuple[str, Envelope, list[Verifier]]:
    """The raw envelope text, the envelope and the verifiers of a dsse 0.0.1 proposal."""
    spec = common.obj(spec, "spec")
    # envelopeHash/payloadHash/signatures are readOnly in Rekor's schema: the log computes them
    # and ignores what a client sends (sigstore-python sends them as null).
    common.only_keys(spec, {"proposedContent", "envelopeHash", "payloadHash", "signatures"},
                     "spec")
    content = common.obj(spec.get("proposedContent"), "spec.proposedContent")
    common.only_keys(content, {"envelope", "verifiers"}, "spec.proposedContent")
    raw_envelope = common.string(content.get("envelope"), "spec.proposedContent.envelope")
    envelope = Envelope.from_json(
        parse_json_object(raw_envelope.encode(), "spec.proposedContent.envelope"),
        "spec.proposedContent.envelope",
    )
    if len(envelope.signatures) > MAX_SIGNATURES:
        raise TooLarge(f"spec.proposedContent.envelope has {len(envelope.signatures)} "
                       f"signatures; the limit is {MAX_SIGNATURES}")
    raw_verifiers = content.get("verifiers")
    if not isinstance(raw_verifiers, list) or not raw_verifiers:
        raise InvalidInput("spec.proposedContent.verifiers must be a non-empty list")
    if len(raw_verifiers) > MAX_VERIFIERS:
        raise InvalidInput(f"spec.proposedContent.verifiers has more than {MAX_VERIFIERS} keys")
    verifiers = [
        common.load_pem_verifier(
            common.b64(v, f"spec.proposedContent.verifiers[{i}]"),
            f"spec.proposedContent.verifiers[{i}]",
        )
        for i, v in enumerate(raw_verifiers)
    ]
    return raw_envelope, envelope, verifiers


def _body_v001(
    raw_envelope: str, envelope: Envelope, pems: list[bytes], matched: Sequence[tuple[bytes, int]]
) -> bytes:
    """The canonical dsse 0.0.1 body: hashes and the ``{signature, verifier}`` pairs."""
    signatures = sorted(
        ({"signature": common.b64e(sig), "verifier": common.b64e(pems[j])} for sig, j in matched),
        key=lambda s: s["signature"],
    )
    body = {
        "apiVersion": "0.0.1",
        "kind": KIND,
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": common.sha256_hex(raw_envelope.encode()),
            },
            "payloadHash": {"algorithm": "sha256", "value": common.sha256_hex(envelope.payload)},
            "signatures": signatures,
        },
    }
    return common.jcs(body)


def propose_v001(spec: Any) -> Proposed:
    """Validate a Rekor v1 ``dsse`` 0.0.1 proposal and build the canonical (hashes-only) body."""
    raw_envelope, envelope, verifiers = _parse_v001(spec)
    matched = _match(envelope, verifiers, "spec.proposedContent.envelope")
    pems = [v.canonical_pem() for v in verifiers]
    return Proposed(KIND, "0.0.1", _body_v001(raw_envelope, envelope, pems, matched))


def candidate_bodies_v001(spec: Any) -> list[bytes]:
    """Every body a dsse 0.0.1 proposal could have been logged as, *without* verifying a
    signature (``POST /api/v1/log/entries/retrieve``: a lookup must not cost a verification).

    The logged body pairs each signature with the verifier it verified with; unverified, any
    verifier may be the one, so there is one candidate per assignment. At most
    :data:`MAX_LOOKUP_CANDIDATES` are tried; a larger proposal is refused (look it up by UUID).
    """
    raw_envelope, envelope, verifiers = _parse_v001(spec)
    sigs = [s.sig for s in envelope.signatures]
    count = len(verifiers) ** len(sigs)
    if count > MAX_LOOKUP_CANDIDATES:
        raise InvalidInput(
            f"a dsse entry with {len(sigs)} signatures and {len(verifiers)} verifiers has "
            f"{count} possible forms; retrieve looks up at most {MAX_LOOKUP_CANDIDATES} "
            "(retrieve it by UUID or log index instead)"
        )
    pems = [v.canonical_pem() for v in verifiers]
    return [
        _body_v001(raw_envelope, envelope, pems, list(zip(sigs, choice, strict=True)))
        for choice in itertools.product(range(len(verifiers)), repeat=len(sigs))
    ]


def propose_v002(request: Any) -> Proposed:
    """Validate a Rekor v2 ``dsseRequestV002`` and build the dsse 0.0.2 entry (JCS)."""
    what = "dsseRequestV002"
    request = common.obj(request, what)
    common.only_keys(request, {"envelope", "verifiers"}, what)
    envelope = Envelope.from_json(common.obj(request.get("envelope"), f"{what}.envelope"),
                                  f"{what}.envelope")
    raw_verifiers = request.get("verifiers")
    if not isinstance(raw_verifiers, list) or not raw_verifiers:
        raise InvalidInput(f"{what}.verifiers must be a non-empty list")
    if len(raw_verifiers) > MAX_VERIFIERS:
        raise InvalidInput(f"{what}.verifiers has more than {MAX_VERIFIERS} keys")
    parsed = [
        parse_verifier_v2(v, f"{what}.verifiers[{i}]") for i, v in enumerate(raw_verifiers)
    ]
    matched = _match(envelope, [p[0] for p in parsed], f"{what}.envelope")
    signatures = [
        {"content": common.b64e(sig), "verifier": parsed[j][2]}
        for sig, j in sorted(matched, key=lambda m: m[0])
    ]
    body = {
        "apiVersion": "0.0.2",
        "kind": KIND,
        "spec": {
            "dsseV002": {
                "payloadHash": {
                    "algorithm": "SHA2_256",
                    "digest": common.b64e(bytes.fromhex(common.sha256_hex(envelope.payload))),
                },
                "signatures": signatures,
            }
        },
    }
    return Proposed(KIND, "0.0.2", common.jcs(body))
