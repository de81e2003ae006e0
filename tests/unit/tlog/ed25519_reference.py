"""RFC 8032 §6 reference arithmetic for Ed25519ph verification (test oracle only).

The log verifies Ed25519ph natively (keyless.services.tlog.kinds.ed25519ph); this is the former
pure-Python implementation, which follows the RFC's own reference code, kept to check the native
one differentially.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature

_P = 2**255 - 19
_Q = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_DOM2_PH = b"SigEd25519 no Ed25519 collisions" + bytes([1, 0])  # dom2(phflag=1, context="")

_Point = tuple[int, int, int, int]  # extended homogeneous coordinates (X, Y, Z, T)


def _add(a: _Point, b: _Point) -> _Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, point: _Point) -> _Point:
    result: _Point = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            result = _add(result, point)
        point = _add(point, point)
        s >>= 1
    return result


def _equal(a: _Point, b: _Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


def _decompress(data: bytes) -> _Point | None:
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
assert _GX is not None
_G: _Point = (_GX, _GY, 1, _GX * _GY % _P)


def verify(public_key: bytes, signature: bytes, digest: bytes) -> None:
    """Verify an Ed25519ph ``signature`` over ``digest`` = SHA-512(message) (RFC 8032 §5.1.7).

    Raises :class:`cryptography.exceptions.InvalidSignature` like ``cryptography`` does.
    """
    if len(public_key) != 32 or len(signature) != 64 or len(digest) != 64:
        raise InvalidSignature("Ed25519ph needs a 32-byte key, 64-byte signature and digest")
    a = _decompress(public_key)
    r = _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _Q:
        raise InvalidSignature("malformed Ed25519ph signature or key")
    h = int.from_bytes(
        hashlib.sha512(_DOM2_PH + signature[:32] + public_key + digest).digest(), "little"
    )
    if not _equal(_mul(s, _G), _add(r, _mul(h % _Q, a))):
        raise InvalidSignature("Ed25519ph signature does not verify")
