"""The settings of one ``keyless serve`` process (contracts.md §2).

Values come from three places, later ones winning: built-in defaults, the TOML config file
(``DIR/keyless.toml`` — written on first start — or ``--config FILE``), and command-line options.
Every field of the config file is documented in
:data:`keyless.server.config_template.CONFIG_TEMPLATE`, which is also what the first start writes,
so the file a user opens explains itself.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from keyless.errors import ConfigError
from keyless.http.admission import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_REQUESTS
from keyless.identity.config import IssuerConfig
from keyless.server.witnessing import WitnessingSettings, read_witnessing

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000
CONFIG_FILE_NAME = "keyless.toml"


def default_data_dir() -> Path:
    """The per-user data directory (``~/.local/share/keyless`` on Linux), via platformdirs."""
    import platformdirs

    return Path(platformdirs.user_data_dir("keyless", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Everything a stack needs to start; the config template
    (:mod:`keyless.server.config_template`) explains each field."""

    data_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    public_url: str = ""
    database_url: str = ""
    config_file: Path | None = None
    oidc_users: dict[str, str] = field(default_factory=dict)
    #: users whose config entry gives an scrypt ``password_hash`` instead of a password
    oidc_user_hashes: dict[str, str] = field(default_factory=dict)
    issuers: tuple[IssuerConfig, ...] = ()
    #: OAuth clients of the embedded provider ([[oidc_clients]]; OidcClient objects)
    oidc_clients: tuple[Any, ...] = ()
    #: [[oidc_users]] totp_secret: email → base32 TOTP secret (a second factor for that user)
    oidc_totp_secrets: dict[str, str] = field(default_factory=dict)
    #: [oidc] password_grant: whether the token endpoint takes the OAuth password grant
    oidc_password_grant: bool = True
    #: [oidc] require_second_factor: users without one must enrol (P/oidc/account) first
    oidc_require_second_factor: bool = False
    #: [oidc] webauthn_user_verification: preferred, required or discouraged
    oidc_webauthn_user_verification: str = "preferred"
    #: [[oidc_upstreams]]: company providers offered as "Sign in with NAME" (Upstream objects)
    oidc_upstreams: tuple[Any, ...] = ()
    log_level: str = "info"
    log_format: str = "json"
    #: days of validity of the TUF timestamp, snapshot, targets and root metadata
    tuf_timestamp_days: int = 1
    tuf_snapshot_days: int = 7
    tuf_targets_days: int = 90
    tuf_root_days: int = 365
    #: how long graceful shutdown waits for in-flight writes (seconds)
    shutdown_grace: float = 10.0
    #: addresses whose X-Forwarded-For / X-Forwarded-Proto are believed (reverse proxies,
    #: comma-separated; "*" for any): per-client throttles then see the real client address
    trusted_proxies: str = "127.0.0.1"
    #: work units (about a millisecond of CPU each) per second that one client address may spend
    #: on the expensive anonymous endpoints (server/budget.py); 0 switches budgets off
    client_budget: float = 250.0
    #: processes serving the port (``[server] workers``; ``--workers`` wins); 0: one per usable
    #: core (keyless.server.workers); 1: the ``keyless serve`` process serves by itself
    workers: int = 0
    #: writes (and, apart, reads) one process answers at a time, and the body bytes they declare;
    #: beyond either, 503 + Retry-After at once (keyless.http.admission); 0 switches one off
    max_requests_in_flight: int = DEFAULT_MAX_REQUESTS
    max_body_bytes_in_flight: int = DEFAULT_MAX_BODY_BYTES
    #: the TSA's clock guard ([tsa]): NTP servers to compare with, allowed drift, strictness
    tsa_ntp_servers: tuple[str, ...] = ()
    tsa_max_drift: float = 0.5
    tsa_require_ntp: bool = False
    #: [ca] token_replay_guard: an identity token obtains a certificate for one key only
    ca_token_replay_guard: bool = True
    #: [ca] operator-supplied issuing CA: chain + key PEM files, or a PKCS#11 key (RFC 7512 URI)
    ca_chain_pem: Path | None = None
    ca_key_pem: Path | None = None
    ca_pkcs11_uri: str = ""
    #: name of the environment variable holding the passphrase of an encrypted CA key
    ca_key_password_env: str = ""
    #: the key-encryption key file (--kek-file, KEYLESS_KEK_FILE, [server] kek_file); required
    #: on PostgreSQL, DIR/keys/kek by default on SQLite (keyless.server.kek)
    kek_file: Path | None = None
    #: [[witnesses]] and [witnessing]: who cosigns the Rekor v2 checkpoints (docs/witnessing.md)
    witnessing: WitnessingSettings = field(default_factory=WitnessingSettings)

    def __post_init__(self) -> None:
        if not self.public_url:
            object.__setattr__(self, "public_url", f"http://localhost:{self.port}")
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        if not self.database_url:
            db = (self.data_dir / "keyless.db").resolve()
            object.__setattr__(self, "database_url", f"sqlite:///{db}")
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"public URL {self.public_url!r} must be an http(s) URL with a host")
        if parts.path not in ("", "/"):
            # interop.md §5 item 10: sigstore-python drops any path prefix of the CA URL.
            raise ConfigError(
                f"public URL {self.public_url!r} must not have a path: Sigstore clients "
                "expect the CA API at the root of the host"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range")

    @property
    def public_host(self) -> str:
        """``host[:port]`` of the public URL: the checkpoint signer name (interop.md §5 item 8)."""
        return urlsplit(self.public_url).netloc

    @property
    def oidc_issuer(self) -> str:
        """The embedded OpenID Connect provider's issuer URL (contracts.md §2)."""
        return f"{self.public_url}/oidc"

    @property
    def is_postgres(self) -> bool:
        """Whether the store is shared PostgreSQL (several processes may then run)."""
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def default_config_file(self) -> Path:
        """Where the first start writes the documented config file."""
        return self.data_dir / CONFIG_FILE_NAME


def parse_oidc_user(spec: str) -> tuple[str, str]:
    """Split ``EMAIL:PASSWORD`` (the password may itself contain ``:``)."""
    email, sep, password = spec.partition(":")
    if not sep or "@" not in email or not password:
        # never echo the spec: it holds a password
        raise ConfigError(f"--oidc-user {email!r}:… must look like EMAIL:PASSWORD")
    return email, password


#: the environment variable that may hold OIDC users, one ``EMAIL:PASSWORD`` (or
#: ``EMAIL:scrypt$…`` hash) per line
OIDC_USERS_ENV = "KEYLESS_OIDC_USERS"


def parse_oidc_user_lines(text: str, where: str) -> tuple[dict[str, str], dict[str, str]]:
    """``(passwords, hashes)`` by email from lines ``EMAIL:PASSWORD`` or ``EMAIL:scrypt$…``;
    blank lines and ``#`` comments are skipped. Errors name the line, never its secret."""
    from keyless.services.oidc.accounts import check_hash_format

    passwords: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        email, sep, secret = line.partition(":")
        if not sep or "@" not in email or not secret:
            raise ConfigError(f"{where} line {number} must look like EMAIL:PASSWORD")
        if secret.startswith("scrypt$"):
            try:
                check_hash_format(secret)
            except ConfigError as exc:
                raise ConfigError(f"{where} line {number}: {exc}") from None
            hashes[email] = secret
            passwords.pop(email, None)
        else:
            passwords[email] = secret
            hashes.pop(email, None)
    return passwords, hashes


def read_oidc_user_file(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The users of ``--oidc-user-file``; a file that group or others may read is refused."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ConfigError(f"--oidc-user-file {path}: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if mode & 0o077:
            raise ConfigError(
                f"--oidc-user-file {path} is readable by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run chmod 600 {path}"
            )
        with os.fdopen(os.dup(fd), encoding="utf-8") as handle:
            text = handle.read()
    finally:
        os.close(fd)
    return parse_oidc_user_lines(text, f"--oidc-user-file {path}")


def _expect(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: {key!r} must be a {kind.__name__}, not {value!r}")
    return value


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse and check a config file; the keys are those of the config template."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    out: dict[str, Any] = {}
    where = str(path)
    server = data.pop("server", {})
    if not isinstance(server, dict):
        raise ConfigError(f"{where}: [server] must be a table")
    known: dict[str, type | tuple[type, ...]] = {
        "data_dir": str, "host": str, "port": int, "public_url": str, "database": str,
        "log_level": str, "log_format": str, "shutdown_grace": (int, float),
        "trusted_proxies": str, "kek_file": str, "client_budget": (int, float),
        "workers": int, "max_requests_in_flight": int, "max_body_bytes_in_flight": int,
    }
    for key, value in server.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key [server].{key}")
        kind = known[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{where}: [server].{key} has the wrong type: {value!r}")
        out["database_url" if key == "database" else key] = value
    for key in ("client_budget", "max_requests_in_flight", "max_body_bytes_in_flight"):
        if out.get(key, 0) < 0:
            raise ConfigError(f"{where}: [server].{key} must be 0 (off) or positive")
    if out.get("workers", 0) < 0:
        raise ConfigError(f"{where}: [server].workers must be 0 (one per core) or positive")
    for key in ("data_dir", "kek_file"):
        if key in out:
            out[key] = Path(out[key]).expanduser()
    tuf = data.pop("tuf", {})
    for key in ("timestamp_days", "snapshot_days", "targets_days", "root_days"):
        if key in tuf:
            out[f"tuf_{key}"] = _expect(tuf, key, int, f"{where} [tuf]")
    if set(tuf) - {"timestamp_days", "snapshot_days", "targets_days", "root_days"}:
        raise ConfigError(f"{where}: unknown key in [tuf]: {sorted(tuf)}")
    out.update(_read_tsa_table(data.pop("tsa", {}), where))
    out.update(_read_ca_table(data.pop("ca", {}), where))
    if not isinstance(data.get("oidc_users", []), list):
        raise ConfigError(f"{where}: oidc_users must be an array of tables")
    users = data.pop("oidc_users", [])
    parsed_users: dict[str, str] = {}
    parsed_hashes: dict[str, str] = {}
    totp_secrets: dict[str, str] = {}
    for user in users:
        if not isinstance(user, dict) or set(user) - {"totp_secret"} not in (
            {"email", "password"},
            {"email", "password_hash"},
        ):
            raise ConfigError(
                f"{where}: each [[oidc_users]] needs email and either password or password_hash "
                "(and may have totp_secret)"
            )
        if "totp_secret" in user:
            secret = user["totp_secret"]
            if not isinstance(secret, str):
                raise ConfigError(f"{where}: [[oidc_users]] totp_secret must be a base32 string")
            from keyless.services.oidc.totp import check_secret

            totp_secrets[str(user["email"])] = check_secret(
                secret, f"{where}: [[oidc_users]] {user['email']}")
        user = {k: v for k, v in user.items() if k != "totp_secret"}  # noqa: PLW2901
        if "password_hash" in user:
            from keyless.services.oidc.accounts import OidcUser

            checked = OidcUser.from_mapping(user)  # email and scrypt hash format
            parsed_hashes[checked.email] = checked.password_hash
        else:
            parsed_users[str(user["email"])] = str(user["password"])
    out["oidc_users"] = parsed_users
    out["oidc_user_hashes"] = parsed_hashes
    out["oidc_totp_secrets"] = totp_secrets
    oidc = data.pop("oidc", {})
    if not isinstance(oidc, dict) or set(oidc) - {
        "password_grant", "require_second_factor", "webauthn_user_verification"
    }:
        raise ConfigError(f"{where}: [oidc] takes password_grant, require_second_factor "
                          "(true or false) and webauthn_user_verification")
    if "webauthn_user_verification" in oidc:
        value = _expect(oidc, "webauthn_user_verification", str, f"{where} [oidc]")
        if value not in ("preferred", "required", "discouraged"):
            raise ConfigError(f"{where}: [oidc] webauthn_user_verification must be preferred, "
                              "required or discouraged")
        out["oidc_webauthn_user_verification"] = value
    for key in ("password_grant", "require_second_factor"):
        if key in oidc:
            out[f"oidc_{key}"] = _expect(oidc, key, bool, f"{where} [oidc]")
    issuers: list[IssuerConfig] = []
    for issuer in data.pop("issuers", []):
        if not isinstance(issuer, dict):
            raise ConfigError(f"{where}: each [[issuers]] must be a table")
        issuers.append(IssuerConfig.from_mapping(issuer))
    out["issuers"] = tuple(issuers)
    from keyless.services.oidc.accounts import OidcClient

    clients = data.pop("oidc_clients", [])
    if not isinstance(clients, list) or not all(isinstance(c, dict) for c in clients):
        raise ConfigError(f"{where}: oidc_clients must be an array of tables")
    out["oidc_clients"] = tuple(OidcClient.from_mapping(c) for c in clients)
    out["witnessing"] = read_witnessing(
        data.pop("witnesses", []), data.pop("witnessing", {}), where
    )
    from keyless.services.oidc.upstream import Upstream

    upstreams = data.pop("oidc_upstreams", [])
    if not isinstance(upstreams, list) or not all(isinstance(u, dict) for u in upstreams):
        raise ConfigError(f"{where}: oidc_upstreams must be an array of tables")
    out["oidc_upstreams"] = tuple(Upstream.from_mapping(u) for u in upstreams)
    if len({u.name for u in out["oidc_upstreams"]}) != len(upstreams):
        raise ConfigError(f"{where}: two [[oidc_upstreams]] have the same name")
    if data:
        raise ConfigError(f"{where}: unknown section(s) {sorted(data)}")
    return out


_CA_KEYS = ("token_replay_guard", "chain_pem", "key_pem", "pkcs11_uri", "key_password_env")


def _read_ca_table(ca: Any, where: str) -> dict[str, Any]:
    """The ``[ca]`` table: the replay guard and where the issuing CA comes from (issue 5 §3)."""
    if not isinstance(ca, dict):
        raise ConfigError(f"{where}: [ca] must be a table")
    unknown = set(ca) - set(_CA_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key in [ca]: {sorted(unknown)} (known: {_CA_KEYS})")
    out: dict[str, Any] = {}
    if "token_replay_guard" in ca:
        out["ca_token_replay_guard"] = _expect(ca, "token_replay_guard", bool, f"{where} [ca]")
    for key in ("chain_pem", "key_pem"):
        if key in ca:
            out[f"ca_{key}"] = Path(_expect(ca, key, str, f"{where} [ca]")).expanduser()
    for key in ("pkcs11_uri", "key_password_env"):
        if key in ca:
            out[f"ca_{key}"] = _expect(ca, key, str, f"{where} [ca]")
    if ("ca_chain_pem" in out) != ("ca_key_pem" in out):
        raise ConfigError(f"{where}: [ca] chain_pem and key_pem go together")
    if "ca_chain_pem" in out and out.get("ca_pkcs11_uri"):
        raise ConfigError(f"{where}: [ca] takes PEM files or a pkcs11_uri, not both")
    return out


def _read_tsa_table(tsa: Any, where: str) -> dict[str, Any]:
    """The ``[tsa]`` table: the clock guard of the timestamp authority (issue 6 §3)."""
    if not isinstance(tsa, dict):
        raise ConfigError(f"{where}: [tsa] must be a table")
    unknown = set(tsa) - {"ntp_servers", "max_drift", "require_ntp"}
    if unknown:
        raise ConfigError(f"{where}: unknown key in [tsa]: {sorted(unknown)}")
    out: dict[str, Any] = {}
    if "ntp_servers" in tsa:
        servers = tsa["ntp_servers"]
        if not isinstance(servers, list) or not all(isinstance(x, str) for x in servers):
            raise ConfigError(f"{where}: [tsa].ntp_servers must be an array of strings")
        out["tsa_ntp_servers"] = tuple(servers)
    if "max_drift" in tsa:
        drift = tsa["max_drift"]
        if isinstance(drift, bool) or not isinstance(drift, int | float) or not 0 < drift <= 0.5:
            raise ConfigError(
                f"{where}: [tsa].max_drift must be in (0, 0.5] seconds: tokens claim 1 s "
                "accuracy, of which 0.5 s is genTime rounding"
            )
        out["tsa_max_drift"] = float(drift)
    if "require_ntp" in tsa:
        out["tsa_require_ntp"] = _expect(tsa, "require_ntp", bool, f"{where} [tsa]")
    return out


def load_settings(
    *,
    data_dir: Path | None = None,
    config_file: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    public_url: str | None = None,
    database_url: str | None = None,
    oidc_users: list[str] | None = None,
    oidc_user_file: Path | None = None,
    oidc_users_env: str | None = None,
    kek_file: Path | None = None,
) -> Settings:
    """Merge defaults, the config file and command-line values (CLI wins) into :class:`Settings`.

    OIDC users are merged in this order, later ones winning per email: the config file, the
    ``KEYLESS_OIDC_USERS`` lines (``oidc_users_env``), ``--oidc-user-file``, ``--oidc-user``.
    ``kek_file`` (``--kek-file`` or ``KEYLESS_KEK_FILE``) wins over ``[server] kek_file``.

    Without ``--config`` the file ``DIR/keyless.toml`` is read when it exists, so that edits an
    operator makes there take effect on the next start.
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        file_values = read_config_file(config_file)
    directory = data_dir or file_values.pop("data_dir", None) or default_data_dir()
    file_values.pop("data_dir", None)
    directory = Path(directory).expanduser().resolve()
    if config_file is None and (directory / CONFIG_FILE_NAME).is_file():
        config_file = directory / CONFIG_FILE_NAME
        file_values = read_config_file(config_file)
        file_values.pop("data_dir", None)
    settings = Settings(data_dir=directory, config_file=config_file, **file_values)
    users = dict(settings.oidc_users)
    hashes = dict(settings.oidc_user_hashes)

    def merge(passwords: dict[str, str], hashed: dict[str, str]) -> None:
        for email, password in passwords.items():
            users[email] = password
            hashes.pop(email, None)
        for email, value in hashed.items():
            hashes[email] = value
            users.pop(email, None)

    if oidc_users_env:
        merge(*parse_oidc_user_lines(oidc_users_env, OIDC_USERS_ENV))
    if oidc_user_file is not None:
        merge(*read_oidc_user_file(oidc_user_file))
    merge(dict(parse_oidc_user(spec) for spec in oidc_users or []), {})
    overrides: dict[str, Any] = {"oidc_users": users, "oidc_user_hashes": hashes}
    if kek_file is not None:
        overrides["kek_file"] = kek_file.expanduser()
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
        if public_url is None and "public_url" not in file_values:
            overrides["public_url"] = ""
    if public_url is not None:
        overrides["public_url"] = public_url
    if database_url is not None:
        overrides["database_url"] = database_url
    if "database_url" not in file_values and database_url is None:
        overrides["database_url"] = ""
    return replace(settings, **overrides)
