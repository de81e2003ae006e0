"""Trust options from the environment, so a CI job configures keyless once.

=============================  ==========================  ==============================
variable                       option                      value
=============================  ==========================  ==============================
``KEYLESS_TRUST_CONFIG``       ``--trust-config FILE``     a ClientTrustConfig file
``KEYLESS_SERVER``             ``--server URL``            a keyless instance
``KEYLESS_ALLOW_INSECURE_HTTP`` ``--allow-insecure-http``  1/true/yes/on or 0/false/no/off
``KEYLESS_TUF_CACHE``          ``--tuf-cache DIR``         a directory
``KEYLESS_TUF_REFRESH_WINDOW`` ``--tuf-refresh-window S``  seconds
``KEYLESS_OFFLINE``            ``--offline`` (verify)      1/true/yes/on or 0/false/no/off
=============================  ==========================  ==============================

Precedence: a flag on the command line, then the variable, then the built-in default. Either of
``--trust-config`` / ``--server`` on the command line overrides both variables (they choose the
same thing); both variables set and neither flag given is a usage error, never a silent pick.
Empty variables count as unset. The identity token has its own variables
(``SIGSTORE_IDENTITY_TOKEN``, ``SIGSTORE_ID_TOKEN``; :mod:`keyless._cli.sign`). The ``--help``
text is ``keyless._cli.verify.ENVIRONMENT_HELP`` (this module is imported only when a command runs,
so that ``keyless verify --help`` starts as fast as before).
"""

from __future__ import annotations

import argparse
import os
from typing import NoReturn

__all__ = ["DEFAULT_REFRESH_WINDOW", "apply_trust_environment"]

DEFAULT_REFRESH_WINDOW = 24 * 3600.0


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _flag(args: argparse.Namespace, name: str) -> bool:
    value = _env(name)
    if value is None:
        return False
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    _usage(args, f"{name}={value[:40]!r} is not one of 1/true/yes/on or 0/false/no/off")


def _usage(args: argparse.Namespace, message: str) -> NoReturn:
    parser = getattr(args, "parser", None)
    if parser is not None:
        parser.error(message)
    from keyless.errors import ConfigError

    raise ConfigError(message)


def apply_trust_environment(args: argparse.Namespace) -> None:
    """Fill the trust options not given on the command line from ``KEYLESS_*`` (idempotent).

    Sets ``args.trust_source`` to where the trust choice came from: ``--trust-config``,
    ``--server``, ``KEYLESS_TRUST_CONFIG``, ``KEYLESS_SERVER`` or ``None`` (public good).
    """
    if getattr(args, "trust_environment_applied", False):
        return
    args.trust_environment_applied = True
    if args.trust_config is not None:
        args.trust_source = "--trust-config"
    elif args.server is not None:
        args.trust_source = "--server"
    else:
        config, server = _env("KEYLESS_TRUST_CONFIG"), _env("KEYLESS_SERVER")
        if config is not None and server is not None:
            _usage(
                args,
                "KEYLESS_TRUST_CONFIG and KEYLESS_SERVER are both set; unset one, or give "
                "--trust-config or --server",
            )
        args.trust_config, args.server = config, server
        args.trust_source = (
            "KEYLESS_TRUST_CONFIG" if config else "KEYLESS_SERVER" if server else None
        )
    if not args.allow_insecure_http:
        args.allow_insecure_http = _flag(args, "KEYLESS_ALLOW_INSECURE_HTTP")
    if args.tuf_cache is None:
        args.tuf_cache = _env("KEYLESS_TUF_CACHE")
    if args.tuf_refresh_window is None:
        window = _env("KEYLESS_TUF_REFRESH_WINDOW")
        args.tuf_refresh_window = DEFAULT_REFRESH_WINDOW
        if window is not None:
            try:
                args.tuf_refresh_window = float(window)
            except ValueError:
                args.tuf_refresh_window = -1.0
            if not args.tuf_refresh_window >= 0:  # also rejects nan
                _usage(args, f"KEYLESS_TUF_REFRESH_WINDOW={window[:40]!r} is not seconds >= 0")
    if hasattr(args, "offline") and not args.offline:
        args.offline = _flag(args, "KEYLESS_OFFLINE")
