"""DC/OS IAM authentication (``mesosAuthentication: "iam"``).

The ``IAMConfigFile`` is JSON with a service account's ``uid``, its RSA
``private_key`` (PEM) and the IAM ``login_endpoint``; other keys are ignored.
Logging in means POSTing ``{"uid": UID, "token": JWT}`` to the endpoint, where
JWT is an RS256 token signed with the private key whose claims are ``uid`` and
a short ``exp``. The reply ``{"token": T}`` authenticates requests to the
masters as the header ``Authorization: token=T``.

The original logs in before every request to a master. `IAMAuth` keeps T
instead and reuses it:

- until shortly before its ``exp`` when T is itself a JWT (its claims are read
  without verifying the signature: only the IAM and the masters verify it);
- when T is opaque, or carries no ``exp``, until a master refuses it.

A 401 from a master drops T (`IAMAuth.rejected`); the caller then asks for the
headers again, which logs in anew, and retries once. Concurrent requests share
one login (a lock).

The private key, the signed login JWT and T are secrets: none of them appears
in a ``repr``, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import aiohttp

from mesosdns.errors import IAMLoginError

# PyJWT and cryptography are imported where they are used: only a cluster
# with IAM needs them, and every process would otherwise hold them (about
# 10 MiB each, and 0.1 s of its start)
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

log = logging.getLogger(__name__)

AUTH_SCHEME: Final = "token="
# Lifetime of the JWT signed for each login: it is used once, at once.
LOGIN_TOKEN_LIFETIME: Final = 300.0
# Log in again this long before T's exp (at most half of T's lifetime), so
# that a request never carries a token that expires while it is on its way.
REFRESH_MARGIN: Final = 60.0
# An IAM file is a few kilobytes; reading stops well beyond that.
MAX_FILE_BYTES: Final = 1 << 20
_REQUIRED: Final = ("uid", "private_key", "login_endpoint")
_HEADER_SAFE: Final = re.compile(r"[!-~]+")  # printable ASCII, no spaces


@dataclass(frozen=True)
class IAMConfig:
    """The contents of an ``IAMConfigFile``, the key loaded."""

    uid: str
    login_endpoint: str
    private_key: RSAPrivateKey = field(compare=False)

    def __repr__(self) -> str:  # never print the key by accident
        return f"IAMConfig(uid={self.uid!r}, login_endpoint={self.login_endpoint!r})"


def parse_iam_config(data: bytes) -> IAMConfig:
    """An IAM config from the file's bytes; ValueError with the reason.

    The reason never quotes the file's contents (the key is in there).
    """
    try:
        doc = json.loads(data)
    except ValueError as exc:  # JSON errors give a position, not the text
        raise ValueError(f"invalid JSON: {_position(exc)}") from None
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    if not all(isinstance(doc.get(k), str) and doc[k] for k in _REQUIRED):
        missing = [k for k in _REQUIRED if not (isinstance(doc.get(k), str) and doc[k])]
        raise ValueError(
            "needs uid, private_key and login_endpoint (strings); "
            f"missing or empty: {', '.join(missing)}"
        )
    endpoint: str = doc["login_endpoint"]
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"login_endpoint: not an http(s) URL: {endpoint!r}")
    return IAMConfig(
        uid=doc["uid"], login_endpoint=endpoint, private_key=_rsa_key(doc["private_key"])
    )


def read_iam_config(path: str) -> IAMConfig:
    """Read and parse an ``IAMConfigFile``; ValueError with the reason."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
    return parse_iam_config(data)


def _position(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno} column {exc.colno}"
    return type(exc).__name__  # e.g. UnicodeDecodeError


def _rsa_key(pem: str) -> RSAPrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    # The library's own messages are not passed on: some quote key material.
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except TypeError:
        raise ValueError("private_key: an encrypted key (no passphrase can be given)") from None
    except Exception:
        raise ValueError("private_key: not a PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("private_key: not an RSA key (RS256 needs one)")
    return key


def token_expiry(token: str) -> float | None:
    """The ``exp`` of a JWT, read without verifying it; None when ``token``
    is not a JWT or has no numeric ``exp``."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


class IAMAuth:
    """Logs in to the IAM and keeps the token for the masters' requests.

    ``ssl_context`` is what the login request verifies the endpoint with (the state
    client's TLS settings); ``clock`` is wall-clock time (JWT ``exp`` is Unix
    time), injectable for tests.
    """

    def __init__(
        self,
        config: IAMConfig,
        *,
        ssl_context: ssl.SSLContext | bool = True,
        clock: Callable[[], float] = time.time,
        login_lifetime: float = LOGIN_TOKEN_LIFETIME,
        refresh_margin: float = REFRESH_MARGIN,
    ) -> None:
        self.config = config
        self._ssl = ssl_context
        self._clock = clock
        self._login_lifetime = login_lifetime
        self._margin = refresh_margin
        self._token: str | None = None
        self._renew_at: float | None = None  # None: until a master refuses it
        self._lock: asyncio.Lock | None = None
        self.logins = 0  # successful logins (for tests and logs)

    def __repr__(self) -> str:
        return f"IAMAuth(uid={self.config.uid!r}, endpoint={self.config.login_endpoint!r})"

    def _valid(self) -> str | None:
        token = self._token
        if token is None:
            return None
        if self._renew_at is not None and self._clock() >= self._renew_at:
            return None
        return token

    async def headers(self, session: aiohttp.ClientSession, timeout: float) -> dict[str, str]:
        """``{"Authorization": "token=T"}``, logging in first when there is no
        valid T; IAMLoginError when the login fails."""
        token = self._valid()
        if token is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                token = self._valid()  # another request may have logged in meanwhile
                if token is None:
                    token = await self._login(session, timeout)
        return {"Authorization": AUTH_SCHEME + token}

    def rejected(self, headers: Mapping[str, str]) -> None:
        """A master answered 401 to ``headers``: forget that token (not a newer
        one another request got meanwhile), so the next request logs in."""
        if self._token is not None and headers.get("Authorization") == AUTH_SCHEME + self._token:
            log.info("a master refused the IAM token; logging in again")
            self._token = None
            self._renew_at = None

    async def _login(self, session: aiohttp.ClientSession, timeout: float) -> str:
        import jwt

        cfg = self.config
        now = self._clock()
        assertion = jwt.encode(
            {"uid": cfg.uid, "exp": int(now + self._login_lifetime)},
            cfg.private_key,
            algorithm="RS256",
        )
        where = f"IAM login as {cfg.uid!r} at {cfg.login_endpoint}"
        try:
            async with session.post(
                cfg.login_endpoint,
                json={"uid": cfg.uid, "token": assertion},
                ssl=self._ssl,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                status = resp.status
                body = await resp.read()
        except TimeoutError:
            raise IAMLoginError(f"{where}: timed out after {timeout:.3g}s", True) from None
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise IAMLoginError(f"{where}: TLS error: {exc}", False) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise IAMLoginError(f"{where}: {type(exc).__name__}: {exc}", True) from None
        # The body is never quoted: a reply may carry a token.
        if status != 200:
            raise IAMLoginError(f"{where}: HTTP {status}", status >= 500)
        token = _reply_token(body)
        if token is None:
            raise IAMLoginError(f"{where}: the reply has no token", False)
        exp = token_expiry(token)
        if exp is None:
            self._renew_at = None
            until = "until a master refuses it"
        else:
            self._renew_at = exp - min(self._margin, max(exp - now, 0.0) / 2)
            until = f"until {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(exp))}"
        self._token = token
        self.logins += 1
        log.info("logged in to the IAM as %r; the token is used %s", cfg.uid, until)
        return token


def _reply_token(body: bytes) -> str | None:
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return None
    token = doc.get("token") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not _HEADER_SAFE.fullmatch(token):
        return None  # it must fit in a header value as it is
    return token


__all__ = [
    "IAMAuth",
    "IAMConfig",
    "parse_iam_config",
    "read_iam_config",
    "token_expiry",
]
