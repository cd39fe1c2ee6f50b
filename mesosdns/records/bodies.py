"""The large HTTP bodies that depend only on the records: ``/v1/enumerate``
and ``/v1/axfr``, written straight to bytes in the original's layout (Go's
``json.MarshalIndent(v, " ", " ")``, see `mesosdns.gojson`).

They are written in pieces, without a tree of dicts and lists first and
without re-indenting a whole body (that took about six times the body's size
at its peak, memory the allocator then kept), so that a caller can join them
or write them to a file as they are. The layout is fixed (which keys, how
deep), so each piece is a format string with the indentation of its depth.
`EnumerateWriter` re-encodes only the tasks that changed since its last body.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any, Protocol

from mesosdns.gojson import marshal_indent
from mesosdns.records.model import EnumFramework, EnumTask, RecordSet, SRVTarget


class AXFRConfig(Protocol):
    """The config fields ``/v1/axfr`` shows."""

    @property
    def ttl(self) -> int: ...
    @property
    def refresh_seconds(self) -> int: ...
    @property
    def soa_mname(self) -> str: ...
    @property
    def soa_rname(self) -> str: ...
    @property
    def domain(self) -> str: ...


# a string that Go writes as it is, between quotes: no quote, backslash,
# control character, <, >, &, U+2028 or U+2029 (and no lone surrogate)
_PLAIN = re.compile("[^\"\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]*")


def quote(s: str) -> str:
    """``s`` as a JSON string, as Go escapes it."""
    if _PLAIN.fullmatch(s):
        return f'"{s}"'
    return marshal_indent(s).decode()


# how many tasks or names a writer writes between two calls of its checkpoint
CHECK_EVERY = 512


def _go_on() -> None:
    """The default checkpoint: never waits."""


def _ind(depth: int) -> str:
    """A line's start at ``depth``: the prefix (one space), one space a level."""
    return "\n" + " " * (depth + 1)


# /v1/enumerate: {"frameworks": [{"tasks": [{"name", "id", "records": [{...}]}], "name"}]}
_REC = "".join((_ind(6), "{{", _ind(7), '"name": "{}",', _ind(7), '"host": "{}",',
                _ind(7), '"rtype": "{}"', _ind(6), "}}"))
_TASK_HEAD = "".join((_ind(4), "{{", _ind(5), '"name": "{}",', _ind(5), '"id": "{}",',
                      _ind(5), '"records": '))
_TASK_TAIL = _ind(4) + "}"
_RECS_TAIL = _ind(5) + "]"
# the same with the quotes left to `quote`, for a task with a string to escape
_REC_Q, _TASK_HEAD_Q = (x.replace('"{}"', "{}") for x in (_REC, _TASK_HEAD))


def _task(t: EnumTask) -> bytes:
    """One task's piece. Its strings are checked at once: in the common case
    none needs escaping and each goes in between quotes as it is."""
    recs = t.records
    q: Callable[[str], str]
    if _PLAIN.fullmatch("".join([t.name, t.id, *chain.from_iterable(recs)])):
        head, rec, q = _TASK_HEAD, _REC, str
    else:
        head, rec, q = _TASK_HEAD_Q, _REC_Q, quote
    first = head.format(q(t.name), q(t.id))
    if not recs:  # Go marshals an empty slice it never appended to as null
        return f"{first}null{_TASK_TAIL}".encode()
    body = ",".join([rec.format(q(r.name), q(r.host), q(r.rtype)) for r in recs])
    return f"{first}[{body}{_RECS_TAIL}{_TASK_TAIL}".encode()


class EnumerateWriter:
    """Writes ``/v1/enumerate``. It keeps where each task's piece lies in its
    last body, so that the next body copies the pieces of the tasks that did
    not change and encodes only the others."""

    def __init__(self) -> None:
        self._last: bytes | memoryview = b""
        self._spans: dict[EnumTask, tuple[int, int]] = {}
        self._next: dict[EnumTask, tuple[int, int]] = {}

    def pieces(self, frameworks: Iterable[EnumFramework],
               checkpoint: Callable[[], object] = _go_on) -> Iterator[bytes | memoryview]:
        """The next body, piece by piece as they are made (some of them views
        of the last body), so that a caller writing them out never holds the
        whole body; once they are all taken, it becomes the last one with
        `wrote`. ``checkpoint`` is called every `CHECK_EVERY` tasks (it may
        wait: the writer runs in a thread)."""
        spans: dict[EnumTask, tuple[int, int]] = self._spans
        new_spans: dict[EnumTask, tuple[int, int]] = {}
        pos = 0
        last = memoryview(self._last)
        for f in frameworks:
            head = f"{_ind(2)}{{{_ind(3)}\"tasks\": ".encode()
            head = (b"," if pos else b'{\n  "frameworks": [') + head
            if f.tasks:
                head += b"["
                yield head
                pos += len(head)
                for i, t in enumerate(f.tasks):
                    if i:
                        yield b","
                        pos += 1
                        if not i % CHECK_EVERY:
                            checkpoint()
                    span = spans.get(t)
                    piece = last[span[0]:span[1]] if span is not None else _task(t)
                    end = pos + len(piece)
                    new_spans[t] = (pos, end)
                    yield piece
                    pos = end
                tail = f"{_ind(3)}],{_ind(3)}\"name\": {quote(f.name)}{_ind(2)}}}".encode()
            else:
                yield head
                pos += len(head)
                tail = f"[],{_ind(3)}\"name\": {quote(f.name)}{_ind(2)}}}".encode()
            yield tail
            pos += len(tail)
        if pos:
            yield b"\n  ]\n }"
        else:  # likewise: no framework at all is null
            yield b'{\n  "frameworks": null\n }'
        self._next = new_spans

    def wrote(self, body: bytes | memoryview) -> None:
        """``body`` holds what `pieces` returned last (joined, or read back
        from where it was written): the next body copies from it."""
        self._last, self._spans, self._next = body, self._next, {}

    def write(self, frameworks: Iterable[EnumFramework]) -> bytes:
        body = b"".join(self.pieces(frameworks))
        self.wrote(body)
        return body


def enumerate_json(rs: RecordSet) -> bytes:
    return EnumerateWriter().write(rs.frameworks)


def _same(vals: Sequence[str]) -> Sequence[str]:
    return vals


def _hostports(vals: Sequence[SRVTarget]) -> Sequence[str]:
    return [f"{host}:{port}" for host, port in vals]


def _values(m: Mapping[str, Sequence[Any]], checkpoint: Callable[[], object],
            text: Callable[[Any], Sequence[str]] = _same) -> Iterator[bytes]:
    """A Go map of string lists, keys sorted: its members at depth 3 (in
    "Records"), each but the first after its comma. ``text``: a name's
    values as those strings, made one name at a time (all of them at once
    would be a second copy of every SRV target, as text)."""
    plain, q = _PLAIN.fullmatch, quote
    head, sep, tail = _ind(3) + '"{}": [' + _ind(4) + '"', '",' + _ind(4) + '"', '"' + _ind(3) + "]"
    for i, k in enumerate(sorted(m)):
        if i and not i % CHECK_EVERY:
            checkpoint()
        vals = text(m[k])
        comma = "," if i else ""
        if not vals:
            yield f"{comma}{_ind(3)}{q(k)}: []".encode()
        elif plain(k + "".join(vals)):  # the common case: nothing to escape
            yield f"{comma}{head.format(k)}{sep.join(vals)}{tail}".encode()
        else:
            items = ",".join([f"{_ind(4)}{q(v)}" for v in vals])
            yield f"{comma}{_ind(3)}{q(k)}: [{items}{_ind(3)}]".encode()


def axfr_pieces(rs: RecordSet, serial: int, config: AXFRConfig,
                checkpoint: Callable[[], object] = _go_on) -> Iterator[bytes]:
    """``/v1/axfr``, piece by piece (``checkpoint``: as for the enumeration)."""
    q = quote
    yield (
        f'{{\n  "TTL": {config.ttl},\n  "Serial": {serial},\n  "RefreshSeconds": '
        f'{config.refresh_seconds},\n  "Mname": {q(config.soa_mname)},\n  "Rname": '
        f'{q(config.soa_rname)},\n  "Domain": {q(config.domain)},\n  "Records": {{'.encode()
    )
    maps: tuple[tuple[str, Mapping[str, Sequence[Any]], Callable[[Any], Sequence[str]]], ...] = (
        ("As", rs.a, _same), ("AAAAs", rs.aaaa, _same), ("SRVs", rs.srv, _hostports))
    for i, (key, m, text) in enumerate(maps):
        comma = "," if i else ""
        if m:
            yield f'{comma}{_ind(2)}"{key}": {{'.encode()
            yield from _values(m, checkpoint, text)
            yield _ind(2).encode() + b"}"
        else:
            yield f'{comma}{_ind(2)}"{key}": {{}}'.encode()
    yield b"\n  }\n }"


def axfr_json(rs: RecordSet, serial: int, config: AXFRConfig) -> bytes:
    return b"".join(axfr_pieces(rs, serial, config))


__all__ = ["AXFRConfig", "EnumerateWriter", "SRVTarget", "axfr_json", "axfr_pieces",
           "enumerate_json", "quote"]
