"""The HTTP API, shaped as the original Mesos-DNS's, plus health and metrics.

Routes (GET): ``/v1/version``, ``/v1/config``, ``/v1/hosts/{host}``,
``/v1/hosts/{host}/ports`` (501, as the original), ``/v1/services/{service}``,
and, when ``EnumerationOn``, ``/v1/enumerate`` and ``/v1/axfr``. Ours:
``/metrics`` (Prometheus text), ``/health`` (the process is up) and
``/ready`` (the first state was loaded).

As the original, nothing under ``/v1`` is answered before the first good
load (503 here; the original's listener is not even up). Bodies that depend
only on the records are built once per snapshot. Unknown routes: 404
``text/plain``; other methods: 405. Errors never surface as 500: a handler
failure is logged and answered 503.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from mesosdns import __version__
from mesosdns.config import Config
from mesosdns.dns.aliases import Renamer, alias_domains
from mesosdns.metrics import CONTENT_TYPE, Metrics
from mesosdns.records.bodies import axfr_body, enumerate_body
from mesosdns.records.model import RecordSet
from mesosdns.snapshot import Snapshot, SnapshotStore

log = logging.getLogger(__name__)

LookupCounter = Callable[[bool, bool], None]  # (in the cluster domain, found)
MAX_NAME = 1024  # longer host/service texts are refused (a DNS name is at most 253)


def clean_wild(name: str) -> str:
    """Remove every ``.*``, as the original does to names it is asked."""
    return name.replace(".*", "")


def _fqdn(name: str) -> str:
    name = clean_wild(name).lower()
    return name if name.endswith(".") else name + "."


def unalias(rs: RecordSet, dom: str, aliases: Sequence[str]) -> tuple[str, Renamer | None]:
    """The record-set name for the asked FQDN ``dom``, and the alias it was
    asked under (None: not under an alias zone)."""
    for alias in aliases:
        ren = Renamer(rs.domain, alias)
        name = ren.back(dom)
        if name is not None:
            return name, ren
    return dom, None


def hosts_body(rs: RecordSet, host: str, aliases: Sequence[str] = ()) -> list[dict[str, str]]:
    """``/v1/hosts/{host}``: every A and AAAA value of the name (names under
    an alias zone answer as the cluster domain's, under the alias name)."""
    dom = _fqdn(host)
    name, _ = unalias(rs, dom, aliases)
    out = [{"host": dom, "ip": ip} for ip in rs.a.get(name, ())]
    out += [{"host": dom, "ip": ip} for ip in rs.aaaa.get(name, ())]
    return out or [{"host": "", "ip": ""}]


def services_body(
    rs: RecordSet, service: str, aliases: Sequence[str] = ()
) -> list[dict[str, str]]:
    """``/v1/services/{service}``: each SRV target with its first A / AAAA.

    Under an alias zone, the targets are named in the alias."""
    name, ren = unalias(rs, _fqdn(service), aliases)
    out = []
    for target in rs.srv.get(name, ()):
        host = target.host if ren is None else ren.rename_or_keep(target.host)
        for values in (rs.a.get(target.host, ()), rs.aaaa.get(target.host, ())):
            if values:
                out.append({"service": service, "host": host, "ip": values[0],
                            "port": str(target.port)})
    return out or [{"service": "", "host": "", "ip": "", "port": ""}]


def _json(body: bytes | Any, status: int = 200) -> web.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return web.Response(body=data, status=status, content_type="application/json")


class API:
    """The aiohttp application; reads the store, never writes it."""

    def __init__(self, config: Config, store: SnapshotStore, metrics: Metrics,
                 count_lookup: LookupCounter | None = None,
                 aliases: Sequence[str] | None = None) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.count_lookup = count_lookup or (lambda _in_domain, _found: None)
        self.zone = config.domain + "."
        # alias zones (clusterID, domainAliases): answered as the domain
        self.aliases = tuple(
            alias_domains(config.domain, config.cluster_id, config.domain_aliases)
            if aliases is None
            else aliases
        )
        self._alias_suffixes = tuple("." + a.strip(".").lower() + "." for a in self.aliases)

    def _in_domain(self, dom: str) -> bool:
        """Is the asked FQDN in the cluster domain or an alias zone?"""
        return dom.endswith(self.zone) or ("." + dom).endswith(self._alias_suffixes)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=64 * 1024)
        r = app.router
        r.add_get("/v1/version", self.version)
        r.add_get("/v1/config", self.config_handler)
        r.add_get("/v1/hosts/{host}", self.hosts)
        r.add_get("/v1/hosts/{host}/ports", self.ports)
        r.add_get("/v1/services/{service}", self.services)
        if self.config.enumeration_on:
            r.add_get("/v1/enumerate", self.enumerate)
            r.add_get("/v1/axfr", self.axfr)
        r.add_get("/metrics", self.metrics_handler)
        r.add_get("/health", self.health)
        r.add_get("/ready", self.ready)
        return app

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return web.Response(status=exc.status, text=f"{exc.status}: {exc.reason}\n",
                                    content_type="text/plain")
            raise
        except Exception:
            log.exception("HTTP handler failed for %s", request.path[:200])
            return web.Response(status=503, text="503: internal error\n",
                                content_type="text/plain")

    def _snapshot(self) -> Snapshot:
        snap = self.store.current
        if snap is None:
            raise web.HTTPServiceUnavailable(reason="no state loaded yet")
        return snap

    async def version(self, _: web.Request) -> web.Response:
        self._snapshot()  # as every /v1 route: not before the first load
        return _json({"Service": "Mesos-DNS", "Version": __version__,
                      "URL": "https://github.com/mesosphere/mesos-dns"})

    async def config_handler(self, _: web.Request) -> web.Response:
        snap = self._snapshot()
        return _json(self.config.redacted(snap.serial))

    def _name(self, request: web.Request, key: str) -> str:
        text = request.match_info[key]
        if len(text) > MAX_NAME:
            raise web.HTTPBadRequest(reason="name too long")
        return text

    async def hosts(self, request: web.Request) -> web.Response:
        snap = self._snapshot()
        host = self._name(request, "host")
        body = hosts_body(snap.records, host, self.aliases)
        dom = _fqdn(host)
        name, _ = unalias(snap.records, dom, self.aliases)
        # as the original: a success is a name with A records (AAAA-only is not)
        self.count_lookup(self._in_domain(dom), bool(snap.records.a.get(name)))
        return _json(body)

    async def ports(self, _: web.Request) -> web.Response:
        return web.Response(status=501, text="To be implemented...", content_type="text/plain")

    async def services(self, request: web.Request) -> web.Response:
        snap = self._snapshot()
        service = self._name(request, "service")
        body = services_body(snap.records, service, self.aliases)
        dom = _fqdn(service)
        name, _ = unalias(snap.records, dom, self.aliases)
        self.count_lookup(self._in_domain(dom), bool(snap.records.srv.get(name)))
        return _json(body)

    async def enumerate(self, _: web.Request) -> web.Response:
        snap = self._snapshot()
        return _json(snap.body("enumerate", lambda: enumerate_body(snap.records)))

    async def axfr(self, _: web.Request) -> web.Response:
        snap = self._snapshot()
        return _json(snap.body("axfr", lambda: axfr_body(snap.records, snap.serial, self.config)))

    async def metrics_handler(self, _: web.Request) -> web.Response:
        resp = web.Response(body=self.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n", content_type="text/plain")

    async def ready(self, _: web.Request) -> web.Response:
        snap = self.store.current
        if snap is None:
            return web.Response(status=503, text="not ready: no state loaded yet\n",
                                content_type="text/plain")
        return web.Response(text=f"ready: serial {snap.serial}\n", content_type="text/plain")
