"""The embedded provider under hostile or abusive use, over a real uvicorn (contracts.md §5).

Refusals carry ``{"code", "message"}`` (beside RFC 6749's ``error``/``error_description``), the
browser endpoints answer non-browser clients with JSON instead of HTML pages, and throttling is
429 with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from oidc_server import RunningProvider, provider_factory_fixture  # noqa: F401

from keyless.services.oidc.service import DEVICE_CODES_PER_MINUTE

pytestmark = pytest.mark.integration


class Clock:
    """A settable clock shared by the provider and the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_device_code_flood_is_throttled_with_retry_after(
    provider_factory: Callable[..., RunningProvider],
) -> None:
    clock = Clock()
    idp = provider_factory(clock=clock)
    with httpx.Client(timeout=10) as client:
        for _ in range(DEVICE_CODES_PER_MINUTE):
            ok = client.post(idp.issuer + "/device/code", data={"client_id": "sigstore"})
            assert ok.status_code == 200, ok.text
        refused = client.post(idp.issuer + "/device/code", data={"client_id": "sigstore"})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        body = refused.json()
        assert body["error"] == "temporarily_unavailable" and body["code"] == 429
        assert f"more than {DEVICE_CODES_PER_MINUTE} device codes a minute" in body["message"]
        clock.now += 61
        again = client.post(idp.issuer + "/device/code", data={"client_id": "sigstore"})
        assert again.status_code == 200, again.text


@pytest.mark.parametrize(
    ("method", "path", "data", "status", "fragment"),
    [
        ("GET", "/auth?client_id=nope", None, 400, "unknown client_id"),
        ("POST", "/auth", {"client_id": "sigstore"}, 400, "CSRF"),
        ("POST", "/device", {"user_code": "ABCD-EFGH"}, 400, "CSRF"),
        ("POST", "/token", {"grant_type": "password"}, 401, "client_id is required"),
        ("GET", "/userinfo", None, 401, "Authorization: Bearer"),
    ],
)
def test_refusals_are_json_for_scripts_and_html_for_browsers(
    provider_factory: Callable[..., RunningProvider],
    method: str,
    path: str,
    data: dict[str, str] | None,
    status: int,
    fragment: str,
) -> None:
    idp = provider_factory()
    with httpx.Client(timeout=10) as client:
        script = client.request(method, idp.issuer + path, data=data)
        assert script.status_code == status
        assert script.headers["content-type"].startswith("application/json")
        assert script.json()["code"] == status and fragment in script.json()["message"]
        if path.startswith(("/auth", "/device")):
            browser = client.request(
                method, idp.issuer + path, data=data, headers={"Accept": "text/html"}
            )
            assert browser.status_code == status
            assert browser.headers["content-type"].startswith("text/html")
            assert fragment in browser.text
