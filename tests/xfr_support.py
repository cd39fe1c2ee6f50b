"""Helpers of the zone transfer tests: a cluster (the App with a fake master,
in a loop thread), transfers with dnspython, zones as sets of record texts."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone
from dns_support import LoopThread
from fakemaster import FakeMaster

from mesosdns.app import App
from mesosdns.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
DEMO = json.loads((ROOT / "fixtures" / "demo-state.json").read_text())
SECRET = base64.b64encode(b"mesosdns zone transfer test key!").decode()
KEYNAME = "xfr-key"
KEYRING = dns.tsigkeyring.from_text({KEYNAME: SECRET})
OTHER_KEYRING = dns.tsigkeyring.from_text({"other-key": SECRET})
WRONG_SECRET_KEYRING = dns.tsigkeyring.from_text(
    {KEYNAME: base64.b64encode(b"not the secret the server has...").decode()}
)


def wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Cluster:
    """The App (builder and server in one process) over a fake master."""

    def __init__(self, state: dict[str, Any] | None = None, **config: Any) -> None:
        self.lt = LoopThread()
        self.master = self.lt.run(FakeMaster(copy.deepcopy(state or DEMO)).start())
        doc = {
            "masters": [self.master.address],
            "refreshSeconds": 1,
            "port": 0,
            "listener": "127.0.0.1",
            "httpon": False,
            "externalon": False,
            "ttl": 45,
            **config,
        }
        self.config, _ = parse_config(json.dumps(doc))

        async def start() -> App:
            app = App(self.config)
            await app.start()
            return app

        self.app = self.lt.run(start())
        wait(lambda: bool(self.app.dns.ready), 10.0, "the first state")
        self.port: int = self.app.dns.port

    @property
    def serial(self) -> int:
        return int(self.lt.call(lambda: self.app.dns.table.serial))

    def change(self, fn: Callable[[dict[str, Any]], None]) -> None:
        """Change the master's state (on its loop)."""
        def apply() -> None:
            state = self.master.state
            assert isinstance(state, dict)
            fn(state)

        self.lt.call(apply)

    def close(self) -> None:
        try:
            self.lt.run(self.app.stop())
            self.lt.run(self.master.stop())
        finally:
            self.lt.close()
        assert not self.lt.thread.is_alive()


def transfer(
    port: int, origin: str, *, keyring: Any = KEYRING, keyname: str | None = KEYNAME,
    serial: int | None = None, zone: dns.zone.Zone | None = None,
) -> dns.zone.Zone:
    """An AXFR (or, with ``serial`` and ``zone``, an IXFR applied to ``zone``)."""
    z = zone if zone is not None else dns.zone.Zone(origin)
    name = None if keyname is None else dns.name.from_text(keyname)
    q, _ = dns.xfr.make_query(z, serial=serial, keyring=keyring, keyname=name)
    dns.query.inbound_xfr("127.0.0.1", z, q, port=port, timeout=5.0, lifetime=30.0)
    return z


def messages(
    port: int, origin: str, rdtype: str = "AXFR", serial: int = 0, *,
    keyring: Any = KEYRING, keyname: str | None = KEYNAME,
) -> list[dns.message.Message]:
    """The messages of a transfer, as dnspython reads (and verifies) them."""
    return list(dns.query.xfr(
        "127.0.0.1", origin, rdtype=rdtype, port=port, timeout=5.0, lifetime=30.0,
        keyring=keyring, keyname=keyname, serial=serial, relativize=False,
        raise_on_serial_went_backwards=False,
    ))


def answer_texts(msgs: list[dns.message.Message]) -> list[str]:
    """Every answer record of the messages, in order, as text."""
    return [f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rr.to_text()}"
            for m in msgs for rrset in m.answer for rr in rrset]


def zone_texts(z: dns.zone.Zone) -> set[str]:
    """A zone's records as absolute texts: "name ttl TYPE rdata"."""
    out = set()
    for name, ttl, rd in z.iterate_rdatas():
        owner = name.derelativize(z.origin)
        text = rd.to_text(origin=z.origin, relativize=False)
        out.add(f"{owner} {ttl} {dns.rdatatype.to_text(rd.rdtype)} {text}")
    return out


def soa_serial(z: dns.zone.Zone) -> int:
    return int(z.get_soa().serial)  # type: ignore[no-untyped-call]


def clone_task(state: dict[str, Any], name: str, ip: str, port: int) -> None:
    """Add a running task named ``name`` to the first framework (a copy of its
    first task with a new id, address and port)."""
    fw = state["frameworks"][0]
    task = copy.deepcopy(fw["tasks"][0])
    task["id"] = f"{name}.0c0ffee0-0000-4000-8000-000000000001"
    task["name"] = name
    task["resources"]["ports"] = f"[{port}-{port}]"
    for status in task["statuses"]:
        for info in status.get("container_status", {}).get("network_infos", []):
            for addr in info.get("ip_addresses", []):
                addr["ip_address"] = ip
    task.pop("discovery", None)
    fw["tasks"].append(task)
