"""``[server] client_budget``: the refill rate of every per-client budget; 0 switches them off."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import Request

from keyless.errors import ConfigError
from keyless.http.budget import ClientBudget
from keyless.http.errors import TooManyRequests
from keyless.server.config import load_settings


def _request(host: str = "192.0.2.9") -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": [],
                    "client": (host, 1)})


def test_zero_switches_budgets_off() -> None:
    budget = ClientBudget.per_second(0)
    for _ in range(10_000):
        budget.admit(_request(), cost=100.0)
    budget.charge("192.0.2.9", 1e12)
    budget.admit(_request())


def test_a_rate_gives_a_two_second_burst() -> None:
    now = [0.0]
    budget = ClientBudget(burst=20.0, rate=10.0, clock=lambda: now[0])
    assert ClientBudget.per_second(10.0).balance("x") == 20.0
    for _ in range(20):
        budget.admit(_request())
    with pytest.raises(TooManyRequests, match="budget"):
        budget.admit(_request())
    now[0] += 1.0
    budget.admit(_request())


def test_negative_rates_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="negative"):
        ClientBudget.per_second(-1)
    config = tmp_path / "keyless.toml"
    config.write_text("[server]\nclient_budget = -5\n")
    with pytest.raises(ConfigError, match="client_budget"):
        load_settings(config_file=config, data_dir=tmp_path)
    config.write_text("[server]\nclient_budget = 0\n")
    assert load_settings(config_file=config, data_dir=tmp_path).client_budget == 0
