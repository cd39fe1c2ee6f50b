"""The HTTP API, shaped as the original Mesos-DNS's, plus health and metrics.

Routes (GET): ``/v1/version``, ``/v1/config``, ``/v1/hosts/{host}``,
``/v1/hosts/{host}/ports`` (501, as the original), ``/v1/services/{service}``,
and, when ``EnumerationOn``, ``/v1/enumerate`` and ``/v1/axfr``. Ours:
``/metrics`` (Prometheus text), ``/health`` (the process is up) and
``/ready`` (the first state was loaded), GET and HEAD, exact paths only.

Every request goes through one handler that decides as the original's
net/http and go-restful do (:mod:`mesosdns.server.routing`): redirects of unclean
paths, one optional trailing slash, ``404: Page Not Found``, ``405: Method
Not Allowed``, 406 and 415, as ``text/plain; charset=utf-8``. JSON bodies are
Go's indented form (:mod:`mesosdns.gojson`), as ``application/json``.

As the original, nothing under ``/v1`` is answered before the first good
load (503 here; the original's listener is not even up). Bodies that depend
only on the records are built once per snapshot. Errors never surface as
500: a handler failure is logged and answered 503.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from mesosdns import __version__
from mesosdns.config import Config
from mesosdns.dns.aliases import Renamer, alias_domains
from mesosdns.gojson import marshal_indent
from mesosdns.metrics import CONTENT_TYPE, Metrics
from mesosdns.records.bodies import axfr_json, enumerate_json
from mesosdns.records.model import RecordSet
from mesosdns.server.routing import (
    BAD_REQUEST,
    METHOD_NOT_ALLOWED,
    TEXT,
    Answer,
    BadEscape,
    Route,
    clean_path,
    redirect,
    select,
    text,
    unescape_path,
)
from mesosdns.store.bodyfiles import Body
from mesosdns.store.snapshot import Snapshot, SnapshotStore

log = logging.getLogger(__name__)

LookupCounter = Callable[[bool, bool], None]  # (in the cluster domain, found)
Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]
MAX_NAME = 1024  # longer host/service texts are refused (a DNS name is at most 253)

# The original's routes, in its registration order; the last two only when
# EnumerationOn (otherwise they are not registered: unknown routes).
ROUTES = (
    Route("GET", "/v1/version", "version"),
    Route("GET", "/v1/config", "config"),
    Route("GET", "/v1/hosts/{host}", "hosts"),
    Route("GET", "/v1/hosts/{host}/ports", "ports"),
    Route("GET", "/v1/services/{service}", "services"),
)
ENUMERATION_ROUTES = (
    Route("GET", "/v1/enumerate", "enumerate"),
    Route("GET", "/v1/axfr", "axfr"),
)
OWN_METHODS = ("GET", "HEAD")  # /metrics, /health, /ready (HEAD: for probes)


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


def _json(body: Body | Any, status: int = 200) -> web.Response:
    data = body if isinstance(body, (bytes, memoryview)) else marshal_indent(body)
    return web.Response(body=data, status=status, content_type="application/json")


def _text(status: int, body: str, content_type: str = TEXT) -> web.Response:
    """A text answer with the Content-Type exactly as given (charset included)."""
    resp = web.Response(status=status, body=body.encode("utf-8", "surrogateescape"))
    resp.headers["Content-Type"] = content_type
    return resp


def _answer(answer: Answer) -> web.Response:
    resp = _text(answer.status, answer.body, answer.content_type)
    resp.headers.extend(answer.headers)
    return resp


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
        self._routes = ROUTES + (ENUMERATION_ROUTES if self.config.enumeration_on else ())
        self._handlers: dict[str, Handler] = {
            "version": self.version,
            "config": self.config_handler,
            "hosts": self.hosts,
            "ports": self.ports,
            "services": self.services,
            "enumerate": self.enumerate,
            "axfr": self.axfr,
        }
        self._own: dict[str, Handler] = {
            "/metrics": self.metrics_handler,
            "/health": self.health,
            "/ready": self.ready,
        }
        # one handler for every path: the routing is the original's, not aiohttp's
        app.router.add_route("*", r"/{path:[\s\S]*}", self.dispatch)  # newlines included
        return app

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Route a request as the original's net/http and go-restful do."""
        try:
            path = unescape_path(request.rel_url.raw_path)
        except BadEscape:
            resp = _text(400, BAD_REQUEST)
            resp.headers["Connection"] = "close"
            return resp
        clean = clean_path(path)
        if clean != path:
            query = request.rel_url.raw_query_string if "?" in request.raw_path else None
            origin = ""
            if not request.raw_path.startswith("/"):  # absolute-form: Go keeps scheme and host
                target = urlsplit(request.raw_path)
                origin = f"{target.scheme}://{target.netloc}"
            return _answer(redirect(clean, request.method, query, origin))
        own = self._own.get(path)
        if own is not None:
            if request.method not in OWN_METHODS:
                return _text(405, METHOD_NOT_ALLOWED)
            return await own(request, {})
        found = select(
            self._routes,
            path,
            request.method,
            content_length=request.content_length,
            content_type=request.headers.get("Content-Type", ""),
            accept=request.headers.get("Accept", ""),
        )
        if isinstance(found, Answer):
            return _answer(found)
        params = {key: text(value) for key, value in found.params.items()}
        return await self._handlers[found.route.name](request, params)

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.raw_path == "*":  # Go's ServeMux: the target "*" (OPTIONS *) is 400, empty
            resp = _text(400, "")
            resp.headers["Connection"] = "close"
            return resp
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _text(exc.status, f"{exc.status}: {exc.reason}")
            raise
        except Exception:
            log.exception("HTTP handler failed for %s", request.path[:200])
            return _text(503, "503: internal error")

    def _snapshot(self) -> Snapshot:
        snap = self.store.current
        if snap is None:
            raise web.HTTPServiceUnavailable(reason="no state loaded yet")
        return snap

    async def version(self, _: web.Request, __: dict[str, str]) -> web.Response:
        self._snapshot()  # as every /v1 route: not before the first load
        # a Go map in the original: its keys sorted
        return _json({"Service": "Mesos-DNS", "URL": "https://github.com/mesosphere/mesos-dns",
                      "Version": __version__})

    async def config_handler(self, _: web.Request, __: dict[str, str]) -> web.Response:
        snap = self._snapshot()
        return _json(self.config.redacted(snap.serial))

    def _name(self, params: dict[str, str], key: str) -> str:
        name = params[key]
        if len(name) > MAX_NAME:
            raise web.HTTPBadRequest(reason="name too long")
        return name

    async def hosts(self, _request: web.Request, params: dict[str, str]) -> web.Response:
        snap = self._snapshot()
        host = self._name(params, "host")
        body = hosts_body(snap.records, host, self.aliases)
        dom = _fqdn(host)
        name, _ = unalias(snap.records, dom, self.aliases)
        # as the original: a success is a name with A records (AAAA-only is not)
        self.count_lookup(self._in_domain(dom), bool(snap.records.a.get(name)))
        return _json(body)

    async def ports(self, _: web.Request, __: dict[str, str]) -> web.Response:
        return _text(501, "To be implemented...")

    async def services(self, _request: web.Request, params: dict[str, str]) -> web.Response:
        snap = self._snapshot()
        service = self._name(params, "service")
        body = services_body(snap.records, service, self.aliases)
        dom = _fqdn(service)
        name, _ = unalias(snap.records, dom, self.aliases)
        self.count_lookup(self._in_domain(dom), bool(snap.records.srv.get(name)))
        return _json(body)

    async def enumerate(self, _: web.Request, __: dict[str, str]) -> web.Response:
        snap = self._snapshot()
        return _json(self._body(snap.body("enumerate", lambda: enumerate_json(snap.records))))

    async def axfr(self, _: web.Request, __: dict[str, str]) -> web.Response:
        snap = self._snapshot()
        return _json(self._body(
            snap.body("axfr", lambda: axfr_json(snap.records, snap.serial, self.config))))

    @staticmethod
    def _body(body: Body | None) -> Body:
        if body is None:  # a large cluster's first bodies are still being built
            raise web.HTTPServiceUnavailable(reason="being built")
        return body

    async def metrics_handler(self, _: web.Request, __: dict[str, str]) -> web.Response:
        resp = web.Response(body=self.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp

    async def health(self, _: web.Request, __: dict[str, str]) -> web.Response:
        return _text(200, "ok\n")

    async def ready(self, _: web.Request, __: dict[str, str]) -> web.Response:
        snap = self.store.current
        if snap is None:
            return _text(503, "not ready: no state loaded yet\n")
        return _text(200, f"ready: serial {snap.serial}\n")
