"""Two provider processes behind one public URL share codes and keys through storage.kv.

Each provider gets its own ``open_storage`` on the same SQLite database, as two
``keyless serve`` processes would: a code issued by one is redeemed at the other (once), a
device approved at one is polled at the other, and both publish the same keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_flows import auth_url, form_action, hidden_fields, pkce
from oidc_server import RunningProvider, serve_provider

from keyless.identity import IdentityVerifier, IssuerConfig
from keyless.services.oidc import OidcProvider, OidcUser
from keyless.storage import open_storage

pytestmark = pytest.mark.integration

PUBLIC = "http://keyless.lb.test/oidc"
GINA = OidcUser.parse("gina@example.com:gina-pw")
REDIRECT = "http://127.0.0.1:4321/auth/callback"


@contextlib.asynccontextmanager
async def two_processes(tmp_path: Path) -> AsyncIterator[tuple[RunningProvider, RunningProvider]]:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    storages = [await open_storage(url, data_dir=tmp_path), await open_storage(url)]
    try:
        with contextlib.ExitStack() as stack:
            a, b = (
                stack.enter_context(
                    serve_provider(
                        lambda _issuer, s=s: OidcProvider(  # type: ignore[misc]
                            PUBLIC, users=[GINA], kv=s.kv, device_interval=1
                        )
                    )
                )
                for s in storages
            )
            yield a, b
    finally:
        for storage in storages:
            await storage.close()


async def test_codes_devices_and_keys_are_shared(tmp_path: Path) -> None:
    async with two_processes(tmp_path) as (a, b):
        a_url, b_url = a.base + "/oidc", b.base + "/oidc"
        async with httpx.AsyncClient() as client:
            assert (await client.get(a_url + "/jwks")).json() == (
                await client.get(b_url + "/jwks")
            ).json()

            verifier_code, challenge = pkce()
            page = await client.get(auth_url(a_url, REDIRECT, challenge))
            data = {
                **hidden_fields(page.text),
                "username": "gina@example.com",
                "password": "gina-pw",
            }
            redirect = await client.post(
                form_action(a.base, page.text),
                data=data,
                headers={"Origin": "http://keyless.lb.test"},
            )
            assert redirect.status_code == 303, redirect.text
            code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
            exchange = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier_code,
            }
            at_b = await client.post(b_url + "/token", data=exchange, auth=("sigstore", ""))
            assert at_b.status_code == 200, at_b.text
            again_at_a = await client.post(a_url + "/token", data=exchange, auth=("sigstore", ""))
            assert again_at_a.json()["error"] == "invalid_grant"

            grant = (
                await client.post(a_url + "/device/code", data={"client_id": "sigstore"})
            ).json()
            page = await client.get(b_url + "/device")
            data = {
                **hidden_fields(page.text),
                "user_code": grant["user_code"],
                "username": "gina@example.com",
                "password": "gina-pw",
            }
            approved = await client.post(
                form_action(b.base, page.text),
                data=data,
                headers={"Origin": "http://keyless.lb.test"},
            )
            assert approved.status_code == 200, approved.text
            polled = await client.post(
                a_url + "/token",
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                    "device_code": grant["device_code"],
                    "client_id": "sigstore",
                },
            )
            assert polled.status_code == 200, polled.text

        verifier = IdentityVerifier(
            [IssuerConfig(PUBLIC)], httpx.AsyncClient(), local_jwks=b.provider.local_jwks()
        )
        for token in (at_b.json()["id_token"], polled.json()["id_token"]):
            assert (await verifier.verify(token)).subject_alternative_name == "gina@example.com"
