"""Without the optional python-pkcs11 package a PKCS#11 key is a configuration error that says
how to install it, not an unexpected ModuleNotFoundError."""

from __future__ import annotations

import sys

import pytest

from keyless.errors import ConfigError
from keyless.storage.pkcs11 import Pkcs11Signer

URI = "pkcs11:token=keyless;object=ca?module-path=/nonexistent/libsofthsm2.so&pin-value=1234"


@pytest.mark.parametrize("action", ["open", "generate"])
def test_missing_python_pkcs11_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    monkeypatch.setitem(sys.modules, "pkcs11", None)  # what an absent package looks like
    with pytest.raises(ConfigError, match=r"pip install 'keyless\[hsm\]'"):
        getattr(Pkcs11Signer, action)(URI)
