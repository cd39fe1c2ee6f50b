"""Every route of the HTTP API, as the original answers it, over real HTTP.

The expected answers are read off the original's source: the routes of
``resolver/resolver.go`` (``configureHTTP``), go-restful's ``RouterJSR311``
(``jsr311.go``, ``path_expression.go``, ``response.go``, ``container.go``) and
Go 1.11's ``http.ServeMux`` (path cleaning and its 301). Requests are written
byte for byte on a socket, so that no client library cleans or re-encodes the
path; the whole answer (status, Content-Type, body) is checked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from test_api import EXPECTED, SECRET, SERIAL, Harness, make_config, run, serving

from mesosdns import __version__

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
PROM = "text/plain; version=0.0.4; charset=utf-8"

VERSION = {"Service": "Mesos-DNS", "URL": "https://github.com/mesosphere/mesos-dns",
           "Version": __version__}
LEADER_HOSTS = [{"host": "leader.mesos.", "ip": EXPECTED["A"]["leader.mesos."][0]}]
NO_HOSTS = [{"host": "", "ip": ""}]


def leader_service(asked: str) -> list[dict[str, str]]:
    return [{"service": asked, "host": "leader.mesos.", "ip": "10.0.0.11", "port": "5050"}]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


async def raw_request(port: int, method: str, target: bytes, extra: bytes = b"") -> Reply:
    """One HTTP/1.1 request written as given; the reply read to its Content-Length."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(method.encode() + b" " + target + b" HTTP/1.1\r\nHost: x\r\n"
                     + extra + b"Connection: close\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = b"" if method == "HEAD" else await reader.readexactly(length)
        return Reply(status, headers, body)
    finally:
        writer.close()


# A body check: the exact bytes, or a JSON value the body must decode to, or a predicate.
Check = bytes | Callable[[bytes], bool] | list[Any] | dict[str, Any]


def is_config(body: bytes) -> bool:
    doc = json.loads(body)
    return doc["Masters"][0] == "10.0.0.11:5050" and SECRET.encode() not in body


def is_enumeration(body: bytes) -> bool:
    return {f["name"] for f in json.loads(body)["frameworks"]} >= {"marathon"}


def is_axfr(body: bytes) -> bool:
    doc = json.loads(body)
    return doc["Serial"] == SERIAL and doc["Records"]["As"]["leader.mesos."] == ["10.0.0.11"]


def moved(to: str) -> bytes:
    """The body of Go's 301 (http.Redirect for a GET)."""
    return f'<a href="{to}">Moved Permanently</a>.\n\n'.encode()


NOT_FOUND = b"404: Page Not Found"
NOT_ALLOWED = b"405: Method Not Allowed"
NOT_IMPLEMENTED = b"To be implemented..."
ON, OFF, BOTH = (True,), (False,), (True, False)

# (method, path, EnumerationOn values) -> (status, Content-Type, body check, Location)
TABLE: list[tuple[str, str, tuple[bool, ...], int, str, Check, str | None]] = [
    # /v1/version
    ("GET", "/v1/version", BOTH, 200, JSON, VERSION, None),
    ("GET", "/v1/version/", BOTH, 200, JSON, VERSION, None),
    ("GET", "/v1/version//", BOTH, 301, HTML, moved("/v1/version/"), "/v1/version/"),
    ("GET", "//v1/version", BOTH, 301, HTML, moved("/v1/version"), "/v1/version"),
    ("GET", "/v1//version", BOTH, 301, HTML, moved("/v1/version"), "/v1/version"),
    ("GET", "/v1/./version", BOTH, 301, HTML, moved("/v1/version"), "/v1/version"),
    ("GET", "/v1/x/../version", BOTH, 301, HTML, moved("/v1/version"), "/v1/version"),
    ("GET", "/v1/version/x", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1/versionx", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "/V1/Version", BOTH, 404, TEXT, NOT_FOUND, None),
    ("POST", "/v1/version", BOTH, 405, TEXT, NOT_ALLOWED, None),
    ("POST", "/v1/version/", BOTH, 405, TEXT, NOT_ALLOWED, None),
    ("HEAD", "/v1/version", BOTH, 405, TEXT, b"", None),
    ("POST", "//v1/version", BOTH, 301, TEXT, b"", "/v1/version"),
    # /v1/config
    ("GET", "/v1/config", BOTH, 200, JSON, is_config, None),
    ("GET", "/v1/config/", BOTH, 200, JSON, is_config, None),
    ("GET", "/v1/config//", BOTH, 301, HTML, moved("/v1/config/"), "/v1/config/"),
    ("PUT", "/v1/config", BOTH, 405, TEXT, NOT_ALLOWED, None),
    ("GET", "/v1/config/x", BOTH, 404, TEXT, NOT_FOUND, None),
    # /v1/hosts/{host}
    ("GET", "/v1/hosts/leader.mesos", BOTH, 200, JSON, LEADER_HOSTS, None),
    ("GET", "/v1/hosts/leader.mesos/", BOTH, 200, JSON, LEADER_HOSTS, None),
    ("GET", "/v1/hosts/LEADER.*.mesos", BOTH, 200, JSON, LEADER_HOSTS, None),
    ("GET", "/v1/hosts/nope.mesos", BOTH, 200, JSON, NO_HOSTS, None),
    ("GET", "/v1/hosts/ports", BOTH, 200, JSON, NO_HOSTS, None),  # a name, not the route
    ("GET", "/v1/hosts/.*", BOTH, 200, JSON, NO_HOSTS, None),  # the original: 500 (a panic)
    ("GET", "/v1/hosts/", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1/hosts", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1/hosts//", BOTH, 301, HTML, moved("/v1/hosts/"), "/v1/hosts/"),
    ("GET", "/v1/hosts//leader.mesos", BOTH, 301, HTML, moved("/v1/hosts/leader.mesos"),
     "/v1/hosts/leader.mesos"),
    ("GET", "/v1/hosts/leader.mesos//", BOTH, 301, HTML, moved("/v1/hosts/leader.mesos/"),
     "/v1/hosts/leader.mesos/"),
    ("GET", "/v1/hosts/leader.mesos/x", BOTH, 404, TEXT, NOT_FOUND, None),
    ("DELETE", "/v1/hosts/leader.mesos", BOTH, 405, TEXT, NOT_ALLOWED, None),
    ("POST", "/v1/hosts/leader.mesos/", BOTH, 405, TEXT, NOT_ALLOWED, None),
    ("POST", "/v1/hosts/", BOTH, 404, TEXT, NOT_FOUND, None),
    # /v1/hosts/{host}/ports
    ("GET", "/v1/hosts/leader.mesos/ports", BOTH, 501, TEXT, NOT_IMPLEMENTED, None),
    ("GET", "/v1/hosts/leader.mesos/ports/", BOTH, 501, TEXT, NOT_IMPLEMENTED, None),
    ("GET", "/v1/hosts//ports", BOTH, 301, HTML, moved("/v1/hosts/ports"), "/v1/hosts/ports"),
    ("GET", "/v1/hosts/leader.mesos/ports/x", BOTH, 404, TEXT, NOT_FOUND, None),
    ("POST", "/v1/hosts/leader.mesos/ports", BOTH, 405, TEXT, NOT_ALLOWED, None),
    # /v1/services/{service}
    ("GET", "/v1/services/_leader._tcp.mesos", BOTH, 200, JSON,
     leader_service("_leader._tcp.mesos"), None),
    ("GET", "/v1/services/_leader._tcp.mesos/", BOTH, 200, JSON,
     leader_service("_leader._tcp.mesos"), None),
    ("GET", "/v1/services/_Leader._TCP.mesos.", BOTH, 200, JSON,
     leader_service("_Leader._TCP.mesos."), None),
    ("GET", "/v1/services/_nope._tcp.mesos", BOTH, 200, JSON,
     [{"service": "", "host": "", "ip": "", "port": ""}], None),
    ("GET", "/v1/services/.*", BOTH, 200, JSON,
     [{"service": "", "host": "", "ip": "", "port": ""}], None),
    ("GET", "/v1/services/", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1/services", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1/services//", BOTH, 301, HTML, moved("/v1/services/"), "/v1/services/"),
    ("GET", "/v1/services/_leader._tcp.mesos/x", BOTH, 404, TEXT, NOT_FOUND, None),
    ("POST", "/v1/services/_leader._tcp.mesos", BOTH, 405, TEXT, NOT_ALLOWED, None),
    # /v1/enumerate and /v1/axfr: not registered at all without EnumerationOn
    ("GET", "/v1/enumerate", ON, 200, JSON, is_enumeration, None),
    ("GET", "/v1/enumerate/", ON, 200, JSON, is_enumeration, None),
    ("GET", "/v1/enumerate", OFF, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1/enumerate/", OFF, 404, TEXT, NOT_FOUND, None),
    ("POST", "/v1/enumerate", ON, 405, TEXT, NOT_ALLOWED, None),
    ("POST", "/v1/enumerate", OFF, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1/enumerate/x", ON, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1/axfr", ON, 200, JSON, is_axfr, None),
    ("GET", "/v1/axfr/", ON, 200, JSON, is_axfr, None),
    ("GET", "/v1/axfr", OFF, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1/axfr/", OFF, 404, TEXT, NOT_FOUND, None),
    ("PATCH", "/v1/axfr", ON, 405, TEXT, NOT_ALLOWED, None),
    ("PATCH", "/v1/axfr", OFF, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1//axfr", OFF, 301, HTML, moved("/v1/axfr"), "/v1/axfr"),
    # unknown routes
    ("GET", "/", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1/", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v2/version", BOTH, 404, TEXT, NOT_FOUND, None),
    ("DELETE", "/nope", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "/v1/hosts/a%0Ab", BOTH, 404, TEXT, b"", None),  # go-restful's "." stops at \n
    # ours: exact paths, GET and HEAD
    ("GET", "/health", BOTH, 200, TEXT, b"ok\n", None),
    ("HEAD", "/health", BOTH, 200, TEXT, b"", None),
    ("GET", "/ready", BOTH, 200, TEXT, f"ready: serial {SERIAL}\n".encode(), None),
    ("GET", "/metrics", BOTH, 200, PROM, lambda b: b"mesosdns_ready 1.0" in b, None),
    ("POST", "/health", BOTH, 405, TEXT, NOT_ALLOWED, None),
    ("GET", "/health/", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "/metrics/", BOTH, 404, TEXT, NOT_FOUND, None),
    ("GET", "//health", BOTH, 301, HTML, moved("/health"), "/health"),
]

ROWS = [
    pytest.param(method, path, on, status, ctype, check, location,
                 id=f"{method} {path} enumerationOn={str(on).lower()}")
    for method, path, ons, status, ctype, check, location in TABLE
    for on in ons
]


def check_body(body: bytes, check: Check) -> None:
    if isinstance(check, bytes):
        assert body == check
    elif isinstance(check, list | dict):
        assert json.loads(body) == check
    else:
        assert check(body), body[:300]


@pytest.mark.parametrize(
    ("method", "path", "enumeration_on", "status", "ctype", "check", "location"), ROWS
)
def test_route(method: str, path: str, enumeration_on: bool, status: int, ctype: str,
               check: Check, location: str | None) -> None:
    async def main() -> None:
        async with serving(make_config(EnumerationOn=enumeration_on)) as h:
            reply = await raw_request(port(h), method, path.encode())
            assert (reply.status, reply.content_type) == (status, ctype), reply
            check_body(reply.body, check)
            assert reply.headers.get("location") == location
            assert "allow" not in reply.headers  # not even on a 405, as go-restful
    run(main)


def port(h: Harness) -> int:
    server_port = h.client.port
    assert server_port is not None
    return server_port


# ----------------------------------------------------------------------- beyond the table


def test_json_bodies_are_go_indented() -> None:
    """json.MarshalIndent(v, " ", " "): a one-space prefix, one space per level."""

    async def main() -> None:
        async with serving() as h:
            reply = await raw_request(port(h), "GET", b"/v1/hosts/leader.mesos")
            assert reply.body == (
                b'[\n  {\n   "host": "leader.mesos.",\n   "ip": "10.0.0.11"\n  }\n ]'
            )
            reply = await raw_request(port(h), "GET", b"/v1/version")
            assert reply.body == (
                b'{\n  "Service": "Mesos-DNS",\n'
                b'  "URL": "https://github.com/mesosphere/mesos-dns",\n'
                b'  "Version": "' + __version__.encode() + b'"\n }'
            )

    run(main)


def test_a_redirect_keeps_the_query() -> None:
    async def main() -> None:
        async with serving() as h:
            reply = await raw_request(port(h), "GET", b"/v1//version?a=1&b=%C3%A9")
            assert reply.status == 301
            assert reply.headers["location"] == "/v1/version?a=1&b=%C3%A9"
            assert reply.body == (
                b'<a href="/v1/version?a=1&amp;b=%C3%A9">Moved Permanently</a>.\n\n'
            )
            empty = await raw_request(port(h), "GET", b"/v1//version?")
            assert empty.headers["location"] == "/v1/version?"

    run(main)


def test_a_redirect_escapes_the_clean_path_as_go() -> None:
    """The decoded path is cleaned, then escaped again (Go's url.EscapedPath)."""

    async def main() -> None:
        async with serving() as h:
            reply = await raw_request(port(h), "GET", b"/v1/hosts/a%2F%2Fb%20c%21")
            assert (reply.status, reply.headers["location"]) == (301, "/v1/hosts/a/b%20c%21")

    run(main)


@pytest.mark.parametrize("target", [b"/v1/hosts/%", b"/v1/hosts/%zz", b"/v1/%4"])
def test_a_bad_escape_is_a_bad_request(target: bytes) -> None:
    async def main() -> None:
        async with serving() as h:
            reply = await raw_request(port(h), "GET", target)
            assert (reply.status, reply.content_type, reply.body) == (
                400, TEXT, b"400 Bad Request"
            )

    run(main)


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        (b"Accept: application/json\r\n", 200, None),
        (b"Accept: text/html, */*;q=0.8\r\n", 200, None),
        (b"Accept: text/html\r\n", 406, b"406: Not Acceptable"),
        (b"Accept: application/*\r\n", 406, b"406: Not Acceptable"),
        (b"Content-Type: application/json\r\nContent-Length: 2\r\n", 200, None),
        (b"Content-Type: text/plain\r\nContent-Length: 2\r\n", 415, b"415: Unsupported Media Type"),
        (b"Content-Length: 2\r\n", 415, b"415: Unsupported Media Type"),
    ],
)
def test_accept_and_content_type_as_go_restful(headers: bytes, status: int,
                                               body: bytes | None) -> None:
    """The web service Produces and Consumes application/json."""

    async def main() -> None:
        async with serving() as h:
            payload = b"{}" if b"Content-Length: 2" in headers else b""
            reader, writer = await asyncio.open_connection("127.0.0.1", port(h))
            writer.write(b"GET /v1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         + headers + b"\r\n" + payload)
            data = await reader.read()
            writer.close()
            assert data.split(b" ", 2)[1] == str(status).encode(), data[:200]
            if body is not None:
                assert data.endswith(b"\r\n\r\n" + body)
                assert b"Content-Type: text/plain; charset=utf-8\r\n" in data

    run(main)


def test_options_star_is_400() -> None:
    async def main() -> None:
        async with serving() as h:
            reply = await raw_request(port(h), "OPTIONS", b"*")
            assert (reply.status, reply.body) == (400, b"")

    run(main)


def test_before_the_first_load_routes_still_decide_first() -> None:
    """404 and 405 do not wait for the state; a matched /v1 route is 503."""

    async def main() -> None:
        async with serving(loaded=False) as h:
            assert (await raw_request(port(h), "GET", b"/v1/version/")).status == 503
            assert (await raw_request(port(h), "POST", b"/v1/version")).status == 405
            assert (await raw_request(port(h), "GET", b"/v1/hosts/")).status == 404

    run(main)


def test_an_absolute_url_is_redirected_with_its_host() -> None:
    """For an absolute-form target Go's redirect keeps the scheme and host."""

    async def main() -> None:
        async with serving() as h:
            reply = await raw_request(port(h), "GET", b"http://other.example/v1//version")
            assert (reply.status, reply.headers["location"]) == (
                301, "http://other.example/v1/version"
            )
            reply = await raw_request(port(h), "GET", b"http://other.example/v1/version/")
            assert (reply.status, json.loads(reply.body)) == (200, VERSION)

    run(main)
