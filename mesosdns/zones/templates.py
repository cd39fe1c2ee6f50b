"""Record templates: ``{agent.hostname}``, ``{task.ip}``, ``{param.NAME}``, ...

A tiny, safe formatter. The braces are parsed here, never handed to
``str.format`` or any evaluator: a placeholder is one of the documented
fields below, or ``param.NAME`` (a zone parameter, substituted when the
template is parsed). Anything else is an error found when the config is
loaded. ``{{`` and ``}}`` stand for literal braces.

Fields (``FIELDS``):

- ``agent.id``, ``agent.hostname`` (as Mesos reports them), ``agent.ip`` (each
  address of the agent);
- ``task.id`` (as Mesos reports it), ``task.name`` (the task's DNS label, as
  in ``<task>.<framework>.<domain>``), ``task.ip`` (each address of the task,
  from ``IPSources``);
- ``framework.id``, ``framework.name`` (the framework's DNS name, as in
  ``<task>.<framework>.<domain>``).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["FIELDS", "Field", "Template", "TemplateError", "parse_template"]

FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "agent": ("id", "hostname", "ip"),
    "task": ("id", "name", "ip"),
    "framework": ("id", "name"),
}
_PARAM_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")


class TemplateError(ValueError):
    """A template that cannot be parsed (the message is the reason)."""


@dataclass(frozen=True, slots=True)
class Field:
    """One placeholder: ``obj.attr`` (``agent.ip``, ...)."""

    obj: str
    attr: str

    @property
    def key(self) -> str:
        return f"{self.obj}.{self.attr}"


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text and fields, in order."""

    source: str
    parts: tuple[str | Field, ...]

    @property
    def fields(self) -> frozenset[Field]:
        return frozenset(p for p in self.parts if isinstance(p, Field))

    @property
    def objects(self) -> frozenset[str]:
        return frozenset(f.obj for f in self.fields)

    @property
    def is_static(self) -> bool:
        return not self.fields

    def expand(self, values: Mapping[str, str]) -> str:
        """The text with every field replaced by ``values[field.key]``.

        A missing key raises KeyError: the caller decides which objects
        provide which fields.
        """
        return "".join(p if isinstance(p, str) else values[p.key] for p in self.parts)

    def static_text(self) -> str:
        """The text of a template without fields."""
        if not self.is_static:
            raise TemplateError("template has fields")
        return "".join(p for p in self.parts if isinstance(p, str))


def parse_template(text: str, params: Mapping[str, str]) -> Template:
    """Parse ``text``; ``{param.NAME}`` is replaced by ``params[NAME]`` now.

    Raises TemplateError naming the problem (unbalanced brace, unknown
    field or parameter).
    """
    parts: list[str | Field] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "}":
            if text.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise TemplateError(f"unmatched '}}' at offset {i}")
        if c != "{":
            literal.append(c)
            i += 1
            continue
        if text.startswith("{{", i):
            literal.append("{")
            i += 2
            continue
        end = text.find("}", i + 1)
        nested = text.find("{", i + 1)
        if end < 0 or 0 <= nested < end:
            raise TemplateError(f"unclosed '{{' at offset {i}")
        item = _placeholder(text[i + 1 : end].strip(), params)
        if isinstance(item, str):
            literal.append(item)
        else:
            if literal:
                parts.append("".join(literal))
                literal.clear()
            parts.append(item)
        i = end + 1
    if literal:
        parts.append("".join(literal))
    return Template(text, tuple(parts))


def _placeholder(inner: str, params: Mapping[str, str]) -> str | Field:
    obj, dot, attr = inner.partition(".")
    if not dot or not attr:
        raise TemplateError(f"unknown template field {inner!r} ({_known()})")
    if obj == "param":
        if not _PARAM_RE.fullmatch(attr):
            raise TemplateError(f"invalid parameter name {attr!r}")
        if attr not in params:
            raise TemplateError(f"unknown parameter {attr!r} (not in the zone's params)")
        return params[attr]
    if attr not in FIELDS.get(obj, ()):
        raise TemplateError(f"unknown template field {inner!r} ({_known()})")
    return Field(obj, attr)


def _known() -> str:
    names = [f"{obj}.{attr}" for obj, attrs in FIELDS.items() for attr in attrs]
    return "one of " + ", ".join(names) + ", param.NAME"
