"""Secrets never leave the process: the Mesos credentials' secret (and its
HTTP Basic token), the ZooKeeper digest password of ``zk://user:pass@...``,
never in ``/v1/config``, ``/metrics``, logs (every logger, DEBUG included,
over a run with basic auth against masters that fail in every way) or error
messages.

"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator

import orjson
import pytest
from dns_support import LoopThread
from fakemaster import FakeMaster
from reliability_support import AppThread, good_state

from mesosdns.app import log_config_summary
from mesosdns.builder.service import state_client
from mesosdns.config import parse_config
from mesosdns.errors import ConfigError, FetchError

PRINCIPAL = "dns-principal"
SECRET = "s3cr3t-Mesos-value-42"
ZK_PASSWORD = "zk-digest-pw-77"
TOKEN = base64.b64encode(f"{PRINCIPAL}:{SECRET}".encode()).decode()
SECRETS = (SECRET, TOKEN, ZK_PASSWORD)


def leaks(text: str, secrets: tuple[str, ...] = (SECRET, TOKEN)) -> list[str]:
    return [s for s in secrets if s in text]


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Messages, arguments and tracebacks of every record."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(repr(record.args))
        parts.append(repr(record.msg))
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
    return "\n".join(parts)


@pytest.fixture
def masters() -> Iterator[tuple[LoopThread, FakeMaster]]:
    lt = LoopThread()
    master = lt.run(FakeMaster(good_state(), basic_auth=(PRINCIPAL, SECRET)).start())
    try:
        yield lt, master
    finally:
        lt.run(master.stop())
        lt.close()


def auth_config(master: FakeMaster, **extra: object) -> dict[str, object]:
    return {
        "masters": [master.address],
        "mesosAuthentication": "basic",
        "mesosCredentials": {"principal": PRINCIPAL, "secret": SECRET},
        **extra,
    }


def test_config_endpoint_and_metrics_hide_the_secret(
    masters: tuple[LoopThread, FakeMaster],
) -> None:
    _, master = masters
    app = AppThread(auth_config(master))
    try:
        app.wait_ready()
        status, body = app.http("/v1/config")
        assert status == 200
        shown = orjson.loads(body)["MesosCredentials"]
        assert shown == {"Principal": PRINCIPAL, "Secret": "******"}
        for path in ("/v1/config", "/metrics", "/v1/axfr", "/v1/enumerate", "/v1/version"):
            assert not leaks(app.http(path)[1].decode()), path
    finally:
        app.stop()


def test_logs_never_show_the_secret(
    masters: tuple[LoopThread, FakeMaster], caplog: pytest.LogCaptureFixture
) -> None:
    """A whole run at DEBUG: startup summary, good fetches, then a master that
    rejects the credentials, fails, redirects, hangs and goes away."""
    lt, master = masters
    caplog.set_level(logging.DEBUG)  # every logger: ours, aiohttp, kazoo, asyncio
    config = auth_config(master, stateTimeoutSeconds=1)
    app = AppThread(config)
    try:
        log_config_summary(app.config)
        app.wait_ready()
        assert app.refresh()
        faults = [
            ("wrong secret", "basic_auth", (PRINCIPAL, "another-secret"), (PRINCIPAL, SECRET)),
            ("HTTP 500", "status", 500, 200),
            ("redirect", "redirect_to", "//127.0.0.2:1/master/state", None),
            ("leader elsewhere", "leader", "master@127.0.0.2:1", None),
            ("slow", "delay", 1.5, 0.0),
            ("invalid JSON", "invalid_json", True, False),
        ]
        for what, attr, bad, good in faults:
            setattr(master, attr, bad)
            assert not app.refresh(), what
            setattr(master, attr, good)
            assert app.refresh(), what
        lt.run(master.stop())
        assert not app.refresh()
        assert app.addresses("sentinel.chronos.mesos.") == {"10.250.0.2"}
    finally:
        app.stop()
    text = all_log_text(caplog)
    assert "HTTP 401" in text  # the failures were logged ...
    assert not leaks(text)  # ... without the secret


def test_errors_never_show_the_secret(masters: tuple[LoopThread, FakeMaster]) -> None:
    lt, master = masters
    master.basic_auth = (PRINCIPAL, "another-secret")
    config, _ = parse_config(json.dumps(auth_config(master)))
    client = state_client(config)

    async def fetch() -> str:
        import asyncio

        try:
            deadline = asyncio.get_running_loop().time() + 5
            await client.fetch(["", master.address], deadline)
        except FetchError as exc:
            return f"{exc!s} {exc!r}"
        finally:
            await client.close()
        raise AssertionError("the fetch should fail")

    message = lt.run(fetch())
    assert "HTTP 401" in message and not leaks(message)
    assert not leaks(repr(client)) and not leaks(repr(config)) and not leaks(str(config))
    assert not leaks(repr(config.mesos_credentials))


@pytest.mark.parametrize(
    "doc",
    [
        {"mesosAuthentication": "basic", "mesosCredentials": {"principal": 7, "secret": SECRET}},
        {"mesosAuthentication": "nope", "mesosCredentials": {"principal": "p", "secret": SECRET}},
        {"mesosCredentials": {"principal": "p", "secret": SECRET, "extra": SECRET}},
        {"mesosCredentials": SECRET},
        {"mesosCredentials": [SECRET]},
    ],
    ids=["bad principal", "bad mechanism", "unknown sub-key", "a string", "an array"],
)
def test_config_errors_never_show_the_secret(doc: dict[str, object]) -> None:
    doc = {"masters": ["10.0.0.1:5050"], "port": "x", **doc}  # always at least one error
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(doc))
    assert not leaks("\n".join(info.value.problems)), info.value.problems


# -- the ZooKeeper digest password (zk://user:password@hosts/path) ----------------

ZK_URL = f"zk://jdoe:{ZK_PASSWORD}@127.0.0.1:1/mesos"


def test_zk_password_is_not_shown(caplog: pytest.LogCaptureFixture) -> None:
    config, _ = parse_config(json.dumps({"zk": ZK_URL, "zkDetectionTimeout": 0}))
    assert ZK_PASSWORD not in json.dumps(config.redacted())
    with caplog.at_level(logging.INFO, logger="mesosdns"):
        log_config_summary(config)
    assert ZK_PASSWORD not in caplog.text
    assert ZK_PASSWORD not in repr(config)


def test_zk_password_is_not_in_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps({"zk": f"zk://jdoe:{ZK_PASSWORD}@/mesos"}))
    assert ZK_PASSWORD not in str(info.value)


def test_zk_password_is_not_logged_by_the_detector(caplog: pytest.LogCaptureFixture) -> None:
    """What holds today: the detector and kazoo log the servers, not the credentials."""
    caplog.set_level(logging.DEBUG)
    app = AppThread({"zk": ZK_URL, "zkDetectionTimeout": 0, "masters": ["127.0.0.1:1"]})
    try:
        app.refresh(timeout=10)
    finally:
        app.stop()
    records = [r for r in caplog.records if r.name != "mesosdns.app"]
    text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in records)
    assert "127.0.0.1:1" in text and ZK_PASSWORD not in text
