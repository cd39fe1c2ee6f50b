"""The generator against hand-derived expectations for the bundled fixtures.

The files under tests/expected/ were written by reasoning from the original's
rules, not by running this code (see tests/expected/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mesosdns.records.generator import GeneratorParams, generate
from mesosdns.records.model import RecordSet
from mesosdns.state.model import parse_state

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = Path(__file__).resolve().parent / "expected"
PARAMS = GeneratorParams(
    domain="mesos",
    ns_name="ns1.mesos.",
    listener_ips=("10.0.0.11",),
    masters=("", "10.0.0.11:5050", "10.0.0.12:5050", "10.0.0.13:5050"),
    ip_sources=("netinfo", "mesos", "host"),
)


def records(fixture: str) -> dict[str, dict[str, list[str]]]:
    rs: RecordSet = generate(parse_state((ROOT / "fixtures" / fixture).read_bytes()), PARAMS)
    return {
        "A": {k: sorted(v) for k, v in rs.a.items()},
        "AAAA": {k: sorted(v) for k, v in rs.aaaa.items()},
        "SRV": {k: sorted(str(t) for t in v) for k, v in rs.srv.items()},
    }


def test_demo_state_complete() -> None:
    want = json.loads((EXPECTED / "demo-default.json").read_text())
    got = records("demo-state.json")
    for rtype in ("A", "AAAA", "SRV"):
        assert got[rtype] == {k: sorted(v) for k, v in want.get(rtype, {}).items()}, rtype


@pytest.mark.parametrize("path", sorted(EXPECTED.glob("edge-*.json")), ids=lambda p: p.stem)
def test_edge_state_partial(path: Path) -> None:
    want: dict[str, Any] = json.loads(path.read_text())
    got = records("edge-state.json")
    for rtype in ("A", "AAAA", "SRV"):
        for name, values in want.get(rtype, {}).items():
            assert got[rtype].get(name, []) == sorted(values), (rtype, name)
    for name in want.get("absent", []):
        assert all(name not in got[rtype] for rtype in got), name


def test_ipv6_fixture_parses_and_generates() -> None:
    got = records("ipv6-state.json")
    assert got["AAAA"], "the dual-stack fixture yields AAAA records"
    assert parse_state((ROOT / "fixtures" / "ipv6-state.json").read_bytes()).skipped == 0
