"""Splitting signed commits and tags into payload and signature, as git does."""

from __future__ import annotations

import pytest

from keyless.errors import InvalidInput
from keyless.git.objects import split_commit, split_tag

SIG = b"-----BEGIN SIGNED MESSAGE-----\nAAAA\n-----END SIGNED MESSAGE-----\n"
MERGETAG = (b"mergetag object 1234\n type commit\n tag v1\n \n msg\n"
            b" -----BEGIN SIGNED MESSAGE-----\n QUJD\n -----END SIGNED MESSAGE-----\n")


def commit(header: bytes = b"gpgsig") -> tuple[bytes, bytes]:
    payload = b"tree 1\nparent 2\nauthor A <a> 1 +0000\ncommitter A <a> 1 +0000\n"
    signed_header = header + b" " + SIG.rstrip(b"\n").replace(b"\n", b"\n ") + b"\n"
    body = b"\nsubject\n\ngpgsig in the body is not a header\n"
    return payload + MERGETAG + signed_header + body, payload + MERGETAG + body


def test_commit() -> None:
    raw, expected = commit()
    assert split_commit(raw) == (expected, SIG)


def test_sha256_header() -> None:
    raw, expected = commit(b"gpgsig-sha256")
    assert split_commit(raw, b"gpgsig-sha256") == (expected, SIG)
    with pytest.raises(InvalidInput, match="not signed"):
        split_commit(raw)


def test_unsigned_or_doubly_signed_commit() -> None:
    raw, expected = commit()
    with pytest.raises(InvalidInput, match="not signed"):
        split_commit(expected)
    head, _, body = raw.partition(b"\n\n")
    with pytest.raises(InvalidInput, match="two"):
        split_commit(head + b"\ngpgsig x" + b"\n\n" + body)


def test_tag_signature_is_the_last_armor() -> None:
    payload = (b"object 1\ntype commit\ntag v1\ntagger A <a> 1 +0000\n\nquoting:\n"
               b"-----BEGIN PGP SIGNATURE-----\nnot the signature\n")
    assert split_tag(payload + SIG) == (payload, SIG)
    with pytest.raises(InvalidInput, match="not signed"):
        split_tag(b"object 1\ntype commit\ntag v1\n\nplain\n")
