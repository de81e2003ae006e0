"""The provider's few HTML pages (sign-in, device approval, out-of-band code, errors) and the
CSRF check of their forms.

Plain server-rendered forms with every value escaped; the routes send them with
:data:`HTML_HEADERS` (anti-framing, same-origin referrer, no-store, content security: OWASP
clickjacking / CSRF cheat sheets). Forms are protected by a double-submit cookie
(:data:`CSRF_COOKIE`, SameSite=Strict) plus an Origin check (:func:`check_csrf`).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping, Sequence
from html import escape

CSRF_COOKIE = "keyless_oidc_csrf"
HTML_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on POST.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}
input[type=text],input[type=email],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1.2rem}.error{color:#b00020}.code{font-size:1.6rem;
font-family:monospace;word-break:break-all;background:#f3f3f3;padding:.6rem}
"""


_OTP_FIELD = (
    "<label for=otp>One-time code <small>(if your account has one; or a recovery code)</small>"
    "</label><input type=text id=otp name=otp maxlength=32 autocomplete=one-time-code>"
)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type=hidden name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
    )


def _error(message: str | None) -> str:
    return f"<p class=error role=alert id=error>{escape(message)}</p>" if message else ""


def login_page(
    action: str, client_id: str, hidden: Mapping[str, str], csrf: str, error: str | None = None,
    *, upstreams: Sequence[tuple[str, str]] = (),
) -> str:
    """The sign-in form of the authorization code flow (OIDC Core §3.1.2.3); ``upstreams``:
    ``(display name, URL)`` of the "Sign in with NAME" links of company providers."""
    links = "".join(
        f'<p><a class=upstream href="{escape(url)}">Sign in with {escape(name)}</a></p>'
        for name, url in upstreams
    )
    base = action.rsplit("/", 1)[0]
    key = (
        f'<script src="{escape(base)}/static/webauthn.js" defer></script>'
        f'<p><button type=button id=key-login data-options="{escape(base)}/webauthn/options" '
        f'data-login="{escape(base)}/webauthn/login">Sign in with a security key</button></p>'
        "<p class=error role=alert id=key-error hidden></p>"
    )
    return _page(
        "Sign in - keyless",
        "<h1>Sign in to keyless</h1>"
        f"<p><strong>{escape(client_id)}</strong> asks to confirm your email address "
        "for a short-lived code-signing certificate.</p>"
        f"{_error(error)}"
        f'<form method=post action="{escape(action)}" id=login>'
        f"{_hidden({**hidden, 'csrf_token': csrf})}"
        "<label for=username>Email</label>"
        "<input type=email id=username name=username autocomplete=username required autofocus>"
        "<label for=password>Password</label>"
        "<input type=password id=password name=password autocomplete=current-password required>"
        f"{_OTP_FIELD}"
        "<button type=submit id=submit>Sign in</button></form>"
        f"{key}{links}",
    )


def device_page(action: str, csrf: str, user_code: str = "", error: str | None = None) -> str:
    """The verification page of the device flow (RFC 8628 §3.3)."""
    return _page(
        "Approve a device - keyless",
        "<h1>Approve a device</h1>"
        "<p>Enter the code shown on the device and sign in to let it act as you.</p>"
        f"{_error(error)}"
        f'<form method=post action="{escape(action)}" id=device>'
        f"{_hidden({'csrf_token': csrf})}"
        "<label for=user_code>Code</label>"
        f'<input type=text id=user_code name=user_code value="{escape(user_code)}" required '
        "autocomplete=off autocapitalize=characters>"
        "<label for=username>Email</label>"
        "<input type=email id=username name=username autocomplete=username required>"
        "<label for=password>Password</label>"
        "<input type=password id=password name=password autocomplete=current-password required>"
        f"{_OTP_FIELD}"
        "<button type=submit id=submit>Approve</button></form>",
    )


def message_page(title: str, message: str, code: str | None = None) -> str:
    """A result page (device approved, errors); ``code`` shows an out-of-band code to copy."""
    shown = f"<p class=code id=code>{escape(code)}</p>" if code else ""
    return _page(f"{title} - keyless", f"<h1>{escape(title)}</h1><p>{escape(message)}</p>{shown}")


class FormRefused(Exception):
    """A browser form that must not be processed (CSRF, cross-origin, malformed)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def csrf_token(cookie: str) -> str:
    """The CSRF token of a page: the browser's cookie when it is one of ours, else a new one."""
    return cookie if len(cookie) >= 32 else secrets.token_urlsafe(32)


def check_csrf(origin: str | None, expected_origin: str, cookie: str, submitted: str) -> None:
    """Double-submit cookie (SameSite=Strict) plus Origin check (OWASP CSRF cheat sheet):
    :class:`FormRefused` unless the form came from ``expected_origin`` with the cookie's token."""
    if origin is not None and origin != expected_origin:
        raise FormRefused("this form was submitted from another site (Origin mismatch)")
    if len(cookie) < 32 or not hmac.compare_digest(cookie.encode(), submitted.encode()):
        raise FormRefused(
            "the form expired or was not submitted from this site (missing or wrong CSRF "
            "token); try again"
        )


def account_page(action: str, csrf: str, error: str | None = None) -> str:
    """Sign-in to the account page, where a user sets up a second factor."""
    return _page(
        "Your account - keyless",
        "<h1>Set up a second factor</h1>"
        "<p>Sign in to add a one-time code (TOTP) from an authenticator app to your account.</p>"
        f"{_error(error)}"
        f'<form method=post action="{escape(action)}" id=account>'
        f"{_hidden({'csrf_token': csrf})}"
        "<label for=username>Email</label>"
        "<input type=email id=username name=username autocomplete=username required autofocus>"
        "<label for=password>Password</label>"
        "<input type=password id=password name=password autocomplete=current-password required>"
        f"{_OTP_FIELD}"
        "<button type=submit id=submit>Continue</button></form>",
    )


def qr_svg(text: str) -> str:
    """``text`` as a QR code in inline SVG, rendered here (segno; no external service)."""
    import segno

    svg: str = segno.make(text, error="m").svg_inline(scale=5, dark="#000", light="#fff")
    return svg


def enrol_page(
    action: str, csrf: str, pending: str, qr_svg: str, secret: str, *, error: str | None = None
) -> str:
    """The new secret as a QR code (``qr_svg``: inline SVG rendered locally from the
    ``otpauth://`` URI) and as text, and the form for the first code."""
    grouped = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    return _page(
        "Set up a second factor - keyless",
        "<h1>Scan this code</h1>"
        "<p>Scan it with an authenticator app, or type the key, then enter the code it shows.</p>"
        f"<div id=qr>{qr_svg}</div>"
        f"<p class=code id=secret>{escape(grouped)}</p>"
        f"{_error(error)}"
        f'<form method=post action="{escape(action)}" id=confirm>'
        f"{_hidden({'csrf_token': csrf, 'pending': pending})}"
        "<label for=code>Code from the app</label>"
        "<input type=text id=code name=code inputmode=numeric maxlength=8 "
        "autocomplete=one-time-code required autofocus>"
        "<button type=submit id=submit>Turn on</button></form>",
    )


def recovery_page(email: str, codes: list[str]) -> str:
    """The recovery codes, shown this once."""
    items = "".join(f"<li>{escape(c)}</li>" for c in codes)
    return _page(
        "Second factor on - keyless",
        "<h1>Second factor on</h1>"
        f"<p>Every sign-in of {escape(email)} now needs a code from the app. Keep these "
        "recovery codes somewhere safe: each works once in place of a code, and they are "
        "shown only now.</p>"
        f"<ol class=code id=recovery>{items}</ol>",
    )


def key_register_page(script: str, action: str, csrf: str, handle: str, options: str) -> str:
    """The button that registers a security key or passkey (``options``: the JSON for
    ``navigator.credentials.create``; ``script``: the URL of the one script allowed to run)."""
    return _page(
        "Register a security key - keyless",
        "<h1>Register a security key</h1>"
        "<p>Press the button, then touch your security key or confirm with your device.</p>"
        f'<script src="{escape(script)}" defer></script>'
        f"{_hidden({'csrf_token': csrf})}"
        f'<button type=button id=register-key data-action="{escape(action)}" '
        f'data-handle="{escape(handle)}" data-options="{escape(options)}">Register</button>'
        "<p id=key-result role=status hidden></p>"
        "<p class=error role=alert id=key-error hidden></p>",
    )
