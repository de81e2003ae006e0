"""A :class:`keyless.keys.KeySigner` whose private key lives in a PKCS#11 token (an HSM).

The key never leaves the token: keyless hashes locally and asks the token for a raw signature
(``CKM_ECDSA`` over the digest, ``CKM_SHA256_RSA_PKCS``, ``CKM_EDDSA``), then encodes it the
way every other signer does (ECDSA as DER ``SEQUENCE{r, s}``, hash by curve; RSA PKCS#1 v1.5
SHA-256; Ed25519 raw), so certificates, SCTs and checkpoints come out identical to file keys.
Tested against Debian's SoftHSM2 (``softhsm2``); any PKCS#11 v2.20+ module should work.

Keys are named by an RFC 7512 ``pkcs11:`` URI, e.g.
``pkcs11:token=keyless;object=ca-intermediate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234``
(``pin-source=file:/path`` reads the PIN from a file instead). PKCS#11 login state belongs to
the process (v2.40 §5.6): once one signer has logged in to a token, further sessions of the
process share that login and the token does not re-check their PIN.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyless.errors import ConfigError
from keyless.keys import PublicKey, hash_for_curve

_CURVES: dict[str, ec.EllipticCurve] = {
    "ecdsa-p256": ec.SECP256R1(),
    "ecdsa-p384": ec.SECP384R1(),
    "ecdsa-p521": ec.SECP521R1(),
}


@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of an RFC 7512 URI keyless uses: token, object label, module and PIN."""

    module: str
    token: str
    object: str
    pin: str | None

    @classmethod
    def parse(cls, uri: str) -> Pkcs11Uri:
        """Parse ``pkcs11:token=…;object=…?module-path=…&pin-value=…`` (RFC 7512 §2.3)."""
        if not uri.startswith("pkcs11:"):
            # the value is not echoed: a mistyped URI may still carry pin-value
            raise ConfigError("not a pkcs11: URI (it must start with 'pkcs11:')")
        path, _, query = uri[len("pkcs11:") :].partition("?")
        attrs = _pairs(path, ";")
        params = _pairs(query, "&")
        module = params.get("module-path")
        if not module:
            raise ConfigError("pkcs11 URI needs module-path (e.g. /usr/lib/softhsm/libsofthsm2.so)")
        if "token" not in attrs or "object" not in attrs:
            raise ConfigError("pkcs11 URI needs token=… and object=…")
        pin = params.get("pin-value")
        source = params.get("pin-source")
        if pin is None and source:
            try:
                pin = Path(source.removeprefix("file:")).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read the PKCS#11 PIN from {source}: {exc}") from exc
        return cls(module, attrs["token"], attrs["object"], pin)


def _pairs(text: str, sep: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, text.split(sep)):
        name, eq, value = part.partition("=")
        if not eq:
            raise ConfigError(f"malformed pkcs11 URI attribute {part!r}")
        out[unquote(name)] = unquote(value)
    return out


class Pkcs11Signer:
    """Signs with a private key held in a PKCS#11 token; one session, serialised by a lock."""

    def __init__(self, session: Any, private_key: Any, public_key: PublicKey) -> None:
        self._session = session
        self._private = private_key
        self._public = public_key
        self._lock = threading.Lock()

    @classmethod
    def open(cls, uri: str | Pkcs11Uri) -> Pkcs11Signer:
        """Open the token and find the key pair labelled ``object``."""
        _require_library()
        import pkcs11

        parsed = Pkcs11Uri.parse(uri) if isinstance(uri, str) else uri
        session = _session(parsed)
        try:
            private = session.get_key(
                object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=parsed.object
            )
            public = session.get_key(
                object_class=pkcs11.ObjectClass.PUBLIC_KEY, label=parsed.object
            )
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as exc:
            session.close()
            raise ConfigError(
                f"PKCS#11 token {parsed.token!r}: no unique key pair labelled {parsed.object!r}"
            ) from exc
        return cls(session, private, _public_key(public))

    @classmethod
    def generate(cls, uri: str | Pkcs11Uri, kind: str = "ecdsa-p384") -> Pkcs11Signer:
        """Create a non-extractable key pair labelled ``object`` in the token, and open it."""
        _require_library()
        import pkcs11
        from pkcs11.util.ec import encode_named_curve_parameters

        parsed = Pkcs11Uri.parse(uri) if isinstance(uri, str) else uri
        session = _session(parsed)
        try:
            if kind in _CURVES:
                params = session.create_domain_parameters(
                    pkcs11.KeyType.EC,
                    {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[kind].name)},
                    local=True,
                )
                params.generate_keypair(store=True, label=parsed.object)
            elif kind == "rsa-3072":
                session.generate_keypair(pkcs11.KeyType.RSA, 3072, store=True, label=parsed.object)
            else:
                raise ConfigError(f"cannot generate a {kind!r} key in a PKCS#11 token")
        finally:
            session.close()
        return cls.open(parsed)

    def public_key(self) -> PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """Sign like :class:`keyless.keys.InMemorySigner`, inside the token."""
        import pkcs11
        from pkcs11.util.ec import encode_ecdsa_signature

        key = self._public
        with self._lock:
            if isinstance(key, ec.EllipticCurvePublicKey):
                h = hashes.Hash(hash_for_curve(key.curve))
                h.update(data)
                raw = self._private.sign(h.finalize(), mechanism=pkcs11.Mechanism.ECDSA)
                return bytes(encode_ecdsa_signature(raw))
            if isinstance(key, rsa.RSAPublicKey):
                return bytes(self._private.sign(data, mechanism=pkcs11.Mechanism.SHA256_RSA_PKCS))
            return bytes(self._private.sign(data, mechanism=pkcs11.Mechanism.EDDSA))

    def close(self) -> None:
        """Close the token session."""
        self._session.close()


def _require_library() -> None:
    """python-pkcs11 is an optional dependency (the ``hsm`` extra): say how to get it."""
    try:
        import pkcs11  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "PKCS#11 keys need the python-pkcs11 package: pip install 'keyless[hsm]'"
        ) from exc


def _session(uri: Pkcs11Uri) -> Any:
    import pkcs11

    try:
        lib = pkcs11.lib(uri.module)
        token = lib.get_token(token_label=uri.token)
        try:
            return token.open(rw=True, user_pin=uri.pin)
        except pkcs11.UserAlreadyLoggedIn:
            # PKCS#11 v2.40 §5.6: login state is shared by all sessions of the application;
            # another signer of this process already logged in to the token.
            return token.open(rw=True)
    except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
        raise ConfigError(
            f"cannot open PKCS#11 token {uri.token!r} with module {uri.module}: "
            f"{type(exc).__name__} {exc}"
        ) from exc


def _public_key(obj: Any) -> PublicKey:
    import pkcs11
    from pkcs11.util.ec import encode_ec_public_key
    from pkcs11.util.rsa import encode_rsa_public_key

    if obj.key_type == pkcs11.KeyType.EC:
        der = encode_ec_public_key(obj)
    elif obj.key_type == pkcs11.KeyType.RSA:
        der = encode_rsa_public_key(obj)
    else:
        raise ConfigError(f"unsupported PKCS#11 key type {obj.key_type}")
    key = serialization.load_der_public_key(der)
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ConfigError(f"unsupported PKCS#11 public key {type(key).__name__}")
    return key
