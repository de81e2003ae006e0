"""Fixtures of the OIDC integration tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from oidc_server import RunningProvider, serve_provider

from keyless.services.oidc import OidcProvider


@pytest.fixture
def provider_factory() -> Iterator[Callable[..., RunningProvider]]:
    """Start any number of independent providers: ``provider_factory(users=[...], ...)``."""
    with contextlib.ExitStack() as stack:

        def start(**kwargs: object) -> RunningProvider:
            return stack.enter_context(
                serve_provider(lambda issuer: OidcProvider(issuer, **kwargs))  # type: ignore[arg-type]
            )

        yield start
