"""DNS label rules of Mesos-DNS (RFC 1123 by default, RFC 952 on request).

A name becomes a label by: lower-casing ASCII letters; turning ``.``, ``_`` and
``-`` into ``-``; dropping every other character (non-ASCII included);
trimming leading ``-`` (RFC 952: leading ``-`` and digits); cutting at the
maximum length (63, RFC 952: 24); trimming trailing ``-``; and, when that trim
shortened the cut label, refilling it from the characters after the cut (with
their leading ``-`` trimmed) up to the cut length again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

LabelFunc = Callable[[str], str]

_KEEP = "abcdefghijklmnopqrstuvwxyz0123456789"
# str.translate table: A-Z to a-z, . _ - to -, keep a-z0-9, drop everything else
_TABLE: dict[int, int | None] = {c: None for c in range(128)}
_TABLE.update({ord(c): ord(c) for c in _KEEP})
_TABLE.update({ord(c): ord(c.lower()) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"})
_TABLE.update({ord(c): ord("-") for c in "._-"})


class _DropTable(dict[int, int | None]):
    """Translation table that drops every code point it does not list."""

    def __missing__(self, key: int) -> None:
        return None


_MAP = _DropTable(_TABLE)


def _trim_cut(label: str, maxlen: int, left: str) -> str:
    trimmed = label.lstrip(left)
    size = min(len(trimmed), maxlen)
    head = trimmed[:size].rstrip("-")
    if len(head) == size:
        return head
    tail = trimmed[size:].lstrip("-")
    if tail:
        return head + tail[: size - len(head)]
    return head


@lru_cache(maxsize=65536)
def rfc1123(name: str) -> str:
    """A label of at most 63 characters (RFC 1123)."""
    return _trim_cut(name.translate(_MAP), 63, "-")


@lru_cache(maxsize=65536)
def rfc952(name: str) -> str:
    """A label of at most 24 characters not starting with a digit (RFC 952)."""
    return _trim_cut(name.translate(_MAP), 24, "-0123456789")


def domain_frag(name: str, label: LabelFunc, sep: str = ".") -> str:
    """Label each ``sep``-separated part of ``name``, drop empty labels, rejoin."""
    return sep.join(lab for part in name.split(sep) if (lab := label(part)))
