"""The documented ``keyless.toml`` that the first start writes (every field of
:mod:`keyless.server.config`, commented, so that the file a user opens explains itself)."""

from __future__ import annotations

from keyless.server.config import Settings

CONFIG_TEMPLATE = '''\
# keyless serve — configuration file (TOML).
#
# Written on the first start of `keyless serve` into the data directory. Values given on the
# command line win over this file; every key is optional and shows its default here.

[server]
# Address to listen on. 127.0.0.1 keeps the stack private to this machine; use 0.0.0.0
# behind a reverse proxy or load balancer.
{c_host}host = "{host}"
# TCP port of the one HTTP listener that serves every service.
{c_port}port = {port}
# The URL clients use to reach this stack, without a path and without a trailing slash.
# It is written into the trusted root, the signing config, the OIDC issuer
# (<public_url>/oidc) and the log checkpoint names, so it must not change once clients
# trust this instance (changing it means publishing new trust material through TUF).
# Default: http://localhost:<port>.
{c_public_url}public_url = "{public_url}"
# The store: "sqlite:///<path>" (default: <data dir>/keyless.db, one process) or
# "postgresql://user:password@host/db" (several `keyless serve` processes may share it).
{c_database}database = "{database}"
# The key-encryption key file that wraps the private keys kept in the database (required with
# PostgreSQL: give every process the same file; created 0600 if absent; back it up apart from
# the database). Default on SQLite: <data dir>/keys/kek. --kek-file / KEYLESS_KEK_FILE win.
# kek_file = "/etc/keyless/kek"
# Log verbosity: debug, info, warning, error. Logs go to stderr.
log_level = "info"
# "json" (one JSON object per line, for log collectors) or "text".
log_format = "json"
# Seconds that a graceful shutdown (SIGTERM/SIGINT) waits for in-flight writes to finish.
shutdown_grace = 10.0
# Reverse proxies / load balancers whose X-Forwarded-For header is believed (comma-separated
# addresses, or "*"), so that per-client limits (OIDC login, device codes) see real clients.
trusted_proxies = "127.0.0.1"
# Work units (about a millisecond of server CPU each) per second that one client address may
# spend on the expensive anonymous endpoints: log writes, lookups and searches, CT add-chain,
# the CA's signing endpoints and the TSA. Twice this is the burst; 429 + Retry-After beyond.
# 0 switches these budgets off (e.g. behind a proxy that limits clients itself).
client_budget = 250
# Writes this process answers at a time (and, counted apart, reads), and the request-body
# bytes (by Content-Length; a chunked body counts as 4 MiB) they may hold. Beyond either bound
# a request is answered at once with 503 + Retry-After instead of waiting in a queue, so memory
# and latency stay bounded under overload; /healthz and /metrics are always answered. The
# bounds are per process: with --workers N, the whole server admits N times as much. 0
# switches a bound off.
max_requests_in_flight = 1024
max_body_bytes_in_flight = 33554432
# Processes serving the port, each running every service (keyless serve --workers N wins):
# 0 starts one per usable core; 1 serves in the keyless serve process itself. Sequencing stays
# once per log (each batch is sequenced under the database's lock), on SQLite and PostgreSQL.
# Client budgets and overload limits above apply per process.
workers = 0

[tuf]
# Validity of the TUF metadata served under /tuf/, in days. The server re-signs timestamp
# and snapshot before they expire; root and targets are re-signed on start when needed.
timestamp_days = 1
snapshot_days = 7
targets_days = 90
root_days = 365

[ca]
# A token obtains a certificate for one key only: replaying it within its lifetime for
# another key is refused (401). Retrying with the same key returns the same certificate.
# Fulcio leaves this open (upstream issue #975); set false to allow one token, many keys.
token_replay_guard = true
# The issuing CA. By default a root (P-384) and an intermediate (P-256) are generated in
# <data dir>/keys on first start. To use your own, give either
#   chain_pem = "/etc/keyless/ca-chain.pem"   # issuing certificate first, root last
#   key_pem   = "/etc/keyless/ca-key.pem"     # the issuing certificate's private key
# or an issuing key held in an HSM (RFC 7512 URI; keyless makes the certificates around it):
#   pkcs11_uri = "pkcs11:token=keyless;object=ca?pin-value=1234&module-path=/usr/lib/soft…"
#   (module-path: the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)
# An encrypted key_pem (or root key) is opened with the passphrase in this environment variable:
#   key_password_env = "KEYLESS_CA_PASSWORD"

[tsa]
# The timestamp authority refuses to sign (503 + Retry-After) rather than sign a wrong time.
# Offline it watches for wall-clock steps against the monotonic clock; with NTP servers
# ("host", "host:port" or "[v6]:port") it also compares the clock with their median offset.
ntp_servers = []
# Largest allowed |offset| from NTP, in seconds. Tokens claim 1 s accuracy, which covers
# 0.5 s of rounding plus this drift, so values above 0.5 are refused.
max_drift = 0.5
# Refuse to sign when none of the NTP servers answers (default: fall back to the offline check).
require_ntp = false

# Witnesses (C2SP tlog-witness) that cosign the Rekor v2 checkpoints, e.g. `keyless witness
# serve` run by others. With witnesses listed, a checkpoint is published (in tiles and in the
# inclusion proofs of new entries) only once `quorum` of them cosigned it; until then writes
# get 503 + Retry-After and the last witnessed checkpoint stays served (docs/witnessing.md).
# [[witnesses]]
# url = "http://witness.example:7380"          # its submission prefix
# vkey = "witness.example+1a2b3c4d+BK…"       # printed by `keyless witness init`
# [witnessing]
# quorum = 1          # default: every witness listed
# timeout = 5.0       # seconds per witness request
# interval = 0.25     # seconds at least between two checkpoints sent (witnesses rate-limit)
# fail_open = false   # true publishes without the quorum (explicitly weaker)

# Users of the embedded OpenID Connect provider (issuer <public_url>/oidc). They obtain
# identity tokens with the OAuth 2.0 password grant (contracts.md §3). Repeat the table
# for each user; `--oidc-user-file FILE` (lines EMAIL:PASSWORD or EMAIL:<scrypt hash>, mode
# 0600) and the KEYLESS_OIDC_USERS environment variable (same lines) add more.
# [[oidc_users]]
# email = "alice@example.com"
# password = "change-me"
# (or, to keep the password out of this file, its scrypt hash:
#  password_hash = "scrypt$16384$8$1$<salt>$<hash>", made with `keyless admin hash-password`)
# totp_secret = "BASE32..."   # optional second factor: every sign-in of this user then needs
#                             # a current one-time code (RFC 6238) from an authenticator app;
#                             # the password grant takes it in the form field `otp`

# [oidc]
# The OAuth password grant lets scripts trade email + password (+ `otp`) for a token.
# OAuth's current best practice (RFC 9700) advises against it; turn it off to allow only the
# browser flows (code + PKCE, device):
# password_grant = false
# Send every user without a second factor to set one up (<public_url>/oidc/account: a TOTP
# app, scanned from a QR code, plus recovery codes) before they can sign in:
# require_second_factor = true
# Security keys and passkeys (registered at <public_url>/oidc/account/keys): whether the
# authenticator must verify the user (PIN, biometrics): preferred, required or discouraged.
# webauthn_user_verification = "preferred"

# Company single sign-on: the login page offers "Sign in with <display_name>"; keyless runs
# code + PKCE against the upstream OpenID provider (register <public_url>/oidc/upstream/callback
# as the redirect URI there), verifies its ID token (aud = client_id, nonce, email_verified)
# and issues its own token for that e-mail. allowed_domains (optional) restricts the e-mails.
# [[oidc_upstreams]]
# name = "corp"
# display_name = "Example Corp"
# issuer = "https://login.example.com"
# client_id = "keyless"
# client_secret = "change-me"
# scopes = ["openid", "email"]
# allowed_domains = ["example.com"]

# OAuth clients of the embedded provider besides the public `sigstore` client. A client with
# a `subject` (a URI whose scheme and host are those of the public URL) is a CI machine: the
# client credentials grant gives it a token from issuer <public_url>/oidc/ci whose identity
# is that URI. Keys: client_id, secret (or secret_hash, scrypt), subject, audience
# (default "sigstore"), redirect_uris.
# [[oidc_clients]]
# client_id = "release-bot"
# secret = "change-me"
# subject = "http://localhost:3000/ci/release-bot"

# Further OpenID Connect issuers whose identity tokens the CA accepts, besides the embedded
# one (Fulcio's OIDCIssuers/MetaIssuers, protocols.md §1.3). Keys:
#   url                      exact issuer URL, or a meta-issuer pattern where each * matches
#                            one label (e.g. "https://oidc.eks.*.amazonaws.com/id/*")
#   type                     email | github-workflow | gitlab-pipeline | buildkite-job |
#                            spiffe | kubernetes | uri | username — how a token becomes the
#                            certificate identity (email: the verified email claim)
#   client_id                the audience tokens must carry (default "sigstore")
#   subject_domain           required by uri/username types
#   spiffe_trust_domain      required by the spiffe type
#   issuer_claim             claim embedded as issuer instead of iss (e.g. Dex connectors)
#   skip_email_verification  accept email claims without email_verified (default false)
# [[issuers]]
# url = "https://token.actions.githubusercontent.com"
# type = "github-workflow"
# client_id = "sigstore"
'''


def render_config(settings: Settings, explicit: frozenset[str] = frozenset()) -> str:
    """The documented config file for ``settings`` (what the first start writes).

    Only values the operator chose explicitly (``explicit`` names them) are active lines; the
    derived defaults are written as comments so that e.g. a later ``--port`` still moves the
    default public URL along with it.
    """

    def comment(name: str) -> str:
        return "" if name in explicit else "# "

    return CONFIG_TEMPLATE.format(
        host=settings.host,
        port=settings.port,
        public_url=settings.public_url,
        database=settings.database_url,
        c_host=comment("host"),
        c_port=comment("port"),
        c_public_url=comment("public_url"),
        c_database=comment("database"),
    )
