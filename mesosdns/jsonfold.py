"""What every config decoder shares: JSON type names for messages, and Go's
case folding of key names."""

from __future__ import annotations


def json_type(value: object) -> str:
    """The JSON type of a decoded value, as a problem message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def fold(name: str) -> str:
    """Go's case folding for ASCII field names (Kelvin sign and long s included)."""
    return name.replace("\u212a", "k").replace("\u017f", "s").lower()
