"""The ``zoneTransfer`` key: decoding, problems as ``key: reason``, warnings,
``/v1/config`` (secret redacted) and the DNS server's `TransferSettings`."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from mesosdns.builder.service import dns_settings
from mesosdns.config import REDACTED, parse_config
from mesosdns.config.transfer import TransferKey, ZoneTransfer
from mesosdns.dns.settings import TransferSettings, TSIGKey
from mesosdns.errors import ConfigError

SECRET = base64.b64encode(b"a transfer secret").decode()
BASE: dict[str, Any] = {"masters": ["10.0.0.1:5050"]}


def parse(zt: Any, key: str = "zoneTransfer") -> tuple[ZoneTransfer | None, list[str]]:
    config, warnings = parse_config(json.dumps({**BASE, key: zt}))
    return config.zone_transfer, warnings


def problems(zt: Any, key: str = "zoneTransfer") -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(json.dumps({**BASE, key: zt}))
    return exc.value.problems


def test_off_by_default_and_with_null() -> None:
    config, _ = parse_config(json.dumps(BASE))
    assert config.zone_transfer is None
    assert dns_settings(config).transfer is None
    assert parse(None) == (None, [])


def test_a_full_value_is_decoded_and_normalised() -> None:
    zt, warnings = parse({
        "allow": ["10.0.0.0/8", "192.168.1.7", "fd00::1/64", "10.0.0.1/8"],
        "notify": ["10.0.0.5:53", "10.0.0.6", "[fd00::53]:5353"],
        "tsig": {"name": "Xfr-Key.", "algorithm": "HMAC-SHA512", "secret": SECRET},
    })
    assert warnings == []
    assert zt == ZoneTransfer(
        allow=("10.0.0.0/8", "192.168.1.7/32", "fd00::/64"),
        notify=(("10.0.0.5", 53), ("10.0.0.6", 53), ("fd00::53", 5353)),
        tsig=TransferKey("xfr-key.", "hmac-sha512.", b"a transfer secret"),
    )


@pytest.mark.parametrize(("written", "canonical"), [
    (None, "hmac-sha256."),
    ("hmac-sha256", "hmac-sha256."),
    ("hmac-sha512.", "hmac-sha512."),
    ("hmac-sha384", "hmac-sha384."),
    ("hmac-sha224", "hmac-sha224."),
    ("hmac-sha1", "hmac-sha1."),
    ("hmac-md5", "hmac-md5.sig-alg.reg.int."),
    ("HMAC-MD5.SIG-ALG.REG.INT", "hmac-md5.sig-alg.reg.int."),
])
def test_algorithms(written: str | None, canonical: str) -> None:
    tsig: dict[str, Any] = {"name": "k", "secret": SECRET}
    if written is not None:
        tsig["algorithm"] = written
    zt, _ = parse({"allow": ["127.0.0.1"], "tsig": tsig})
    assert zt is not None and zt.tsig is not None and zt.tsig.algorithm == canonical


def test_keys_match_case_insensitively_and_unknown_ones_are_warned_about() -> None:
    zt, warnings = parse(
        {"ALLOW": ["127.0.0.1"], "Tsig": {"NAME": "k", "Secret": SECRET, "keyfile": "x"},
         "notifyDelay": 3},
        key="ZoneTransfer",
    )
    assert zt is not None and zt.allow == ("127.0.0.1/32",) and zt.tsig is not None
    assert sorted(warnings) == [
        "ZoneTransfer.Tsig.keyfile: unknown key, ignored",
        "ZoneTransfer.notifyDelay: unknown key, ignored",
    ]


def test_an_empty_allow_is_warned_about() -> None:
    zt, warnings = parse({})
    assert zt == ZoneTransfer()
    assert warnings == ["zoneTransfer.allow: empty: no source may transfer the zones"]


@pytest.mark.parametrize(("zt", "expected"), [
    ([], ["zoneTransfer: expected an object, got array"]),
    ("10.0.0.0/8", ["zoneTransfer: expected an object, got string"]),
    ({"allow": "10.0.0.0/8"}, ["zoneTransfer.allow: expected an array of strings, got string"]),
    ({"allow": [1]}, ["zoneTransfer.allow: item 0: expected a string, got number"]),
    ({"allow": ["10.0.0.0/33"]},
     ["zoneTransfer.allow: item 0: '10.0.0.0/33' is not a CIDR or an IP"]),
    ({"allow": ["x"], "notify": ["host.example:53"]}, [
        "zoneTransfer.allow: item 0: 'x' is not a CIDR or an IP",
        "zoneTransfer.notify: item 0: 'host.example:53': illegal IP 'host.example' "
        "(expected ip or ip:port)",
    ]),
    ({"notify": ["10.0.0.1:0"]}, None),
    ({"tsig": "k"}, ["zoneTransfer.tsig: expected an object, got string"]),
    ({"tsig": {}}, ["zoneTransfer.tsig.name: required", "zoneTransfer.tsig.secret: required"]),
    ({"tsig": {"name": "k", "secret": "not base64!"}},
     ["zoneTransfer.tsig.secret: not valid base64"]),
    ({"tsig": {"name": "k", "secret": ""}}, ["zoneTransfer.tsig.secret: must not be empty"]),
    ({"tsig": {"name": "k", "secret": 5}},
     ["zoneTransfer.tsig.secret: expected a string, got number"]),
    ({"tsig": {"name": "bad name!", "secret": SECRET}},
     ["zoneTransfer.tsig.name: 'bad name!' is not a valid key name"]),
    ({"tsig": {"name": "k", "algorithm": "rsasha256", "secret": SECRET}},
     ["zoneTransfer.tsig.algorithm: 'rsasha256' is not one of hmac-md5, hmac-sha1, "
      "hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512"]),
])
def test_problems_name_the_sub_key(zt: Any, expected: list[str] | None) -> None:
    got = problems(zt)
    if expected is None:  # a port out of range: reported, in its own words
        assert len(got) == 1 and got[0].startswith("zoneTransfer.notify: item 0: '10.0.0.1:0'")
    else:
        assert got == expected


def test_problems_use_the_key_as_written() -> None:
    assert problems({"TSIG": {"Name": "k", "SECRET": "%%"}}, key="zonetransfer") == [
        "zonetransfer.TSIG.SECRET: not valid base64"
    ]


def test_the_secret_is_never_shown() -> None:
    config, _ = parse_config(json.dumps({**BASE, "zoneTransfer": {
        "allow": ["10.0.0.0/8"], "notify": ["10.0.0.5", "[fd00::5]:5300"],
        "tsig": {"name": "xfr-key", "secret": SECRET}}}))
    view = config.redacted()["zoneTransfer"]
    assert view == {
        "allow": ["10.0.0.0/8"],
        "notify": ["10.0.0.5:53", "[fd00::5]:5300"],
        "tsig": {"name": "xfr-key.", "algorithm": "hmac-sha256", "secret": REDACTED},
    }
    secret = base64.b64decode(SECRET)
    for text in (repr(config), str(config), repr(dns_settings(config)),
                 json.dumps(config.redacted())):
        assert SECRET not in text and repr(secret) not in text and "transfer secret" not in text


def test_mapped_onto_the_dns_settings() -> None:
    config, _ = parse_config(json.dumps({**BASE, "zoneTransfer": {
        "allow": ["10.0.0.0/8"], "notify": ["10.0.0.5"],
        "tsig": {"name": "xfr-key", "algorithm": "hmac-sha512", "secret": SECRET}}}))
    assert dns_settings(config).transfer == TransferSettings(
        allow=("10.0.0.0/8",),
        notify=(("10.0.0.5", 53),),
        tsig=TSIGKey("xfr-key.", "hmac-sha512.", b"a transfer secret"),
    )
    assert parse_config(json.dumps({**BASE, "zoneTransfer": None}))[0].zone_transfer is None
