"""StateClient against fake Mesos masters on loopback: order, failover, retries, TLS."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import os
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from fakemaster import FakeMaster, minimal_state

from mesosdns.errors import ConfigError, FetchError, StateError
from mesosdns.state.client import FetchResult, StateClient, leader_host, load_state_file

T = TypeVar("T")

# Port 1 on loopback: nothing listens there, connections are refused.
CLOSED = "127.0.0.1:1"


def run(coro_fn: Callable[[], Awaitable[T]], timeout: float = 15.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro_fn(), timeout)

    return asyncio.run(main())


def deadline_in(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


def fast_client(**kw: Any) -> StateClient:
    kw.setdefault("timeout_seconds", 2.0)
    kw.setdefault("backoff", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return StateClient(**kw)


# -- the order of attempts --------------------------------------------------


def test_fetches_from_single_master_with_original_headers() -> None:
    async def go() -> None:
        async with FakeMaster({**minimal_state(), "hostname": "m1"}) as m, fast_client() as c:
            result = await c.fetch(["", m.address], deadline_in(5))
            assert isinstance(result, FetchResult)
            doc, master = result.document(), result.master
            assert master == m.address
            assert doc["leader"] == m.pid and doc["hostname"] == "m1"
            assert m.paths == ["/master/state"]
            headers = m.headers[0]
            assert headers["User-Agent"] == "Mesos-DNS"
            assert headers["Content-Type"] == "application/json"
            assert "Authorization" not in headers

    run(go)


def test_leader_slot_is_tried_first() -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster() as b, fast_client() as c:
            _, master = await c.fetch([b.address, a.address], deadline_in(5))
            assert master == b.address
            assert (a.requests, b.requests) == (0, 1)

    run(go)


def test_empty_leader_slot_then_masters_in_order() -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster() as b, fast_client() as c:
            _, master = await c.fetch(["", a.address, b.address], deadline_in(5))
            assert master == a.address
            assert (a.requests, b.requests) == (1, 0)

    run(go)


def test_failed_leader_slot_falls_back_to_the_rest() -> None:
    async def go() -> None:
        async with FakeMaster() as a, fast_client(attempts=1) as c:
            _, master = await c.fetch([CLOSED, a.address], deadline_in(5))
            assert master == a.address

    run(go)


def test_failed_leader_slot_with_no_rest_fails() -> None:
    async def go() -> None:
        async with fast_client(attempts=1) as c:
            with pytest.raises(FetchError, match=r"127\.0\.0\.1:1: cannot connect"):
                await c.fetch([CLOSED], deadline_in(5))

    run(go)


def test_no_masters() -> None:
    async def go() -> None:
        async with fast_client() as c:
            with pytest.raises(FetchError, match="no masters"):
                await c.fetch([], deadline_in(5))
            with pytest.raises(FetchError, match="no masters"):
                await c.fetch([""], deadline_in(5))

    run(go)


def test_unparseable_master_is_skipped() -> None:
    async def go() -> None:
        async with FakeMaster() as a, fast_client() as c:
            _, master = await c.fetch(["", "nonsense", a.address], deadline_in(5))
            assert master == a.address

    run(go)


# -- failover ---------------------------------------------------------------


def test_fallback_when_first_master_is_down() -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster() as b, fast_client() as c:
            await a.stop()
            _, master = await c.fetch(["", a.address, b.address], deadline_in(5))
            assert master == b.address
            # and back when it returns, on the same port
            await a.start()
            _, master = await c.fetch(["", a.address, b.address], deadline_in(5))
            assert master == a.address

    run(go)


def test_fallback_on_5xx_after_retries() -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster() as b, fast_client(attempts=3) as c:
            a.status = 503
            _, master = await c.fetch(["", a.address, b.address], deadline_in(5))
            assert master == b.address
            assert a.requests == 3  # retried, then failed over

    run(go)


def test_fallback_on_invalid_json_without_retry() -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster() as b, fast_client(attempts=3) as c:
            a.invalid_json = True
            _, master = await c.fetch(["", a.address, b.address], deadline_in(5))
            assert master == b.address
            assert a.requests == 1

    run(go)


def test_fallback_on_non_object_json() -> None:
    async def go() -> None:
        async with FakeMaster(b"[1, 2]") as a, FakeMaster() as b, fast_client() as c:
            _, master = await c.fetch(["", a.address, b.address], deadline_in(5))
            assert master == b.address

    run(go)


def test_fallback_when_a_master_is_slower_than_state_timeout() -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster() as b:
            a.delay = 3.0
            async with fast_client(timeout_seconds=0.2, attempts=2) as c:
                loop = asyncio.get_running_loop()
                started = loop.time()
                _, master = await c.fetch(["", a.address, b.address], deadline_in(5))
                assert master == b.address
                assert a.requests == 2
                assert loop.time() - started < 1.5

    run(go)


def test_whole_refresh_respects_one_deadline() -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster() as b:
            a.delay = 5.0
            async with fast_client(timeout_seconds=30, attempts=5) as c:
                loop = asyncio.get_running_loop()
                started = loop.time()
                with pytest.raises(FetchError) as info:
                    await c.fetch(["", a.address, b.address], started + 0.5)
                elapsed = loop.time() - started
                assert 0.45 <= elapsed < 1.0
                message = str(info.value)
                assert f"{a.address}: timed out" in message
                assert f"{b.address}: not tried, refresh deadline passed" in message
                assert b.requests == 0

    run(go)


def test_retries_then_succeeds_on_the_same_master() -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster() as b, fast_client(attempts=3) as c:
            a.fail_times = 2
            _, master = await c.fetch(["", a.address, b.address], deadline_in(5))
            assert master == a.address
            assert (a.requests, b.requests) == (3, 0)

    run(go)


def test_no_retry_on_4xx() -> None:
    async def go() -> None:
        async with FakeMaster() as a, fast_client(attempts=3) as c:
            a.status = 404
            with pytest.raises(FetchError, match="HTTP 404"):
                await c.fetch(["", a.address], deadline_in(5))
            assert a.requests == 1

    run(go)


def test_error_names_every_master_and_why() -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster() as b, FakeMaster() as d:
            a.status = 503
            b.invalid_json = True
            d.leader = ""
            async with fast_client(attempts=2) as c:
                with pytest.raises(FetchError) as info:
                    await c.fetch([CLOSED, a.address, b.address, d.address], deadline_in(5))
            message = str(info.value)
            assert "127.0.0.1:1: cannot connect" in message
            assert f"{a.address}: HTTP 503 (after 2 attempts)" in message
            assert f"{b.address}: invalid JSON" in message
            assert f"{d.address}: state names no leader" in message

    run(go)


@pytest.mark.parametrize("mode", ["empty", "missing"])
def test_document_without_leader_is_a_failure(mode: str) -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster() as b, fast_client() as c:
            if mode == "empty":
                a.leader = ""
            else:
                a.leader_missing = True
            _, master = await c.fetch(["", a.address, b.address], deadline_in(5))
            assert master == b.address

    run(go)


# -- following the leader the document names --------------------------------


def test_follows_leader_on_another_host_using_the_asked_port() -> None:
    # The leader lives on another loopback address, on a's port: the original
    # keeps the port of the master it asked and swaps the host.
    async def go() -> None:
        a = await FakeMaster().start()
        leader_state = {**minimal_state(), "hostname": "leader"}
        async with a, FakeMaster(leader_state, host="127.0.0.2", port=a.port) as leader:
            a.leader = f"master@127.0.0.2:{a.port + 1}"  # its port is ignored
            async with fast_client() as c:
                result = await c.fetch(["", a.address], deadline_in(5))
                doc, master = result.document(), result.master
            assert master == f"127.0.0.2:{a.port}"
            assert doc["hostname"] == "leader"
            assert (a.requests, leader.requests) == (1, 1)

    run(go)


def test_redirect_from_non_leading_master_is_followed() -> None:
    # A non-leading Mesos master answers 307 to the leader. The HTTP client
    # follows it (as Go's does); the document then names a leader on another
    # host than the one asked, so the state is fetched once more from it.
    async def go() -> None:
        a = await FakeMaster().start()
        async with a, FakeMaster(host="127.0.0.2", port=a.port) as leader:
            a.redirect_to = f"//127.0.0.2:{a.port}/master/state"
            async with fast_client() as c:
                _, master = await c.fetch(["", a.address], deadline_in(5))
            assert master == f"127.0.0.2:{a.port}"
            assert (a.requests, leader.requests) == (1, 2)
            assert leader.headers[0]["User-Agent"] == "Mesos-DNS"

    run(go)


def test_same_host_leader_is_not_refetched() -> None:
    async def go() -> None:
        async with FakeMaster() as a, fast_client() as c:
            a.leader = "master@127.0.0.1:9"
            result = await c.fetch(["", a.address], deadline_in(5))
            doc, master = result.document(), result.master
            assert master == a.address and doc["leader"] == "master@127.0.0.1:9"
            assert a.requests == 1

    run(go)


def test_followed_leader_is_not_followed_again() -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster(host="127.0.0.2", port=a.port) as leader:
            a.leader = f"master@127.0.0.2:{a.port}"
            leader.leader = f"master@127.0.0.3:{a.port}"
            async with fast_client() as c:
                result = await c.fetch(["", a.address], deadline_in(5))
                doc, master = result.document(), result.master
            assert master == f"127.0.0.2:{a.port}"
            assert doc["leader"] == f"master@127.0.0.3:{a.port}"

    run(go)


def test_unreachable_named_leader_fails_over_to_next_master() -> None:
    async def go() -> None:
        async with FakeMaster() as a, FakeMaster() as b, fast_client(attempts=1) as c:
            a.leader = f"master@127.0.0.2:{a.port}"  # nothing listens there
            _, master = await c.fetch(["", a.address, b.address], deadline_in(5))
            assert master == b.address

    run(go)


def test_invalid_leader_address_is_a_failure() -> None:
    async def go() -> None:
        async with FakeMaster() as a, fast_client() as c:
            a.leader = "nonsense"
            with pytest.raises(FetchError, match="invalid leader address"):
                await c.fetch(["", a.address], deadline_in(5))

    run(go)


def test_leader_host() -> None:
    assert leader_host("master@10.0.0.1:5050") == "10.0.0.1"
    assert leader_host("master@[fd00::1]:5050") == "fd00::1"
    for bad in ("10.0.0.1:5050", "a@b@c:1", "master@nohostport"):
        with pytest.raises(ValueError):
            leader_host(bad)


# -- authentication and TLS -------------------------------------------------


def test_basic_auth_header_and_secret_stays_secret() -> None:
    async def go() -> None:
        async with FakeMaster(basic_auth=("dns", "s3cr3t-value")) as a:
            async with fast_client(auth="basic", principal="dns", secret="s3cr3t-value") as c:
                assert "s3cr3t-value" not in repr(c)
                await c.fetch(["", a.address], deadline_in(5))
            token = base64.b64encode(b"dns:s3cr3t-value").decode()
            assert a.headers[-1]["Authorization"] == f"Basic {token}"
            async with fast_client(auth="basic", principal="dns", secret="wrong-value") as c:
                with pytest.raises(FetchError, match="HTTP 401") as info:
                    await c.fetch(["", a.address], deadline_in(5))
                assert "wrong-value" not in str(info.value)

    run(go)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="MesosAuthentication"):
        StateClient(auth="kerberos")
    with pytest.raises(ConfigError, match="IAMConfigFile"):
        StateClient(auth="iam")
    with pytest.raises(ConfigError, match="MesosCredentials"):
        StateClient(auth="basic")
    with pytest.raises(ConfigError, match="KeyFile"):
        StateClient(https=True, cert_file="/nonexistent.pem")
    with pytest.raises(ConfigError, match="CACertFile"):
        StateClient(https=True, ca_file="/nonexistent/ca.pem")
    with pytest.raises(ConfigError, match="StateTimeoutSeconds"):
        StateClient(timeout_seconds=0)


class Certs:
    def __init__(
        self,
        ca: Path,
        server_cert: Path,
        server_key: Path,
        client_cert: Path,
        client_key: Path,
        other_ca: Path,
    ) -> None:
        self.ca, self.server_cert, self.server_key = ca, server_cert, server_key
        self.client_cert, self.client_key, self.other_ca = client_cert, client_key, other_ca


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("certs")
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: Any, path: Path) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def make_ca(cn: str, path: Path) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return key, cert

    def issue(
        ca_key: Any, ca_cert: Any, cn: str, server: bool, cert_path: Path, key_path: Path
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        else:
            usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, key_path)

    ca_key, ca_cert = make_ca("mesosdns test CA", d / "ca.pem")
    make_ca("some other CA", d / "other-ca.pem")
    issue(ca_key, ca_cert, "master", True, d / "server.pem", d / "server.key")
    issue(ca_key, ca_cert, "mesos-dns", False, d / "client.pem", d / "client.key")
    return Certs(
        d / "ca.pem",
        d / "server.pem",
        d / "server.key",
        d / "client.pem",
        d / "client.key",
        d / "other-ca.pem",
    )


def server_context(certs: Certs, require_client: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    if require_client:
        ctx.load_verify_locations(certs.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def test_https_verifies_the_master_with_the_ca(certs: Certs) -> None:
    async def go() -> None:
        async with FakeMaster(ssl_context=server_context(certs)) as a:
            async with fast_client(https=True, ca_file=str(certs.ca)) as c:
                _, master = await c.fetch(["", a.address], deadline_in(5))
                assert master == a.address
            async with fast_client(https=True, ca_file=str(certs.other_ca)) as c:
                with pytest.raises(FetchError, match="TLS error"):
                    await c.fetch(["", a.address], deadline_in(5))
            # Without a CA the original does not verify (InsecureSkipVerify).
            async with fast_client(https=True) as c:
                _, master = await c.fetch(["", a.address], deadline_in(5))
                assert master == a.address
            # Plain HTTP to a TLS port fails.
            async with fast_client(attempts=1) as c:
                with pytest.raises(FetchError):
                    await c.fetch(["", a.address], deadline_in(5))

    run(go)


def test_https_client_certificate(certs: Certs) -> None:
    async def go() -> None:
        async with FakeMaster(ssl_context=server_context(certs, require_client=True)) as a:
            async with fast_client(
                https=True,
                ca_file=str(certs.ca),
                cert_file=str(certs.client_cert),
                key_file=str(certs.client_key),
            ) as c:
                _, master = await c.fetch(["", a.address], deadline_in(5))
                assert master == a.address
            async with fast_client(https=True, ca_file=str(certs.ca), attempts=1) as c:
                with pytest.raises(FetchError):
                    await c.fetch(["", a.address], deadline_in(5))

    run(go)


# -- session lifecycle ------------------------------------------------------


def test_close_is_idempotent_and_client_reusable() -> None:
    async def go() -> None:
        async with FakeMaster() as a:
            c = fast_client()
            await c.fetch(["", a.address], deadline_in(5))
            await c.close()
            await c.close()
            await c.fetch(["", a.address], deadline_in(5))  # a new session
            await c.close()

    run(go)


# -- stateFile ----------------------------------------------------------------


def test_load_state_file(tmp_path: Path) -> None:
    good = tmp_path / "state.json"
    good.write_bytes(orjson.dumps(minimal_state("master@10.0.0.1:5050")))
    assert orjson.loads(load_state_file(good))["leader"] == "master@10.0.0.1:5050"
    assert orjson.loads(load_state_file(str(good)))["leader"] == "master@10.0.0.1:5050"
    with pytest.raises(FetchError, match="cannot read"):
        load_state_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{nope")
    with pytest.raises(StateError, match="not valid JSON"):
        load_state_file(bad)
    bad.write_bytes(b"[]")
    with pytest.raises(StateError, match="not a JSON object"):
        load_state_file(bad)


# -- the fake master as a separate process --------------------------------------


def test_fakemaster_subprocess(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(orjson.dumps(minimal_state("master@10.9.9.9:5050")))
    script = Path(__file__).with_name("fakemaster.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--state", str(state), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:"), line
        address = line.removeprefix("listening on ")

        async def go() -> None:
            async with fast_client() as c:
                result = await c.fetch(["", address], deadline_in(5))
                doc, master = result.document(), result.master
                assert master == address
                assert doc["leader"] == f"master@{address}"

        run(go)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_fetches_reuse_one_receive_buffer_and_each_body_is_whole() -> None:
    """Documents of growing and shrinking size, fetched one after the other
    into the client's one buffer, each read back exactly; a view of an
    earlier body kept alive does not corrupt it or the next one."""

    def doc(tasks: int) -> dict[str, Any]:
        state = minimal_state()
        state["padding"] = ["x" * 1000] * tasks
        return state

    async def go() -> None:
        async with FakeMaster() as m, fast_client() as c:
            for size in (300, 20, 600, 0, 50):
                m.state = doc(size)
                result = await c.fetch(["", m.address], deadline_in(5))
                assert result.document()["padding"] == ["x" * 1000] * size
            # after the 50-task document the buffer is no more than twice its size
            assert len(c._recv) <= 2 * len(result.body)
            kept = result.body
            expected = bytes(kept)
            m.state = doc(900)  # larger: the buffer cannot grow while a view lives
            result = await c.fetch(["", m.address], deadline_in(5))
            assert result.document()["padding"] == ["x" * 1000] * 900
            assert bytes(kept) == expected

    run(go)


def test_the_poller_frees_the_buffer_before_a_whole_build() -> None:
    """A whole build's peak does not hold the document's buffer too; a diff
    keeps it for the next fetch."""
    from mesosdns.builder.engine import Compilers
    from mesosdns.builder.poll import Poller, Source
    from mesosdns.dns.settings import DNSSettings
    from mesosdns.metrics import RefreshStats
    from mesosdns.records.generator import GeneratorParams

    async def go() -> None:
        async with FakeMaster() as m, fast_client() as c:
            compilers = Compilers(DNSSettings())
            poller = Poller(Source(client=c), GeneratorParams(), RefreshStats(),
                            refresh_seconds=60, compilers=lambda: compilers,
                            sink=lambda u: None, masters=lambda: ["", m.address])
            assert await poller.refresh()  # the first state: built whole
            assert len(c._recv) == 0
            assert await poller.refresh()  # the same state again: a diff
            assert len(c._recv) == len(m.document())

    run(go)
