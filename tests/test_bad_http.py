"""The HTTP API against hostile requests, over raw sockets to the real
server: path traversal, huge request lines and headers, odd methods, invalid
UTF-8, request smuggling shapes and random request lines. Every request gets
a clean answer below 500 (or, for a name, the usual lookup answer), the
server never serves a file, and it keeps serving afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from reliability_support import AppThread, good_state, report

TRIED = {"requests": 0}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppThread]:
    state = tmp_path_factory.mktemp("http") / "state.json"
    state.write_bytes(orjson.dumps(good_state()))
    server = AppThread({"stateFile": str(state)})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def _count(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report(request, f"HTTP abuse: {TRIED['requests']} raw requests sent")


def send(port: int, request: bytes, timeout: float = 3.0) -> tuple[int, bytes]:
    """Send raw bytes; the response's status (0: closed without one) and all bytes."""
    TRIED["requests"] += 1
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # the server may answer and close before reading it all
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if complete(data):
                    break
        except ConnectionResetError:
            pass
        except TimeoutError:  # answered, but left open (an announced body never came)
            if not data:
                raise
    if not data:
        return 0, b""
    status_line = data.split(b"\r\n", 1)[0]
    parts = status_line.split(b" ")
    assert parts[0].startswith(b"HTTP/"), data[:200]
    return int(parts[1]), data


def complete(data: bytes) -> bool:
    """Has a whole response (headers and a Content-Length body) arrived?"""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def get(path: bytes, extra: bytes = b"", method: bytes = b"GET") -> bytes:
    return method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + b"\r\n"


def header(data: bytes, name: bytes) -> bytes:
    """A response header's value (b"" when absent)."""
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return b""


def body_of(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""


TRAVERSAL = [
    b"/../../../../etc/passwd",
    b"/v1/../../etc/passwd",
    b"/v1/hosts/../../../etc/passwd",
    b"/v1/hosts/..%2f..%2f..%2fetc%2fpasswd",
    b"/v1/hosts/%2e%2e/%2e%2e/etc/passwd",
    b"/v1/services/....//....//etc/passwd",
    b"/%2e%2e/%2e%2e/etc/passwd",
    b"/v1\\..\\..\\etc\\passwd",
    b"/v1/hosts/%00../../etc/passwd",
    b"//etc/passwd",
    b"/./v1/./version",
    b"/v1/hosts/..;/..;/etc/passwd",
    b"/static/../../etc/passwd",
    b"/v1/axfr/../../../proc/self/environ",
]


@pytest.mark.parametrize("path", TRAVERSAL, ids=lambda p: p.decode("latin-1"))
def test_path_traversal_never_reaches_a_file(app: AppThread, path: bytes) -> None:
    status, data = send(app.http_port, get(path))
    assert status in (200, 301, 400, 404), data[:200]
    body = body_of(data)
    assert b"root:" not in body and b"PATH=" not in body
    if status == 301:  # as Go's ServeMux: to the clean path, never above the root
        location = header(data, b"location")
        assert location.startswith(b"/") and not location.startswith(b"//"), location
        assert b"/../" not in location + b"/" and b"/./" not in location + b"/", location
    if status == 200:  # only as a name to look up
        assert orjson.loads(body) in (
            [{"host": "", "ip": ""}],
            [{"service": "", "host": "", "ip": "", "port": ""}],
        ), body


@pytest.mark.parametrize(
    ("what", "request_bytes"),
    [
        ("a 1,500-byte name", get(b"/v1/hosts/" + b"a" * 1500)),
        ("an 8 KB path", get(b"/v1/hosts/" + b"a" * 8200)),
        ("a 64 KB path", get(b"/v1/hosts/" + b"a" * 65536)),
        ("a 1 MB path", get(b"/v1/services/" + b"a" * 1_000_000)),
        ("a 64 KB query string", get(b"/v1/version?" + b"a=1&" * 16384)),
        ("a 100 KB header", get(b"/v1/version", b"X-Big: " + b"a" * 100_000 + b"\r\n")),
        ("1,000 headers", get(b"/v1/version", b"".join(b"X-%d: a\r\n" % i for i in range(1000)))),
        ("a 10 KB method", get(b"/v1/version", method=b"A" * 10_000)),
    ],
)
def test_huge_requests_get_4xx(app: AppThread, what: str, request_bytes: bytes) -> None:
    status, data = send(app.http_port, request_bytes)
    assert 400 <= status < 500, (what, data[:200])


@pytest.mark.parametrize(
    "method",
    [b"POST", b"PUT", b"DELETE", b"PATCH", b"TRACE", b"PROPFIND", b"MKCOL", b"BREW", b"X"],
)
def test_odd_methods_get_405(app: AppThread, method: bytes) -> None:
    """Registered methods: 405; methods the HTTP parser does not know: 400."""
    known = method not in (b"BREW", b"X")
    for path in (b"/v1/version", b"/v1/config", b"/v1/hosts/leader.mesos", b"/metrics"):
        status, data = send(app.http_port, get(path, b"Content-Length: 0\r\n", method=method))
        assert status == (405 if known else 400), (method, path, data[:200])


@pytest.mark.parametrize(
    ("what", "request_bytes", "allowed"),
    [
        ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", {400}),
        (
            "CONNECT",
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
            {400, 404},
        ),
        ("HEAD", get(b"/v1/version", method=b"HEAD"), {405}),  # go-restful: GET routes only
        ("HEAD on ours", get(b"/health", method=b"HEAD"), {200}),
        ("lower-case method", get(b"/v1/version", method=b"get"), {400}),
        ("NUL in the method", get(b"/v1/version", method=b"G\x00T"), {400}),
        ("HTTP/9.9", b"GET /v1/version HTTP/9.9\r\nHost: x\r\n\r\n", {400}),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400}),
        ("TLS hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 60, {400}),
        ("absolute URL", get(b"http://evil.example/v1/version"), {200}),
        (
            "bad chunk size",
            get(b"/v1/version", b"Transfer-Encoding: chunked\r\n") + b"zz\r\n",
            {400},
        ),
        (
            "Content-Length with Transfer-Encoding",
            get(b"/v1/version", b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"POST")
            + b"0\r\n\r\n",
            {400},
        ),
        (
            "two Content-Lengths",
            get(b"/v1/version", b"Content-Length: 1\r\nContent-Length: 2\r\n"),
            {400},
        ),
        ("negative Content-Length", get(b"/v1/version", b"Content-Length: -1\r\n"), {400}),
        # a body that is not application/json: go-restful's 415, before anything is read
        ("a huge body announced", get(b"/v1/version", b"Content-Length: 99999999999\r\n"), {415}),
        ("a header without a colon", get(b"/v1/version", b"NoColonHere\r\n"), {400}),
        (
            "a bare LF request",
            b"GET /v1/version HTTP/1.1\nHost: x\nConnection: close\n\n",
            {200, 400},
        ),
        ("CR in a header value", get(b"/v1/version", b"X: a\rb\r\n"), {400}),
    ],
)
def test_malformed_requests(
    app: AppThread, what: str, request_bytes: bytes, allowed: set[int]
) -> None:
    status, data = send(app.http_port, request_bytes)
    assert status in allowed, (what, data[:300])


INVALID_UTF8 = [
    b"/v1/hosts/\xff\xfe.mesos",  # raw bytes in the request line
    b"/v1/hosts/\xc3\x28",
    b"/v1/services/\xed\xa0\x80",
    b"/v1/hosts/%ff%fe.mesos",  # percent-encoded
    b"/v1/hosts/%c3%28",
    b"/v1/services/%ed%a0%80.mesos",  # an encoded surrogate
    b"/v1/services/_x%80._tcp.marathon.mesos",
    b"/v1/hosts/%00",
    b"/v1/hosts/%",
    b"/v1/hosts/%zz",
    b"/%ff",
]


@pytest.mark.parametrize("path", INVALID_UTF8, ids=lambda p: p.decode("latin-1"))
def test_invalid_utf8_in_the_path(app: AppThread, path: bytes) -> None:
    status, data = send(app.http_port, get(path))
    assert status in (200, 400, 404), data[:300]
    if status == 200:
        orjson.loads(body_of(data))


def test_invalid_utf8_in_headers(app: AppThread) -> None:
    status, data = send(
        app.http_port, get(b"/v1/version", b"Host2: \xff\xfe\r\nX-Name: \xc3\x28\r\n")
    )
    assert status in (200, 400), data[:300]


def test_truncated_request_and_early_close(app: AppThread) -> None:
    for partial in (b"GET /v1/vers", b"GET /v1/version HTTP/1.1\r\nHost: x\r\n", b"\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", app.http_port), timeout=2) as sock:
            sock.sendall(partial)
    assert app.http("/health")[0] == 200


# -- random request lines (Hypothesis) -------------------------------------------

token = st.binary(min_size=0, max_size=12)
path_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.sampled_from(
            [
                b"/",
                b"..",
                b".",
                b"%2e",
                b"%2f",
                b"%ff",
                b"v1",
                b"hosts",
                b"services",
                b"config",
                b"axfr",
                b"\\",
                b"%00",
                b"\xff",
                b"*",
                b"leader.mesos",
                b"?",
                b"#",
                b";",
                b"a" * 300,
            ]
        ),
        max_size=12,
    ).map(b"".join),
)
version = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2", b"", b"HTTP/1.1x"])


@hsettings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(st.just(b"GET"), token),
    path_bytes,
    version,
    st.lists(st.binary(max_size=40), max_size=3),
)
def test_random_request_lines_never_get_5xx(
    app: AppThread, method: bytes, path: bytes, ver: bytes, headers: list[bytes]
) -> None:
    line = method + b" " + path + (b" " + ver if ver else b"")
    request = line + b"\r\nHost: x\r\nConnection: close\r\n" + b"\r\n".join(headers) + b"\r\n\r\n"
    status, data = send(app.http_port, request, timeout=5.0)
    assert status < 500, (request[:200], data[:300])


def test_still_serving_and_no_handler_failure(
    app: AppThread, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mesosdns"):
        for path in TRAVERSAL + INVALID_UTF8:
            send(app.http_port, get(path))
    assert "HTTP handler failed" not in caplog.text
    assert app.http("/health")[0] == 200
    assert app.http("/v1/version")[0] == 200
    assert app.addresses("sentinel.chronos.mesos.") == {"10.250.0.2"}


def test_a_name_with_every_byte_value(app: AppThread, tmp_path: Path) -> None:
    del tmp_path
    for value in range(256):
        path = b"/v1/hosts/a%" + b"%02x" % value + b"b.mesos"
        status, data = send(app.http_port, get(path))
        assert status in (200, 400, 404), (value, data[:200])
