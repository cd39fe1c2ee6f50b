"""JSON bytes shaped as the original's HTTP bodies.

The original writes every JSON body with go-restful's ``WriteAsJson``, which
(``PrettyPrintResponses`` being on by default) is Go's
``json.MarshalIndent(value, " ", " ")`` as Go 1.11 writes it: one element per
line, every line after the first starting with a one-space prefix and then one
space per nesting level, ``": "`` between a key and its value, empty arrays
and objects kept as ``[]`` and ``{}``, no trailing newline; ``<``, ``>``, ``&``,
U+2028 and U+2029 escaped as ``\\u003c``-style escapes, and backspace and form
feed as ``\\u0008`` and ``\\u000c``.

Key order is the caller's: Go writes struct fields in declaration order and
map keys sorted, so bodies built from Go maps must be built with sorted keys.

orjson does the encoding (it is much faster than the standard library on a
large ``/v1/axfr``); its two-space indented output is then re-indented with a
few passes of ``bytes.replace``. This is safe because orjson never writes a
raw newline, NUL or ``<``, ``>``, ``&`` inside a string: every newline is
structural and every ``<``, ``>``, ``&`` is string content.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_PLACEHOLDER = b"\x00"  # orjson escapes NUL inside strings, so it never occurs raw
_HTML = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
         ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))
# a \b or \f escape: preceded by an even number of backslashes (escaped ones)
_SHORT_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\([bf])")
_GO_ESCAPE = {b"b": b"\\u0008", b"f": b"\\u000c"}


def marshal_indent(value: Any) -> bytes:
    """``value`` as Go's ``json.MarshalIndent(value, " ", " ")`` writes it."""
    data = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    if b"\n" in data:
        data = _reindent(data)
    for raw, escaped in _HTML:
        if raw in data:
            data = data.replace(raw, escaped)
    if b"\\b" in data or b"\\f" in data:
        data = _SHORT_ESCAPE.sub(lambda m: m.group(1) + _GO_ESCAPE[m.group(2)], data)
    return data


def _reindent(data: bytes) -> bytes:
    """Two spaces per level (orjson) to the original's prefix + one space per level."""
    depth = 1
    while b"\n" + b"  " * (depth + 1) in data:
        depth += 1
    # deepest first, so that a shallower pattern never matches a deeper line;
    # the placeholder keeps a rewritten line from matching again
    for level in range(depth, 0, -1):
        data = data.replace(b"\n" + b"  " * level, b"\n" + _PLACEHOLDER * level)
    return data.replace(b"\n", b"\n ").replace(_PLACEHOLDER, b" ")
