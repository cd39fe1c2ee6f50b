"""Which answer the original gives a request line, before any handler runs.

The original serves its API with go-restful (the vendored v1.1.3 line, its
default ``RouterJSR311``) registered on ``/`` of Go 1.11's
``http.DefaultServeMux``. Pure functions here reproduce the decisions those
two make, in their order:

1. net/http: the request target ``*`` is answered 400; a bad percent escape in
   the path is a request it cannot parse (400 ``400 Bad Request``); a path
   that is not clean (``//``, ``/./``, ``/../``, once decoded) is redirected
   301 to its clean form, the trailing slash kept.
2. go-restful's web service matches every path, except one containing a
   newline (its ``.`` does not match one): 404 with an empty body.
3. Each route is a regular expression: ``/v1/hosts/{host}`` is
   ``^/v1/hosts/([^/]+?)(/.*)?$``; a route is a candidate when the last group
   is empty or a single ``/``. So every route also answers with one trailing
   slash, a variable never matches an empty segment, and anything longer is
   404 ``404: Page Not Found``.
4. No candidate with the request's method: 405 ``405: Method Not Allowed``
   (HEAD included, and no ``Allow`` header). A body (Content-Length > 0) that
   is not ``application/json``: 415. An ``Accept`` header without ``*/*`` or
   ``application/json``: 406.

These error bodies carry no Content-Type of their own; Go's server sniffs
``text/plain; charset=utf-8`` for them (an empty body included, in Go 1.11).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes, unquote_to_bytes

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"  # what Go's server sniffs for these bodies
HTML = "text/html; charset=utf-8"

NOT_FOUND = "404: Page Not Found"
METHOD_NOT_ALLOWED = "405: Method Not Allowed"
NOT_ACCEPTABLE = "406: Not Acceptable"
UNSUPPORTED_MEDIA_TYPE = "415: Unsupported Media Type"
BAD_REQUEST = "400 Bad Request"  # net/http's own answer to a request it cannot parse

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_DISPATCHER = re.compile(r"(/.*)?")  # the web service's root path "/" as go-restful compiles it
# what Go's url package leaves unescaped in a path (the rest is %XX, upper case)
_PATH_SAFE = "$&+,/:;=@"


class BadEscape(ValueError):
    """A ``%`` not followed by two hex digits: Go cannot parse the request URI."""


@dataclass(frozen=True, slots=True)
class Route:
    """One go-restful route: its method, its template and the handler's name."""

    method: str
    template: str
    name: str
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    literals: int = field(init=False, repr=False, compare=False)
    variables: int = field(init=False, repr=False, compare=False)
    parts: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex, literals, variables = _template_regex(self.template)
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "literals", literals)
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "parts", tuple(tokenize(self.template)))

    def params(self, path: str) -> dict[str, str]:
        """The path variables, by position in the slash-separated path."""
        tokens = tokenize(path)
        return {
            part[1:-1]: tokens[i] if i < len(tokens) else ""
            for i, part in enumerate(self.parts)
            if part.startswith("{")
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """A ready answer (no handler runs): status, Content-Type, headers, body."""

    status: int
    content_type: str
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: dict[str, str]


def tokenize(path: str) -> list[str]:
    """go-restful's path tokens: split on ``/`` with the outer slashes trimmed."""
    return [] if path == "/" else path.strip("/").split("/")


def _template_regex(template: str) -> tuple[re.Pattern[str], int, int]:
    """go-restful's expression for a template (plain ``{name}`` variables only)."""
    out, literals, variables = [], 0, 0
    for token in tokenize(template):
        if not token:
            continue
        if token.startswith("{"):
            if ":" in token:
                raise ValueError(f"{template}: only plain {{name}} variables are supported")
            out.append("/([^/]+?)")
            variables += 1
        else:
            out.append("/" + re.escape(token))
            literals += len(token)
    # \Z, not $: Python's $ also matches before a final newline, Go's does not
    expr = r"\A" + "".join(out).rstrip("/") + r"(/.*)?\Z"
    return re.compile(expr), literals, variables


def unescape_path(raw: str) -> str:
    """The path as Go's request parser decodes it (``%XX`` to bytes).

    Bytes that are not UTF-8 are kept as surrogate escapes, so that the path
    can be escaped back to exactly the bytes it stood for."""
    data = raw.encode("utf-8", "surrogateescape")
    if _BAD_ESCAPE.search(data):
        raise BadEscape(raw)
    return unquote_to_bytes(data).decode("utf-8", "surrogateescape")


def text(value: str) -> str:
    """A decoded path (or a part of one) as valid text: undecodable bytes become U+FFFD."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def clean_path(path: str) -> str:
    """net/http's ``cleanPath``: Go's ``path.Clean``, the trailing slash kept."""
    if not path.startswith("/"):
        path = "/" + path
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    clean = "/" + "/".join(segments)
    if path.endswith("/") and clean != "/":
        clean += "/"
    return clean


def redirect(clean: str, method: str, query: str | None, origin: str = "") -> Answer:
    """net/http's 301 to the clean path (``http.Redirect`` as Go 1.11 writes it).

    ``query`` is the raw query (None: the target had no ``?``); ``origin`` is
    ``scheme://host`` when the request target was an absolute URL."""
    location = origin + quote_from_bytes(clean.encode("utf-8", "surrogateescape"), _PATH_SAFE)
    if query is not None:
        location += "?" + _hex_escape_non_ascii(query)
    headers = (("Location", location),)
    if method == "GET":
        body = f'<a href="{_html_escape(location)}">Moved Permanently</a>.\n\n'
        return Answer(301, HTML, body, headers)
    if method == "HEAD":
        return Answer(301, HTML, "", headers)
    return Answer(301, TEXT, "", headers)  # no Content-Type set: Go sniffs the empty body


def _hex_escape_non_ascii(value: str) -> str:
    """net/http's ``hexEscapeNonASCII``: each byte >= 0x80 as ``%`` + lower-case hex."""
    data = value.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if b < 0x80 else f"%{b:x}" for b in data)


def _html_escape(value: str) -> str:
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"),
                         ('"', "&#34;"), ("'", "&#39;")):
        value = value.replace(raw, escaped)
    return value


def _media_types(header: str) -> list[str]:
    """The media types of an Accept or Content-Type value, parameters dropped."""
    return [part.split(";", 1)[0].strip(" ") for part in header.split(",")]


def select(
    routes: tuple[Route, ...],
    path: str,
    method: str,
    *,
    content_length: int | None = None,
    content_type: str = "",
    accept: str = "",
) -> Match | Answer:
    """go-restful's ``RouterJSR311``: the route for a clean, decoded path, or
    the error answer the original gives instead."""
    if _DISPATCHER.fullmatch(path) is None:
        return Answer(404, TEXT)  # no web service matched: an empty 404
    candidates = []
    for route in routes:
        m = route.regex.match(path)
        if m is not None and (m.group(route.regex.groups) or "") in ("", "/"):
            candidates.append(route)
    if not candidates:
        return Answer(404, TEXT, NOT_FOUND)
    candidates.sort(key=lambda r: (r.literals, r.regex.groups, r.variables, r.template),
                    reverse=True)
    allowed = [r for r in candidates if r.method == method]
    if not allowed:
        return Answer(405, TEXT, METHOD_NOT_ALLOWED)
    if content_length is not None and content_length > 0 and JSON not in _media_types(
        content_type
    ):
        return Answer(415, TEXT, UNSUPPORTED_MEDIA_TYPE)
    accepted = _media_types(accept or "*/*")
    if "*/*" not in accepted and JSON not in accepted:
        return Answer(406, TEXT, NOT_ACCEPTABLE)
    route = allowed[0]
    return Match(route, route.params(path))
