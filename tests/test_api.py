"""The HTTP API in-process: every route's status, content type and JSON shape.

The records come from ``fixtures/demo-state.json`` through the real parser and
generator; the expected values are the hand-derived ones in
``tests/expected/demo-default.json`` (same parameters as there). The shapes
follow the original's ``resolver/resolver.go`` handlers: empty results are one
record of empty strings with status 200, ``service`` echoes the text as asked,
``.*`` is removed and names are lower-cased before the lookup.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from test_config import GO_NAMES

import mesosdns.server.api as api_module
from mesosdns import __version__
from mesosdns.app import App
from mesosdns.config import Config, parse_config
from mesosdns.metrics import Metrics, RefreshStats
from mesosdns.records.generator import GeneratorParams, generate
from mesosdns.records.model import RecordSet
from mesosdns.server.api import API
from mesosdns.state.model import parse_state
from mesosdns.store.snapshot import Snapshot, SnapshotStore

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo-state.json"
IPV6 = ROOT / "fixtures" / "ipv6-state.json"
EXPECTED = json.loads((ROOT / "tests" / "expected" / "demo-default.json").read_text())
MASTERS = ("10.0.0.11:5050", "10.0.0.12:5050", "10.0.0.13:5050")
SECRET = "s3cr3t-never-shown"
SERIAL = 1_700_000_000

T = TypeVar("T")

# The original's Config struct, as Go's json.Marshal writes it (declaration order).
GO_FIELDS = GO_NAMES
EMPTY_HOSTS = [{"host": "", "ip": ""}]
EMPTY_SERVICES = [{"service": "", "host": "", "ip": "", "port": ""}]


def run(fn: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(fn(), timeout)

    return asyncio.run(main())


def make_config(**keys: Any) -> Config:
    doc: dict[str, Any] = {
        "masters": list(MASTERS),
        "resolvers": ["8.8.8.8"],
        "listener": "10.0.0.11",
        "mesosAuthentication": "basic",
        "mesosCredentials": {"principal": "dns", "secret": SECRET},
        **keys,
    }
    config, _ = parse_config(json.dumps(doc))
    return config


def records(path: Path = DEMO) -> RecordSet:
    """The records the server builds from a fixture (the expected files' parameters)."""
    params = GeneratorParams(listener_ips=("10.0.0.11",), masters=("", *MASTERS))
    return generate(parse_state(path.read_bytes()), params)


class Counters:
    """The lookup counter the app wires in, with the original's counter names."""

    def __init__(self) -> None:
        self.values = dict.fromkeys(
            [
                "MesosRequests",
                "MesosSuccess",
                "MesosNXDomain",
                "NonMesosRequests",
                "NonMesosFailed",
            ],
            0,
        )

    def count(self, in_domain: bool, found: bool) -> None:
        if in_domain:
            self.values["MesosRequests"] += 1
            self.values["MesosSuccess" if found else "MesosNXDomain"] += 1
        else:
            self.values["NonMesosRequests"] += 1
            self.values["NonMesosFailed"] += 1

    def as_dict(self) -> dict[str, int]:
        return dict(self.values)


class Harness:
    def __init__(
        self,
        client: TestClient[Any, Any],
        store: SnapshotStore,
        counters: Counters,
        stats: RefreshStats,
    ) -> None:
        self.client, self.store, self.counters, self.stats = client, store, counters, stats

    async def get(self, path: str, method: str = "GET") -> tuple[int, str, str]:
        resp = await self.client.request(method, path)
        return resp.status, resp.content_type, await resp.text()

    async def json(self, path: str) -> Any:
        resp = await self.client.get(path)
        assert resp.status == 200, (path, resp.status, await resp.text())
        assert resp.content_type == "application/json"
        return json.loads(await resp.text())

    def publish(self, rs: RecordSet | None = None, serial: int = SERIAL) -> Snapshot:
        snap = Snapshot(rs if rs is not None else records(), serial, source="10.0.0.11:5050")
        self.store.publish(snap)
        return snap


@asynccontextmanager
async def serving(config: Config | None = None, *, loaded: bool = True) -> AsyncIterator[Harness]:
    config = config or make_config()
    store, counters, stats = SnapshotStore(), Counters(), RefreshStats()
    api = API(config, store, Metrics(counters, stats, store), counters.count)
    async with TestClient(TestServer(api.app())) as client:
        harness = Harness(client, store, counters, stats)
        if loaded:
            harness.publish()
        yield harness


def with_api(
    config: Config | None = None, *, loaded: bool = True
) -> Callable[[Callable[[Harness], Awaitable[None]]], None]:
    """Run ``body(harness)`` against a served API (the decorated test runs it)."""

    def runner(body: Callable[[Harness], Awaitable[None]]) -> None:
        async def main() -> None:
            async with serving(config, loaded=loaded) as h:
                await body(h)

        run(main)

    return runner


# --------------------------------------------------------------------------- /v1/version


def test_version() -> None:
    async def body(h: Harness) -> None:
        assert await h.json("/v1/version") == {
            "Service": "Mesos-DNS",
            "Version": __version__,
            "URL": "https://github.com/mesosphere/mesos-dns",
        }

    with_api()(body)


# --------------------------------------------------------------------------- /v1/config


def test_config_has_go_field_names_and_redacts_the_secret() -> None:
    async def body(h: Harness) -> None:
        resp = await h.client.get("/v1/config")
        text = await resp.text()
        assert resp.status == 200 and resp.content_type == "application/json"
        assert SECRET not in text
        doc = json.loads(text)
        assert list(doc)[: len(GO_FIELDS)] == GO_FIELDS
        assert doc["MesosCredentials"] == {"Principal": "dns", "Secret": "******"}
        assert doc["MesosAuthentication"] == "basic"
        assert doc["Masters"] == list(MASTERS)
        assert doc["SOASerial"] == SERIAL
        assert doc["SOAMname"] == "ns1.mesos." and doc["SOARname"] == "root.ns1.mesos."
        assert (doc["RefreshSeconds"], doc["TTL"], doc["Port"], doc["HttpPort"]) == (
            60,
            60,
            53,
            8123,
        )
        assert doc["IPSources"] == ["netinfo", "mesos", "host"]
        assert doc["ZoneResolvers"] == {} and doc["Resolvers"] == ["8.8.8.8"]
        # our extensions follow, under their config-file names
        extensions = list(doc)[len(GO_FIELDS) :]
        assert "stateFile" in extensions and "logQueries" in extensions

    with_api()(body)


def test_config_without_secret_shows_empty_secret() -> None:
    config = make_config(mesosAuthentication="", mesosCredentials=None)

    async def body(h: Harness) -> None:
        doc = await h.json("/v1/config")
        assert doc["MesosCredentials"] == {"Principal": "", "Secret": ""}

    with_api(config)(body)


# --------------------------------------------------------------------------- /v1/hosts


@pytest.mark.parametrize(
    "asked",
    [
        "nginx.marathon.mesos",
        "nginx.marathon.mesos.",
        "NGINX.Marathon.MESOS",
        "nginx.*.marathon.mesos",
        "nginx.marathon.*.mesos.*",
    ],
)
def test_hosts_lower_cases_and_strips_wildcards(asked: str) -> None:
    async def body(h: Harness) -> None:
        got = await h.json(f"/v1/hosts/{asked}")
        assert got == [
            {"host": "nginx.marathon.mesos.", "ip": ip}
            for ip in EXPECTED["A"]["nginx.marathon.mesos."]
        ]

    with_api()(body)


def test_hosts_every_expected_name() -> None:
    async def body(h: Harness) -> None:
        for name, ips in EXPECTED["A"].items():
            got = await h.json(f"/v1/hosts/{name}")
            assert sorted(r["ip"] for r in got) == sorted(ips), name
            assert {r["host"] for r in got} == {name}

    with_api()(body)


@pytest.mark.parametrize(
    "asked",
    [
        "nope.marathon.mesos",
        "example.com",
        "mesos",
        "_tcp.marathon.mesos",
        "_nginx._tcp.marathon.mesos",
    ],
)
def test_hosts_empty_form(asked: str) -> None:
    async def body(h: Harness) -> None:
        assert await h.json(f"/v1/hosts/{asked}") == EMPTY_HOSTS

    with_api()(body)


def test_hosts_lists_a_then_aaaa() -> None:
    async def body(h: Harness) -> None:
        h.publish(records(IPV6))
        got = await h.json("/v1/hosts/web.marathon.mesos")
        rs = records(IPV6)
        want = [*rs.a["web.marathon.mesos."], *rs.aaaa["web.marathon.mesos."]]
        assert got == [{"host": "web.marathon.mesos.", "ip": ip} for ip in want]
        assert any(":" in r["ip"] for r in got) and any("." in r["ip"] for r in got)

    with_api()(body)


# --------------------------------------------------------------------------- /v1/services


def test_services_shape_and_values() -> None:
    async def body(h: Harness) -> None:
        got = await h.json("/v1/services/_nginx._tcp.marathon.mesos")
        assert sorted(got, key=lambda r: r["port"]) == [
            {
                "service": "_nginx._tcp.marathon.mesos",
                "host": "nginx-txdxu-s0.marathon.slave.mesos.",
                "ip": "10.0.1.21",
                "port": "31482",
            },
            {
                "service": "_nginx._tcp.marathon.mesos",
                "host": "nginx-uifzp-s1.marathon.slave.mesos.",
                "ip": "10.0.1.22",
                "port": "31790",
            },
        ]

    with_api()(body)


@pytest.mark.parametrize(
    "asked",
    [
        "_NGINX._TCP.Marathon.MESOS.",
        "_nginx._tcp.marathon.*.mesos",
        "_nginx._tcp.*.marathon.mesos.",
    ],
)
def test_services_echo_the_text_as_asked(asked: str) -> None:
    async def body(h: Harness) -> None:
        got = await h.json(f"/v1/services/{asked}")
        assert len(got) == 2
        assert {r["service"] for r in got} == {asked}
        assert {r["host"] for r in got} == {
            "nginx-txdxu-s0.marathon.slave.mesos.",
            "nginx-uifzp-s1.marathon.slave.mesos.",
        }

    with_api()(body)


def test_services_every_expected_name() -> None:
    async def body(h: Harness) -> None:
        for name, targets in EXPECTED["SRV"].items():
            got = await h.json(f"/v1/services/{name}")
            want = set()
            for target in targets:
                host, _, port = target.rpartition(":")
                if host in EXPECTED["A"]:  # targets without an address are left out
                    want.add((host, EXPECTED["A"][host][0], port))
            assert {(r["host"], r["ip"], r["port"]) for r in got} == want, name

    with_api()(body)


@pytest.mark.parametrize(
    "asked", ["_nope._tcp.marathon.mesos", "nginx.marathon.mesos", "_http._tcp.example.com"]
)
def test_services_empty_form(asked: str) -> None:
    async def body(h: Harness) -> None:
        assert await h.json(f"/v1/services/{asked}") == EMPTY_SERVICES

    with_api()(body)


# --------------------------------------------------------------------------- other routes


def test_ports_is_not_implemented() -> None:
    async def body(h: Harness) -> None:
        assert await h.get("/v1/hosts/nginx.marathon.mesos/ports") == (
            501,
            "text/plain",
            "To be implemented...",
        )

    with_api()(body)


@pytest.mark.parametrize(
    "path",
    ["/", "/v1", "/v1/hosts", "/v1/hosts/", "/v1/nope", "/v2/version", "/v1/hosts/a/ports/b"],
)
def test_unknown_route_is_404_text(path: str) -> None:
    async def body(h: Harness) -> None:
        status, ctype, _ = await h.get(path)
        assert (status, ctype) == (404, "text/plain")

    with_api()(body)


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/v1/version"),
        ("PUT", "/v1/config"),
        ("DELETE", "/v1/hosts/x.mesos"),
        ("POST", "/v1/services/_x._tcp.mesos"),
        ("POST", "/v1/enumerate"),
        ("PATCH", "/v1/axfr"),
        ("POST", "/metrics"),
        ("POST", "/health"),
        ("POST", "/ready"),
    ],
)
def test_wrong_method_is_405(method: str, path: str) -> None:
    async def body(h: Harness) -> None:
        status, ctype, _ = await h.get(path, method)
        assert (status, ctype) == (405, "text/plain")

    with_api()(body)


def test_overlong_name_is_refused() -> None:
    async def body(h: Harness) -> None:
        status, ctype, _ = await h.get("/v1/hosts/" + "a" * 2000)
        assert (status, ctype) == (400, "text/plain")

    with_api()(body)


def test_a_handler_failure_is_503_not_500(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> list[dict[str, str]]:
        raise RuntimeError("boom")

    monkeypatch.setattr(api_module, "hosts_body", broken)

    async def body(h: Harness) -> None:
        status, ctype, _ = await h.get("/v1/hosts/nginx.marathon.mesos")
        assert (status, ctype) == (503, "text/plain")
        assert (await h.get("/health"))[0] == 200

    with_api()(body)


# --------------------------------------------------------------------------- enumerate / axfr


def test_enumerate_shape() -> None:
    async def body(h: Harness) -> None:
        doc = await h.json("/v1/enumerate")
        assert list(doc) == ["frameworks"]
        names = [f["name"] for f in doc["frameworks"]]
        assert set(names) == {"marathon", "metronome", "kafka"}
        for fw in doc["frameworks"]:
            assert list(fw) == ["tasks", "name"]
            for task in fw["tasks"]:
                assert list(task) == ["name", "id", "records"]
                for rec in task["records"] or []:
                    assert list(rec) == ["name", "host", "rtype"]
                    assert rec["rtype"] in ("A", "AAAA", "SRV")
        marathon = next(f for f in doc["frameworks"] if f["name"] == "marathon")
        nginx = [t for t in marathon["tasks"] if t["name"] == "nginx"]
        assert len(nginx) == 2
        recs = {(r["name"], r["host"], r["rtype"]) for t in nginx for r in t["records"]}
        assert ("nginx.marathon.mesos.", "10.0.1.21", "A") in recs
        assert (
            "_nginx._tcp.marathon.mesos.",
            "nginx-uifzp-s1.marathon.slave.mesos.:31790",
            "SRV",
        ) in recs

    with_api()(body)


def test_axfr_shape_and_records() -> None:
    async def body(h: Harness) -> None:
        doc = await h.json("/v1/axfr")
        assert list(doc) == [
            "TTL",
            "Serial",
            "RefreshSeconds",
            "Mname",
            "Rname",
            "Domain",
            "Records",
        ]
        assert (doc["TTL"], doc["Serial"], doc["RefreshSeconds"]) == (60, SERIAL, 60)
        assert (doc["Mname"], doc["Rname"], doc["Domain"]) == (
            "ns1.mesos.",
            "root.ns1.mesos.",
            "mesos",
        )
        assert list(doc["Records"]) == ["As", "AAAAs", "SRVs"]
        assert doc["Records"]["As"] == EXPECTED["A"]
        assert doc["Records"]["AAAAs"] == EXPECTED["AAAA"]
        srvs = doc["Records"]["SRVs"]
        assert {k: sorted(v) for k, v in srvs.items()} == {
            k: sorted(v) for k, v in EXPECTED["SRV"].items()
        }

    with_api()(body)


def test_bodies_are_built_once_per_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real_enumerate, real_axfr = api_module.enumerate_json, api_module.axfr_json

    def enumerate_json(rs: RecordSet) -> bytes:
        built.append("enumerate")
        return real_enumerate(rs)

    def axfr_json(rs: RecordSet, serial: int, config: Config) -> bytes:
        built.append("axfr")
        return real_axfr(rs, serial, config)

    monkeypatch.setattr(api_module, "enumerate_json", enumerate_json)
    monkeypatch.setattr(api_module, "axfr_json", axfr_json)

    async def body(h: Harness) -> None:
        first = [await h.get(p) for p in ("/v1/enumerate", "/v1/axfr") * 3]
        assert sorted(built) == ["axfr", "enumerate"]
        assert first[0] == first[2] == first[4] and first[1] == first[3] == first[5]
        h.publish(serial=SERIAL + 1)
        second = await h.json("/v1/axfr")
        assert second["Serial"] == SERIAL + 1
        assert sorted(built) == ["axfr", "axfr", "enumerate"]

    with_api()(body)


def test_enumerate_and_axfr_absent_without_enumeration() -> None:
    async def body(h: Harness) -> None:
        for path in ("/v1/enumerate", "/v1/axfr"):
            status, ctype, _ = await h.get(path)
            assert (status, ctype) == (404, "text/plain"), path
        doc = await h.json("/v1/config")
        assert doc["EnumerationOn"] is False
        assert await h.json("/v1/hosts/leader.mesos") == [
            {"host": "leader.mesos.", "ip": "10.0.0.11"}
        ]

    with_api(make_config(EnumerationOn=False))(body)


# --------------------------------------------------------------------------- before the first load


V1_PATHS = [
    "/v1/version",
    "/v1/config",
    "/v1/hosts/nginx.marathon.mesos",
    "/v1/services/_nginx._tcp.marathon.mesos",
    "/v1/enumerate",
    "/v1/axfr",
]


def test_nothing_under_v1_before_the_first_load_then_ready() -> None:
    async def body(h: Harness) -> None:
        for path in V1_PATHS:
            status, ctype, _ = await h.get(path)
            assert (status, ctype) == (503, "text/plain"), path
        assert (await h.get("/v1/hosts/x/ports"))[0] == 501  # not state-dependent
        assert await h.get("/health") == (200, "text/plain", "ok\n")
        status, ctype, text = await h.get("/ready")
        assert (status, ctype) == (503, "text/plain") and "not ready" in text
        assert metric_values(await h.get("/metrics"))["mesosdns_ready"] == 0

        h.publish()
        status, _, text = await h.get("/ready")
        assert status == 200 and text == f"ready: serial {SERIAL}\n"
        for path in V1_PATHS:
            assert (await h.get(path))[0] == 200, path
        assert metric_values(await h.get("/metrics"))["mesosdns_ready"] == 1

    with_api(loaded=False)(body)


# --------------------------------------------------------------------------- /metrics


def metric_values(response: tuple[int, str, str]) -> dict[str, float]:
    """Parse a /metrics response; sample name (with labels) -> value."""
    status, ctype, text = response
    assert status == 200 and ctype == "text/plain"
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def test_metrics_parse_and_describe_the_refreshes() -> None:
    async def body(h: Harness) -> None:
        resp = await h.client.get("/metrics")
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        h.stats.attempts, h.stats.successes = 3, 1
        h.stats.failed("FetchError")
        h.stats.failed("FetchError")
        m = metric_values(await h.get("/metrics"))
        assert m["mesosdns_refresh_attempts_total"] == 3
        assert m["mesosdns_refresh_successes_total"] == 1
        assert m['mesosdns_refresh_failures_total{kind="FetchError"}'] == 2
        counts = records().count()
        for rtype in ("A", "AAAA", "SRV"):
            assert m[f'mesosdns_records{{type="{rtype}"}}'] == counts[rtype]
        assert m["mesosdns_ready"] == 1
        for name in (
            "mesos_requests",
            "mesos_success",
            "mesos_nxdomain",
            "non_mesos_requests",
            "non_mesos_failed",
        ):
            assert m[f"mesosdns_{name}_total"] == 0

    with_api()(body)


def test_http_lookups_move_the_original_counters() -> None:
    async def body(h: Harness) -> None:
        await h.get("/v1/hosts/nginx.marathon.mesos")  # found
        await h.get("/v1/hosts/nope.marathon.mesos")  # in domain, missing
        await h.get("/v1/hosts/www.example.com")  # outside the domain
        await h.get("/v1/services/_nginx._tcp.marathon.mesos")  # found
        await h.get("/v1/services/_nope._tcp.marathon.mesos")  # missing
        h.publish(records(IPV6))
        await h.get("/v1/hosts/v6app.marathon.mesos")  # AAAA only: not a success
        m = metric_values(await h.get("/metrics"))
        assert m["mesosdns_mesos_requests_total"] == 5
        assert m["mesosdns_mesos_success_total"] == 2
        assert m["mesosdns_mesos_nxdomain_total"] == 3
        assert m["mesosdns_non_mesos_requests_total"] == 1
        assert m["mesosdns_non_mesos_failed_total"] == 1

    with_api()(body)


def test_the_app_wires_api_metrics_and_state_file(tmp_path: Path) -> None:
    """The composition root: HTTP on a real port, counters from the DNS stats."""
    config = make_config(
        stateFile=str(DEMO),
        httpPort=0,
        httpListener="127.0.0.1",
        listener="127.0.0.1",
        DnsOn=False,
        externalOn=False,
    )

    async def main() -> None:
        import aiohttp

        app = App(config)
        await app.start()
        try:
            base = f"http://127.0.0.1:{app.http_port}"
            async with aiohttp.ClientSession() as session:

                async def get(path: str) -> tuple[int, str, str]:
                    async with session.get(base + path) as resp:
                        return resp.status, resp.content_type, await resp.text()

                for _ in range(200):
                    if (await get("/ready"))[0] == 200:
                        break
                    await asyncio.sleep(0.02)
                status, _, text = await get("/v1/hosts/nginx.marathon.mesos")
                assert status == 200
                assert sorted(r["ip"] for r in json.loads(text)) == ["10.0.1.21", "10.0.1.22"]
                await get("/v1/hosts/nope.mesos")
                await get("/v1/hosts/example.org")
                m = metric_values(await get("/metrics"))
                assert m["mesosdns_mesos_requests_total"] == 2
                assert m["mesosdns_mesos_success_total"] == 1
                assert m["mesosdns_mesos_nxdomain_total"] == 1
                assert m["mesosdns_non_mesos_requests_total"] == 1
                assert m["mesosdns_refresh_successes_total"] == 1
                assert m["mesosdns_ready"] == 1
                status, _, text = await get("/v1/config")
                assert SECRET not in text
                assert json.loads(text)["stateFile"] == str(DEMO)
        finally:
            await app.stop()

    run(main)


def test_error_bodies_are_the_originals() -> None:
    """go-restful's 404/405 bodies, not aiohttp's pages (tests/test_http_routes.py has them all)."""

    async def body(h: Harness) -> None:
        assert await h.get("/nope") == (404, "text/plain", "404: Page Not Found")
        assert await h.get("/v1/version", "POST") == (
            405,
            "text/plain",
            "405: Method Not Allowed",
        )

    with_api()(body)
