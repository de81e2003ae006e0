"""The write path hands the indexer what it parsed of a hashedrekord 0.0.2 entry: the keys are
exactly those re-derived from the canonical body (so the index stays rebuildable from the log),
and the certificate is still path-validated afresh for every entry."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from tlog_support import (
    CA,
    EMAIL,
    CountingIssuers,
    Signer,
    b64,
    build_stack,
    digest_of,
    hashedrekord_v2,
    naming_email,
    spki,
)

from keyless.services.tlog.identities import TrustedIssuers
from keyless.services.tlog.indexer import SearchIndexer
from keyless.services.tlog.kinds import propose_v2
from keyless.services.tlog.kinds.common import Proposed
from keyless.services.tlog.search import ParsedEntry, keys_for_body, keys_for_parsed
from keyless.storage import open_storage


def _self_signed_naming_alice() -> Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    return Signer(key, naming_email(name, name, key).sign(key, hashes.SHA256()))


def _with_public_key(signer: Signer, artifact: bytes) -> dict[str, Any]:
    digest = digest_of(artifact, signer.hash)
    return {"hashedRekordRequestV002": {
        "digest": b64(digest),
        "signature": {
            "content": b64(signer.sign_digest(digest, signer.hash)),
            "verifier": {"publicKey": {"rawBytes": b64(spki(signer.key.public_key()))},
                         "keyDetails": signer.key_details},
        },
    }}


CA_ = CA.create()
CASES = {
    "trusted": lambda: hashedrekord_v2(Signer.create(CA_, uri="https://ci.example/wf"), b"a"),
    "trusted-p384": lambda: hashedrekord_v2(Signer.create(CA_, "p384"), b"a"),
    "untrusted-self-signed": lambda: hashedrekord_v2(_self_signed_naming_alice(), b"a"),
    "other-ca": lambda: hashedrekord_v2(Signer.create(CA.create()), b"a"),
    "public-key": lambda: _with_public_key(Signer.create(CA_), b"a"),
    "no-san": lambda: hashedrekord_v2(Signer.create(CA_, email=None), b"a"),
}


def _proposed(case: str) -> tuple[Proposed, ParsedEntry]:
    proposed = propose_v2(CASES[case]())
    assert proposed.parsed is not None
    return proposed, proposed.parsed


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("trusting", [True, False])
def test_parsed_keys_are_the_body_keys(case: str, trusting: bool) -> None:
    proposed, parsed = _proposed(case)
    trusted = TrustedIssuers([CA_.cert]) if trusting else None
    body_keys = keys_for_body(proposed.body, trusted)
    assert keys_for_parsed(parsed, trusted) == body_keys
    assert body_keys[0].startswith("digest:")
    names = [k for k in body_keys if k.startswith(("email:", "uri:", "identity:"))]
    assert bool(names) == (trusting and case.startswith("trusted"))


def test_every_entry_is_path_validated_afresh() -> None:
    _, parsed = _proposed("trusted")
    trusted = CountingIssuers([CA_.cert])
    first, second = keys_for_parsed(parsed, trusted), keys_for_parsed(parsed, trusted)
    assert first == second
    assert trusted.checked == [parsed.certificate, parsed.certificate]


async def test_the_indexer_uses_what_the_writer_parsed() -> None:
    """Submitted with its parsed form, an entry is indexed without its body being read (here a
    body nothing could be derived from); without it, from the body."""
    storage = await open_storage("memory://")
    proposed, parsed = _proposed("trusted")
    indexer = SearchIndexer(None, storage.search_index, "rekor-v2",  # type: ignore[arg-type]
                            trusted=TrustedIssuers([CA_.cert]))
    indexer.submit(0, b"not a body", parsed)
    indexer.submit(1, proposed.body)
    await indexer.flush()
    assert await indexer.lookup([f"email:{EMAIL}"]) == [0, 1]
    await storage.close()  # type: ignore[attr-defined]


async def test_the_v2_write_path_hands_over_what_it_parsed() -> None:
    stack = await build_stack(trusted_cas=[CA_.cert])
    try:
        indexer = stack.v2.indexer
        assert indexer is not None
        submitted: list[ParsedEntry | None] = []
        submit = indexer.submit

        def spy(index: int, body: bytes, parsed: ParsedEntry | None = None) -> None:
            submitted.append(parsed)
            submit(index, body, parsed)

        indexer.submit = spy  # type: ignore[method-assign]
        signer = Signer.create(CA_)
        await stack.v2.create_entry(hashedrekord_v2(signer, b"wired"))
        assert len(submitted) == 1 and submitted[0] is not None
        assert submitted[0].certificate == signer.cert
        await indexer.flush()
        assert await indexer.lookup([f"email:{EMAIL}"]) == [1]
    finally:
        await stack.close()
