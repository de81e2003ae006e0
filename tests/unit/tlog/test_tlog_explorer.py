"""The explorer's service over real Rekor v1/v2 services (memory storage): query classes,
paging across logs, and a proof that does not match the checkpoint shown as not verified."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tlog_support import CA, Signer, build_stack, hashedrekord_v1, hashedrekord_v2

from keyless.errors import InvalidInput
from keyless.services.explorer.query import MAX_QUERY, parse_query
from keyless.services.explorer.service import ExplorerService, _proof_view

HEX = "ab" * 32


@pytest.mark.parametrize(
    ("text", "kind", "keys"),
    [
        ("Alice@Example.com", "identity", ("email:alice@example.com",)),
        ("https://github.com/o/r/.github/workflows/w.yml@refs/heads/main", "identity",
         ("uri:https://github.com/o/r/.github/workflows/w.yml@refs/heads/main",)),
        (f"sha256:{HEX}", "digest", (f"digest:sha256:{HEX}", f"key:sha256:{HEX}")),
        (f"  {HEX.upper()} ", "digest", (f"digest:sha256:{HEX}", f"key:sha256:{HEX}")),
        ("sha512:" + "cd" * 64, "digest", ("digest:sha512:" + "cd" * 64,)),
        (f"key:sha256:{HEX}", "fingerprint", (f"key:sha256:{HEX}",)),
        ("42", "index", ()),
    ],
)
def test_queries_are_classified(text: str, kind: str, keys: tuple[str, ...]) -> None:
    query = parse_query(text)
    assert (query.kind, query.keys) == (kind, keys)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "x" * (MAX_QUERY + 1), "a\x00@b", "a\u0085@b", "sha256:zz", "sha256:" + "a" * 63,
     "key:sha256:12", "9" * 30, "two words", "nothing-recognisable", "١٢٣"],
)
def test_unusable_queries_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_query(text)


async def test_results_page_across_both_logs_newest_first() -> None:
    ca = CA.create()
    stack = await build_stack(trusted_cas=[ca.cert])
    try:
        signer = Signer.create(ca)
        for i in range(3):
            await stack.v2.create_entry(hashedrekord_v2(signer, b"v2-%d" % i))
            await stack.v1.create_entry(hashedrekord_v1(signer, b"v1-%d" % i))
        for service in (stack.v1, stack.v2):
            await service.indexer.flush()
        chain = [("test", [ca.cert.public_bytes(serialization.Encoding.DER)])]
        explorer = ExplorerService(tlogs=[("http://x", stack.v1), ("http://x/rekor", stack.v2)],
                                   ctlog=None, public_url="http://x", ca_chains=chain,
                                   page_size=4)
        san = signer.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        email = san.value.get_values_for_type(x509.RFC822Name)[0]
        first = await explorer.search(email, 1)
        second = await explorer.search(email, 2)
        assert (first.total, first.pages, len(first.rows), len(second.rows)) == (6, 2, 4, 2)
        rows = first.rows + second.rows
        assert [r.log for r in rows] == ["rekor-v1"] * 3 + ["rekor-v2"] * 3
        assert [r.index for r in rows[:3]] == sorted((r.index for r in rows[:3]), reverse=True)
        assert all(r.trusted and r.identity == email for r in rows)
        assert (await explorer.search(email, 3)).rows == []
        with pytest.raises(InvalidInput):
            await explorer.search(email, 0)
        entry = await explorer.entry("rekor-v2", rows[3].index)
        assert entry.proof.verified and entry.summary is not None
    finally:
        await stack.close()


def test_a_proof_that_does_not_reach_the_checkpoint_root_is_not_verified() -> None:
    leaf, sibling = b"\x01" * 32, b"\x02" * 32
    checkpoint = b"origin\n2\n" + base64.b64encode(b"\x03" * 32) + b"\n\n- sig\n"
    view = _proof_view(leaf, 0, 2, [sibling], root=b"\x03" * 32, checkpoint=checkpoint)
    assert not view.verified and "root" in view.problem.lower()


async def test_searches_spend_the_clients_budget_and_429_when_it_is_gone() -> None:
    import httpx
    from starlette.applications import Starlette

    from keyless.http.budget import ClientBudget
    from keyless.services.explorer.routes import routes

    ca = CA.create()
    stack = await build_stack(trusted_cas=[ca.cert])
    try:
        signer = Signer.create(ca)
        for i in range(4):
            await stack.v2.create_entry(hashedrekord_v2(signer, b"v2-%d" % i))
        await stack.v2.indexer.flush()
        chain = [("test", [ca.cert.public_bytes(serialization.Encoding.DER)])]
        explorer = ExplorerService(tlogs=[("http://x/rekor", stack.v2)], ctlog=None,
                                   public_url="http://x", ca_chains=chain)
        app = Starlette(routes=routes(explorer, ClientBudget(burst=20, rate=0.001)))
        san = signer.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        email = san.value.get_values_for_type(x509.RFC822Name)[0]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            statuses = [(await client.get("/", params={"q": email})).status_code
                        for _ in range(4)]
            assert statuses[:2] == [200, 200] and statuses[-1] == 429, statuses
            refused = await client.get("/", params={"q": email})
            assert int(refused.headers["retry-after"]) >= 1
            assert "Too many requests" in refused.text
            assert "default-src 'none'" in refused.headers["content-security-policy"]
    finally:
        await stack.close()
