"""The ``rrl`` key: response rate limiting, decoded into a frozen `RRLConfig`.

``"rrl": {"responsesPerSecond": 20, "slip": 2, "window": 15,
"ipv4PrefixLength": 24, "ipv6PrefixLength": 56}``; absent (or null) means
off. Sub-keys match case-insensitively, as every key does; a missing one
takes its default; an unknown one is a warning. Ranges are BIND's
``rate-limit`` ones; every problem is reported as ``rrl.slip: reason``.
``responsesPerSecond: 0`` limits nothing, as in BIND.
"""

from __future__ import annotations

from typing import Final

from mesosdns.config.decode import _Bad, _Decoded, _int
from mesosdns.config.model import RRLConfig
from mesosdns.jsonfold import fold as _fold

# sub-key -> (RRLConfig attribute, range as BIND's rate-limit options)
_SUBKEYS: Final = {
    "responsesPerSecond": ("responses_per_second", 0, 1000),
    "slip": ("slip", 0, 10),
    "window": ("window", 1, 3600),
    "ipv4PrefixLength": ("ipv4_prefix_length", 0, 32),
    "ipv6PrefixLength": ("ipv6_prefix_length", 0, 128),
}
_BY_FOLD: Final = {_fold(k): k for k in _SUBKEYS}


def _check_rrl(d: _Decoded) -> None:
    """``rrl``'s object into an `RRLConfig` (or problems ``rrl.<key>: reason``)."""
    raw = d.values.get("rrl")
    if not isinstance(raw, dict):
        return
    key = d.key("rrl")
    found: dict[str, int] = {}
    ok = True
    for sub, item in raw.items():
        name = _BY_FOLD.get(_fold(sub))
        if name is None:
            d.warn(f"{key}.{sub}: unknown key, ignored")
            continue
        if item is None:  # null leaves the default, as for every scalar
            continue
        attr, lo, hi = _SUBKEYS[name]
        try:
            value = _int(lo, hi)(item)
        except _Bad as exc:
            d.problems.append(f"{key}.{sub}: {exc}")
            ok = False
            continue
        assert isinstance(value, int)
        found[attr] = value
    d.values["rrl"] = RRLConfig(**found) if ok else None
