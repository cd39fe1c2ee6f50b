"""``zoneTransfer``: AXFR / IXFR to secondaries, NOTIFY targets, the TSIG key.

```json
"zoneTransfer": {"allow": ["10.0.0.0/8"], "notify": ["10.0.0.5:53"],
                 "tsig": {"name": "xfr-key", "algorithm": "hmac-sha256",
                          "secret": "<base64>"}}
```

Sub-keys are matched case-insensitively (as Go matches struct fields),
unknown ones warned about, every problem reported as
``zoneTransfer.tsig.secret: not valid base64``. The result is a frozen
`ZoneTransfer` of this package's own (the config package imports nothing
from ``mesosdns.dns``; ``builder/service.py`` maps it onto the DNS server's
``TransferSettings``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from typing import Any, Final

from mesosdns.config.addresses import is_valid_domain, split_resolver
from mesosdns.config.view import REDACTED
from mesosdns.jsonfold import fold as _fold
from mesosdns.jsonfold import json_type as _json_type

# Accepted TSIG algorithms (RFC 8945 section 6), as written in the file
# (lower case, no trailing dot) -> dnspython's name text for them.
TSIG_ALGORITHMS: Final = {
    "hmac-sha256": "hmac-sha256.",
    "hmac-sha512": "hmac-sha512.",
    "hmac-sha384": "hmac-sha384.",
    "hmac-sha224": "hmac-sha224.",
    "hmac-sha1": "hmac-sha1.",
    "hmac-md5": "hmac-md5.sig-alg.reg.int.",
    "hmac-md5.sig-alg.reg.int": "hmac-md5.sig-alg.reg.int.",
}
DEFAULT_TSIG_ALGORITHM: Final = "hmac-sha256"


@dataclass(frozen=True)
class TransferKey:
    """``zoneTransfer.tsig``: the key's name (lower case, trailing dot), its
    algorithm (dnspython's name text) and secret (decoded)."""

    name: str
    algorithm: str
    secret: bytes

    def __repr__(self) -> str:  # never print the secret by accident
        return f"TransferKey(name={self.name!r}, algorithm={self.algorithm!r}, secret={REDACTED!r})"


@dataclass(frozen=True)
class ZoneTransfer:
    """``zoneTransfer``: allowed sources (normalised CIDRs), NOTIFY targets
    as (ip, port), the TSIG key or None."""

    allow: tuple[str, ...] = ()
    notify: tuple[tuple[str, int], ...] = ()
    tsig: TransferKey | None = None

    def view(self) -> dict[str, object]:
        """The ``/v1/config`` form: the secret never shown."""
        tsig: dict[str, object] | None = None
        if self.tsig is not None:
            algorithm = self.tsig.algorithm.rstrip(".")
            tsig = {"name": self.tsig.name, "algorithm": algorithm, "secret": REDACTED}
        return {
            "allow": list(self.allow),
            "notify": [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.notify],
            "tsig": tsig,
        }






class _Out:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []


def _strings(value: Any, key: str, out: _Out) -> list[tuple[int, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        out.problems.append(f"{key}: expected an array of strings, got {_json_type(value)}")
        return []
    items = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            out.problems.append(f"{key}: item {i}: expected a string, got {_json_type(item)}")
        else:
            items.append((i, item))
    return items


def _allow(value: Any, key: str, out: _Out) -> tuple[str, ...]:
    nets = []
    for i, text in _strings(value, key, out):
        try:
            nets.append(str(ipaddress.ip_network(text.strip(), strict=False)))
        except ValueError:
            out.problems.append(f"{key}: item {i}: {text!r} is not a CIDR or an IP")
    return tuple(dict.fromkeys(nets))


def _notify(value: Any, key: str, out: _Out) -> tuple[tuple[str, int], ...]:
    targets = []
    for i, text in _strings(value, key, out):
        try:
            targets.append(split_resolver(text.strip()))
        except ValueError as exc:
            out.problems.append(f"{key}: item {i}: {text!r}: {exc} (expected ip or ip:port)")
    return tuple(dict.fromkeys(targets))


def _tsig(value: Any, key: str, out: _Out) -> TransferKey | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        out.problems.append(f"{key}: expected an object, got {_json_type(value)}")
        return None
    found: dict[str, tuple[str, Any]] = {}
    for sub, item in value.items():
        name = _fold(sub)
        if name not in ("name", "algorithm", "secret"):
            out.warnings.append(f"{key}.{sub}: unknown key, ignored")
            continue
        found[name] = (f"{key}.{sub}", item)
    before = len(out.problems)
    fields: dict[str, str] = {}
    for name in ("name", "algorithm", "secret"):
        where, item = found.get(name, (f"{key}.{name}", None))
        if item is None:
            if name == "algorithm":
                fields[name] = DEFAULT_TSIG_ALGORITHM
            else:
                out.problems.append(f"{where}: required")
            continue
        if not isinstance(item, str):
            out.problems.append(f"{where}: expected a string, got {_json_type(item)}")
            continue
        fields[name] = item
    if len(out.problems) > before:
        return None
    where = found.get("name", (f"{key}.name", None))[0]
    key_name = fields["name"].strip().rstrip(".").lower()
    if not is_valid_domain(key_name):
        out.problems.append(f"{where}: {fields['name']!r} is not a valid key name")
    where = found.get("algorithm", (f"{key}.algorithm", None))[0]
    algorithm = TSIG_ALGORITHMS.get(fields["algorithm"].strip().rstrip(".").lower())
    if algorithm is None:
        names = ", ".join(sorted(k for k in TSIG_ALGORITHMS if "." not in k))
        out.problems.append(f"{where}: {fields['algorithm']!r} is not one of {names}")
    where = found["secret"][0]
    try:
        secret = base64.b64decode(fields["secret"].strip(), validate=True)
    except (binascii.Error, ValueError):
        out.problems.append(f"{where}: not valid base64")
        secret = b""
    else:
        if not secret:
            out.problems.append(f"{where}: must not be empty")
    if len(out.problems) > before or algorithm is None:
        return None
    return TransferKey(key_name + ".", algorithm, secret)


def decode_zone_transfer(value: Any, key: str) -> tuple[ZoneTransfer | None, list[str], list[str]]:
    """``zoneTransfer`` as written under ``key``: (value or None, problems,
    warnings). JSON null (or the key left out) means transfers off."""
    out = _Out()
    if value is None:
        return None, [], []
    if not isinstance(value, dict):
        return None, [f"{key}: expected an object, got {_json_type(value)}"], []
    subs: dict[str, tuple[str, Any]] = {}
    for sub, item in value.items():
        name = _fold(sub)
        if name not in ("allow", "notify", "tsig"):
            out.warnings.append(f"{key}.{sub}: unknown key, ignored")
            continue
        subs[name] = (f"{key}.{sub}", item)

    def field_of(name: str) -> tuple[Any, str]:
        where, item = subs.get(name, (f"{key}.{name}", None))
        return item, where

    allow = _allow(*field_of("allow"), out)
    notify = _notify(*field_of("notify"), out)
    tsig = _tsig(*field_of("tsig"), out)
    if not allow and not out.problems:
        out.warnings.append(f"{field_of('allow')[1]}: empty: no source may transfer the zones")
    if out.problems:
        return None, out.problems, out.warnings
    return ZoneTransfer(allow, notify, tsig), [], out.warnings
