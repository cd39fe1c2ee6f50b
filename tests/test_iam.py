"""DC/OS IAM authentication (``mesosAuthentication: iam``) over real HTTP.

A fake IAM login endpoint (aiohttp, loopback, HTTP or HTTPS) verifies each
login's RS256 JWT with the service account's public key and its claims, then
issues a token (a JWT with a chosen lifetime, or an opaque string) that the
fake master (`FakeMaster.tokens`) accepts as ``Authorization: token=T``;
discarding a token there revokes it (the master answers 401).

Checked: one login serves many refreshes; a token is renewed before its exp;
a 401 logs in again within the same fetch (once); the operator API stream
does the same; the login endpoint is verified with ``caCertFile``; a bad IAM
file is ``IAMConfigFile: reason`` and exit status 2; the private key, the
login JWTs and the tokens never show in ``/v1/config``, ``/metrics``, logs or
errors; the real process with an IAM config answers DNS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dns_support import LoopThread
from fakemaster import FakeMaster, minimal_state
from reliability_support import AppThread, good_state
from test_e2e import DEMO, NGINX, Masters, MesosDNS, _self_signed, eventually
from test_secrets import all_log_text

from mesosdns.app import log_config_summary
from mesosdns.config import parse_config
from mesosdns.errors import ConfigError, FetchError
from mesosdns.state.client import StateClient
from mesosdns.state.iam import IAMAuth, IAMConfig, parse_iam_config, read_iam_config
from mesosdns.state.stream import StreamError, Subscriber

T = TypeVar("T")
UID = "dcos_mesos_dns"
LOGIN_PATH = "/acs/api/v1/auth/login"
ISSUER_SECRET = "the-fake-iam-signing-secret-of-the-tests"  # 32+ bytes for HS256


def run(coro_fn: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro_fn(), timeout)

    return asyncio.run(main())


def deadline_in(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


# --------------------------------------------------------------------------- keys and files


def pem_of(key: Any, fmt: serialization.PrivateFormat, password: bytes | None = None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return str(key.private_bytes(serialization.Encoding.PEM, fmt, encryption).decode())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def private_pem(rsa_key: rsa.RSAPrivateKey) -> str:
    return pem_of(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL)


def key_body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM key: none of them may ever be shown."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def write_iam_file(path: Path, pem: str, endpoint: str, **extra: Any) -> Path:
    path.write_text(
        json.dumps({"uid": UID, "private_key": pem, "login_endpoint": endpoint, **extra})
    )
    return path


# --------------------------------------------------------------------------- the fake IAM


class FakeIAM:
    """``POST /acs/api/v1/auth/login`` as DC/OS's IAM answers it."""

    def __init__(
        self,
        public_key: rsa.RSAPublicKey,
        master_tokens: set[str],
        *,
        ssl_context: ssl.SSLContext | None = None,
        token_ttl: float | None = 3600.0,
    ) -> None:
        self.public_key = public_key
        self.master_tokens = master_tokens  # every token issued is accepted there
        self.ssl_context = ssl_context
        self.token_ttl = token_ttl  # None: opaque tokens
        self.status = 200  # failure mode: answer this instead
        self.grant = True  # False: issue tokens the master does not accept
        self.max_lifetime: float | None = 600.0  # a login JWT's exp at most this far
        self.assertions: list[str] = []  # the login JWTs received
        self.claims: list[dict[str, Any]] = []  # their verified claims
        self.issued: list[str] = []
        self.rejected = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}{LOGIN_PATH}"

    @property
    def logins(self) -> int:
        return len(self.issued)

    async def start(self) -> FakeIAM:
        app = web.Application()
        app.router.add_post(LOGIN_PATH, self._login)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeIAM:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _login(self, request: web.Request) -> web.Response:
        body = await request.json()
        assertion = body.get("token", "")
        self.assertions.append(assertion)
        if self.status != 200:
            return web.json_response({"code": "failure mode"}, status=self.status)
        try:
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                options={"require": ["exp", "uid"]},
            )
        except jwt.PyJWTError as exc:
            self.rejected += 1
            return web.json_response({"code": f"invalid login token: {exc}"}, status=401)
        lifetime = claims["exp"] - time.time()
        short = self.max_lifetime is None or lifetime <= self.max_lifetime
        if body.get("uid") != UID or claims["uid"] != UID or not (lifetime > 0 and short):
            self.rejected += 1
            return web.json_response({"code": "wrong uid or lifetime"}, status=401)
        self.claims.append(claims)
        n = len(self.issued) + 1
        if self.token_ttl is None:
            token = f"opaque-{n}-{uuid.uuid4().hex}"
        else:
            token = jwt.encode(
                {"uid": UID, "exp": int(time.time() + self.token_ttl), "n": n},
                ISSUER_SECRET,
                algorithm="HS256",
            )
        self.issued.append(token)
        if self.grant:
            self.master_tokens.add(token)
        return web.json_response({"token": token})


def iam_master(state: dict[str, Any] | None = None, **kw: Any) -> FakeMaster:
    master = FakeMaster(state if state is not None else minimal_state(), **kw)
    master.tokens = set()
    return master


def iam_client(config: IAMConfig, **kw: Any) -> StateClient:
    kw.setdefault("timeout_seconds", 2.0)
    kw.setdefault("backoff", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return StateClient(auth="iam", iam=config, **kw)


def tokens_sent(master: FakeMaster) -> list[str]:
    return [h.get("Authorization", "") for h in master.headers]


# --------------------------------------------------------------------------- state fetches


def test_one_login_serves_many_refreshes(tmp_path: Path, rsa_key: rsa.RSAPrivateKey,
                                         private_pem: str) -> None:
    async def go() -> None:
        async with iam_master() as m:
            assert m.tokens is not None
            async with FakeIAM(rsa_key.public_key(), m.tokens) as iam:
                cfg = read_iam_config(str(write_iam_file(tmp_path / "iam.json", private_pem,
                                                         iam.endpoint)))
                async with iam_client(cfg) as c:
                    for _ in range(5):
                        result = await c.fetch(["", m.address], deadline_in(5))
                        assert result.master == m.address
                assert iam.logins == 1
                assert tokens_sent(m) == [f"token={iam.issued[0]}"] * 5
                # the login JWT: RS256 with uid and a short exp, verified by the fake
                assert jwt.get_unverified_header(iam.assertions[0])["alg"] == "RS256"
                assert iam.claims[0]["uid"] == UID
                assert 0 < iam.claims[0]["exp"] - time.time() <= 300

    run(go)


def test_a_token_is_renewed_shortly_before_its_exp(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, private_pem: str
) -> None:
    async def go() -> None:
        async with iam_master() as m:
            assert m.tokens is not None
            # exp 1-2 s ahead: renewed half-way through at the latest
            async with FakeIAM(rsa_key.public_key(), m.tokens, token_ttl=2) as iam:
                path = write_iam_file(tmp_path / "iam.json", private_pem, iam.endpoint)
                async with iam_client(read_iam_config(str(path))) as c:
                    await c.fetch(["", m.address], deadline_in(5))
                    await c.fetch(["", m.address], deadline_in(5))
                    assert iam.logins == 1
                    await asyncio.sleep(1.1)
                    await c.fetch(["", m.address], deadline_in(5))
                    assert iam.logins == 2
                # renewed before the master refused anything: one GET per fetch
                assert m.requests == 3
                assert tokens_sent(m)[2] == f"token={iam.issued[1]}"

    run(go)


def test_renewal_margin_and_opaque_tokens(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, private_pem: str
) -> None:
    """With a clock under the test's control: a JWT token is kept until 60 s
    before its exp; an opaque one until a master refuses it."""

    async def go() -> None:
        tokens: set[str] = set()
        async with FakeIAM(rsa_key.public_key(), tokens, token_ttl=3600) as iam:
            iam.max_lifetime = None  # the login JWTs' exp follows the test's clock
            cfg = read_iam_config(str(write_iam_file(tmp_path / "iam.json", private_pem,
                                                     iam.endpoint)))
            now = [time.time()]
            auth = IAMAuth(cfg, clock=lambda: now[0])
            async with aiohttp.ClientSession() as session:
                first = await auth.headers(session, 2.0)
                exp = jwt.decode(iam.issued[0], options={"verify_signature": False})["exp"]
                now[0] = exp - 61
                assert await auth.headers(session, 2.0) == first
                now[0] = exp - 59
                second = await auth.headers(session, 2.0)
                assert second != first and iam.logins == 2
                auth.rejected(first)  # an older token refused: the newer one stays
                assert await auth.headers(session, 2.0) == second and iam.logins == 2

                iam.token_ttl = None
                auth = IAMAuth(cfg, clock=lambda: now[0])
                opaque = await auth.headers(session, 2.0)
                assert opaque["Authorization"].startswith("token=opaque-")
                now[0] += 30 * 86400
                assert await auth.headers(session, 2.0) == opaque
                auth.rejected(opaque)
                assert await auth.headers(session, 2.0) != opaque
                assert iam.logins == 4

    run(go)


def test_a_401_logs_in_again_within_the_same_fetch(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, private_pem: str
) -> None:
    async def go() -> None:
        async with iam_master() as m:
            assert m.tokens is not None
            async with FakeIAM(rsa_key.public_key(), m.tokens) as iam:
                path = write_iam_file(tmp_path / "iam.json", private_pem, iam.endpoint)
                # one attempt per master: the second GET is the re-login, not a retry
                async with iam_client(read_iam_config(str(path)), attempts=1) as c:
                    await c.fetch(["", m.address], deadline_in(5))
                    m.tokens.discard(iam.issued[0])  # revoked
                    result = await c.fetch(["", m.address], deadline_in(5))
                    assert result.master == m.address
                    assert iam.logins == 2
                    assert tokens_sent(m) == [
                        f"token={iam.issued[0]}",
                        f"token={iam.issued[0]}",  # answered 401
                        f"token={iam.issued[1]}",
                    ]
                    # a token the master never accepts: one re-login, then the fetch fails
                    iam.grant = False
                    m.tokens.clear()
                    with pytest.raises(FetchError, match="HTTP 401"):
                        await c.fetch(["", m.address], deadline_in(5))
                    assert iam.logins == 3 and m.requests == 5  # issued[1] refused, then issued[2]

    run(go)


def test_login_failures_fail_the_fetch_and_5xx_is_retried(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, private_pem: str
) -> None:
    async def go() -> None:
        async with iam_master() as m:
            assert m.tokens is not None
            other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            async with FakeIAM(other_key.public_key(), m.tokens) as iam:
                path = write_iam_file(tmp_path / "iam.json", private_pem, iam.endpoint)
                async with iam_client(read_iam_config(str(path))) as c:
                    # signed with a key the IAM does not know: refused, not retried
                    with pytest.raises(FetchError, match="HTTP 401") as info:
                        await c.fetch(["", m.address], deadline_in(5))
                    assert info.value.kind == "iam_login"
                    assert "IAM login as 'dcos_mesos_dns'" in str(info.value)
                    assert iam.rejected == 1 and m.requests == 0
                    iam.status = 503
                    with pytest.raises(FetchError, match="HTTP 503") as info:
                        await c.fetch(["", m.address], deadline_in(5))
                    assert "after 3 attempts" in str(info.value)
                    assert len(iam.assertions) == 4
            async with iam_client(read_iam_config(str(path))) as c:  # the IAM is gone
                with pytest.raises(FetchError, match="IAM login") as info:
                    await c.fetch(["", m.address], deadline_in(5))
                assert info.value.kind == "iam_login"

    run(go)


# --------------------------------------------------------------------------- TLS


def test_the_login_endpoint_is_verified_with_ca_cert_file(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, private_pem: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, key = _self_signed(tmp_path / "a")  # a CA and 127.0.0.1's certificate at once
    other_ca, _ = _self_signed(tmp_path / "b")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    async def go() -> None:
        async with iam_master() as plain, iam_master(ssl_context=tls) as secure:
            assert plain.tokens is not None and secure.tokens is not None
            async with FakeIAM(rsa_key.public_key(), plain.tokens, ssl_context=tls) as iam:
                assert iam.endpoint.startswith("https://")
                cfg = read_iam_config(str(write_iam_file(tmp_path / "iam.json", private_pem,
                                                         iam.endpoint)))
                # masters over HTTP, the login over HTTPS verified with caCertFile
                async with iam_client(cfg, ca_file=str(cert)) as c:
                    await c.fetch(["", plain.address], deadline_in(5))
                assert iam.logins == 1
                # the wrong CA, or none (the system's CAs): the login is refused
                for ca in (str(other_ca), ""):
                    async with iam_client(cfg, ca_file=ca) as c:
                        with pytest.raises(FetchError, match="TLS error") as info:
                            await c.fetch(["", plain.address], deadline_in(5))
                        assert info.value.kind == "iam_login"
                assert iam.logins == 1
                # mesosHTTPSOn: the masters' context serves the login too
                iam.master_tokens = secure.tokens
                async with iam_client(cfg, https=True, ca_file=str(cert)) as c:
                    assert (await c.fetch(["", secure.address], deadline_in(5))).master
                assert iam.logins == 2
                assert tokens_sent(secure) == [f"token={iam.issued[1]}"]

    run(go)


# --------------------------------------------------------------------------- the event stream


def test_the_operator_api_stream_logs_in_and_again_on_a_401(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, private_pem: str
) -> None:
    async def go() -> None:
        async with iam_master() as m:
            assert m.tokens is not None
            async with FakeIAM(rsa_key.public_key(), m.tokens) as iam:
                path = write_iam_file(tmp_path / "iam.json", private_pem, iam.endpoint)
                async with iam_client(read_iam_config(str(path))) as c:
                    sub = await Subscriber(c).subscribe(["", m.address])
                    assert sub.leader == m.pid
                    sub.close()
                    assert iam.logins == 1
                    m.tokens.discard(iam.issued[0])
                    sub = await Subscriber(c).subscribe(["", m.address])
                    sub.close()
                    assert iam.logins == 2
                    assert m.api_calls == ["SUBSCRIBE", "GET_MASTER", "SUBSCRIBE", "GET_MASTER"]
                    assert tokens_sent(m) == [
                        f"token={iam.issued[0]}",  # SUBSCRIBE
                        f"token={iam.issued[0]}",  # GET_MASTER
                        f"token={iam.issued[0]}",  # SUBSCRIBE, answered 401
                        f"token={iam.issued[1]}",  # SUBSCRIBE again
                        f"token={iam.issued[1]}",  # GET_MASTER
                    ]
                    # the state-summary GET (scheduler pids) carries the token too
                    assert await Subscriber(c).framework_pids(m.address, 2.0) == {}
                    assert tokens_sent(m)[-1] == f"token={iam.issued[1]}"
                    iam.status = 403
                    m.tokens.clear()
                    with pytest.raises(StreamError, match=r"IAM login .*HTTP 403"):
                        await Subscriber(c).subscribe(["", m.address])

    run(go)


# --------------------------------------------------------------------------- config errors


def iam_problems(tmp_path: Path, content: str | None) -> list[str]:
    path = tmp_path / "iam.json"
    if content is not None:
        path.write_text(content)
    doc = {"masters": ["10.0.0.1:5050"], "mesosAuthentication": "iam",
           "IAMConfigFile": str(path)}
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(doc), resolv_conf="/nonexistent/resolv.conf")
    return info.value.problems


def bad_files(pem: str) -> list[tuple[str, str | None, str]]:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    good = {"uid": UID, "private_key": pem, "login_endpoint": "https://leader.mesos" + LOGIN_PATH}
    lines = pem.splitlines()
    garbled = "\n".join([lines[0], *(line[::-1] for line in lines[1:-1]), lines[-1]])
    return [
        ("missing", None, "No such file or directory"),
        ("not JSON", "{uid: 1", "invalid JSON: line 1 column 2"),
        ("not an object", "[]", "expected a JSON object"),
        ("no uid", json.dumps({**good, "uid": ""}), "missing or empty: uid"),
        ("no key", json.dumps({k: v for k, v in good.items() if k != "private_key"}),
         "missing or empty: private_key"),
        ("key not a string", json.dumps({**good, "private_key": 7}),
         "missing or empty: private_key"),
        ("no endpoint", json.dumps({**good, "login_endpoint": None}),
         "missing or empty: login_endpoint"),
        ("endpoint not a URL", json.dumps({**good, "login_endpoint": "leader.mesos/acs"}),
         "login_endpoint: not an http(s) URL: 'leader.mesos/acs'"),
        ("garbled key", json.dumps({**good, "private_key": garbled}),
         "private_key: not a PEM private key"),
        ("not PEM", json.dumps({**good, "private_key": "secret-not-a-key"}),
         "private_key: not a PEM private key"),
        ("EC key", json.dumps({**good, "private_key": pem_of(
            ec_key, serialization.PrivateFormat.PKCS8)}),
         "private_key: not an RSA key (RS256 needs one)"),
    ]


def test_a_bad_iam_file_is_a_config_error_naming_the_key(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, private_pem: str
) -> None:
    cases = bad_files(private_pem)
    encrypted = pem_of(rsa_key, serialization.PrivateFormat.PKCS8, b"passphrase")
    good = {"uid": UID, "login_endpoint": "https://leader.mesos" + LOGIN_PATH}
    cases.append(("encrypted key", json.dumps({**good, "private_key": encrypted}),
                  "private_key: an encrypted key (no passphrase can be given)"))
    secret_lines = key_body_lines(private_pem) + key_body_lines(encrypted)
    for what, content, reason in cases:
        problems = iam_problems(tmp_path, content)
        path = str(tmp_path / "iam.json")
        assert len(problems) == 1, (what, problems)
        assert problems[0].startswith(f"IAMConfigFile: {path!r}: "), what
        assert problems[0].endswith(reason), (what, problems)
        assert not any(line in problems[0] for line in secret_lines), what
        assert "secret-not-a-key" not in problems[0]
        (tmp_path / "iam.json").unlink(missing_ok=True)
    # PKCS#8 keys and extra keys in the file are fine
    pkcs8 = pem_of(rsa_key, serialization.PrivateFormat.PKCS8)
    write_iam_file(tmp_path / "ok.json", pkcs8, "http://127.0.0.1:1" + LOGIN_PATH, scheme="RS256")
    config = parse_iam_config((tmp_path / "ok.json").read_bytes())
    assert config.uid == UID and pkcs8 not in repr(config)
    # iam without a file
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps({"masters": ["10.0.0.1:5050"], "mesosAuthentication": "iam"}))
    assert info.value.problems == [
        "IAMConfigFile: a valid IAM config file is required when mesosAuthentication is 'iam'"
    ]


@pytest.mark.parametrize("case", ["missing", "garbled key"])
def test_the_process_exits_2_for_a_bad_iam_file(
    tmp_path: Path, private_pem: str, case: str
) -> None:
    content = {what: c for what, c, _ in bad_files(private_pem)}[case]
    iam = tmp_path / "iam.json"
    if content is not None:
        iam.write_text(content)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "masters": ["127.0.0.1:1"], "mesosAuthentication": "iam", "IAMConfigFile": str(iam),
    }))
    proc = subprocess.run(
        [sys.executable, "-m", "mesosdns", f"-config={config}", "-vv"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"mesos-dns: config: IAMConfigFile: {str(iam)!r}: ")
    assert "Traceback" not in proc.stderr
    assert not any(line in proc.stderr for line in key_body_lines(private_pem))


# --------------------------------------------------------------------------- secrets


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


def test_the_key_and_tokens_never_show(
    tmp_path: Path,
    rsa_key: rsa.RSAPrivateKey,
    private_pem: str,
    loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A whole run at DEBUG (every logger): the startup summary, logins,
    a revoked token, a failing IAM; then /v1/config, /metrics and the logs
    are searched for the key, the login JWTs and the tokens."""
    caplog.set_level(logging.DEBUG)
    master = loop_thread.run(iam_master(good_state()).start())
    assert master.tokens is not None
    iam = loop_thread.run(FakeIAM(rsa_key.public_key(), master.tokens).start())
    path = write_iam_file(tmp_path / "iam.json", private_pem, iam.endpoint)
    app = AppThread({"masters": [master.address], "mesosAuthentication": "iam",
                     "IAMConfigFile": str(path)})
    try:
        log_config_summary(app.config)
        app.wait_ready()
        assert app.addresses("sentinel.chronos.mesos.") == {"10.250.0.2"}
        assert app.refresh()
        master.tokens.clear()  # revoked: logged in again at once
        assert app.refresh()
        master.tokens.clear()
        iam.status = 500
        assert not app.refresh()
        iam.status = 200
        assert app.refresh()
        assert iam.logins == 3
        status, body = app.http("/v1/config")
        assert status == 200
        shown = json.loads(body)
        assert shown["MesosAuthentication"] == "iam"
        assert shown["IAMConfigFile"] == str(path)
        pages = [body.decode(), app.http("/metrics")[1].decode()]
        assert 'mesosdns_refresh_failures_total{kind="iam_login"}' in pages[1]
    finally:
        app.stop()
        loop_thread.run(iam.stop())
        loop_thread.run(master.stop())
    text = all_log_text(caplog)
    assert "logged in to the IAM as 'dcos_mesos_dns'" in text
    assert "HTTP 500" in text  # the failure was logged ...
    secrets = [*key_body_lines(private_pem), *iam.assertions, *iam.issued]
    for where in [text, *pages]:  # ... and nothing secret anywhere
        assert not [s for s in secrets if s in where]


# --------------------------------------------------------------------------- end to end


def test_the_server_process_with_iam_answers_dns(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, private_pem: str
) -> None:
    masters = Masters()
    srv: MesosDNS | None = None
    try:
        master = masters.start(DEMO)
        master.tokens = set()
        iam = masters._call(FakeIAM(rsa_key.public_key(), master.tokens).start())
        path = write_iam_file(tmp_path / "iam.json", private_pem, iam.endpoint)
        srv = MesosDNS(tmp_path, {"masters": [master.address], "mesosAuthentication": "iam",
                                  "IAMConfigFile": str(path)})
        srv.wait_ready()
        assert srv.addresses("nginx.marathon.mesos") == NGINX
        refreshes = master.requests
        eventually(lambda: master.requests >= refreshes + 3, 10, "three more refreshes")
        assert iam.logins == 1  # the token is reused (refreshSeconds is 1)
        master.tokens.clear()
        eventually(lambda: iam.logins == 2 and master.requests >= refreshes + 6, 10,
                   "a new login after the revocation")
        assert srv.counter("mesosdns_refresh_failures_total") == 0
        assert srv.addresses("nginx.marathon.mesos") == NGINX
        assert srv.stop() == 0
        assert "Traceback" not in srv.stderr
        assert not any(line in srv.stderr for line in key_body_lines(private_pem))
        assert not any(token in srv.stderr for token in iam.issued)
        masters._call(iam.stop())
    finally:
        if srv is not None and srv.running():
            srv.stop()
        masters.close()
