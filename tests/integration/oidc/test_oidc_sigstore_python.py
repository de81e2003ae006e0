"""sigstore-python 4.5.1's own OAuth code (interop.md §3.1) against the embedded provider.

``Issuer(url).identity_token(force_oob=True)`` is what ``sigstore sign --oauth-force-oob`` runs:
it prints the authorization URL to stderr, reads the code from stdin, redeems it with HTTP
Basic (``sigstore``, empty secret) and PKCE, and takes the JWT from ``access_token``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from oidc_flows import form_action, hidden_fields, verifier_for
from oidc_server import RunningProvider, provider_factory_fixture  # noqa: F401

from keyless.services.oidc import OidcUser

pytestmark = pytest.mark.integration

ERIN = OidcUser.parse("erin@example.com:open-sesame")
SCRIPT = """
import sys
from sigstore.oidc import Issuer
token = Issuer(sys.argv[1]).identity_token(force_oob=True)
print("", "RESULT", token.identity, token.issuer, token._raw_token, sep="\\n")
"""


async def test_sigstore_python_oob_flow(
    provider_factory: Callable[..., RunningProvider], sigstore_python: Path
) -> None:
    idp = provider_factory(users=[ERIN])
    python = sigstore_python.parent / "python"
    process = subprocess.Popen(
        [str(python), "-c", SCRIPT, idp.issuer],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None and process.stdin is not None
        url = ""
        for line in process.stderr:
            if line.strip().startswith(idp.issuer + "/auth?"):
                url = line.strip()
                break
        assert url, "sigstore-python printed no authorization URL"
        assert "redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob" in url
        async with httpx.AsyncClient() as browser:
            page = await browser.get(url)
            assert page.status_code == 200, page.text
            data = {
                **hidden_fields(page.text),
                "username": "erin@example.com",
                "password": "open-sesame",
            }
            shown = await browser.post(
                form_action(idp.base, page.text), data=data, headers={"Origin": idp.base}
            )
        code = re.search(r"<p class=code id=code>([^<]+)</p>", shown.text)
        assert code, shown.text
        stdout, stderr = process.communicate(code.group(1) + "\n", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    identity, issuer, raw = stdout.split("\nRESULT\n", 1)[1].split()
    assert (identity, issuer) == ("erin@example.com", idp.issuer)
    verified = await verifier_for(*idp.provider.issuer_configs()).verify(raw)
    assert verified.subject_alternative_name == "erin@example.com"
