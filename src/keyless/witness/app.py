"""The witness's ASGI app and its configuration (``keyless witness serve``)."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware

from keyless.errors import ConfigError
from keyless.formats.vkey import VerifierKey, VkeyError
from keyless.http.errors import EXCEPTION_HANDLERS, CatchAllMiddleware
from keyless.witness.keys import load_keys
from keyless.witness.routes import routes
from keyless.witness.service import LogConfig, WitnessService
from keyless.witness.store import WitnessStore

DB_FILE = "witness.db"


def read_log_vkeys(config_file: Path | None, cli_vkeys: Sequence[str]) -> list[VerifierKey]:
    """The log vkeys of ``--log`` options and of the config file's ``[[logs]] vkey = "…"``."""
    texts = list(cli_vkeys)
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {config_file} does not exist") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from exc
        logs = data.pop("logs", [])
        if data:
            raise ConfigError(f"{config_file}: unknown section(s) {sorted(data)}")
        if not isinstance(logs, list):
            raise ConfigError(f"{config_file}: logs must be an array of tables ([[logs]])")
        for number, log in enumerate(logs, start=1):
            if not isinstance(log, dict) or set(log) != {"vkey"} or not isinstance(
                log["vkey"], str
            ):
                raise ConfigError(f"{config_file}: [[logs]] #{number} needs exactly vkey = \"…\"")
            texts.append(log["vkey"])
    vkeys = []
    for text in texts:
        try:
            vkeys.append(VerifierKey.parse(text.strip()))
        except VkeyError as exc:
            raise ConfigError(str(exc)) from exc
    if not vkeys:
        raise ConfigError("no log to witness: give --log VKEY or [[logs]] in --config")
    return vkeys


def build_service(
    data_dir: Path, vkeys: Sequence[VerifierKey], *, rate: float = 5.0
) -> WitnessService:
    """The witness service over ``DIR/witness-key`` and ``DIR/witness.db``."""
    cosigners = load_keys(data_dir)
    store = WitnessStore(data_dir / DB_FILE)
    logs = LogConfig.from_vkeys(vkeys)
    return WitnessService(store, cosigners, logs, rate=rate, burst=10 * rate)


def create_app(service: WitnessService) -> Starlette:
    return Starlette(
        routes=routes(service),
        middleware=[Middleware(CatchAllMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
