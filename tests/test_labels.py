"""Label rules: table cases and Hypothesis properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesosdns.records.labels import domain_frag, rfc952, rfc1123

COMMON = {
    "": "",
    "a": "a",
    "-": "",
    "a---": "a",
    "---a---": "a",
    "---a---b": "a---b",
    "a.b.c.d.e": "a-b-c-d-e",
    "a.c.d_de.": "a-c-d-de",
    "abc123": "abc123",
    "-abc123": "abc123",
    "abc123-": "abc123",
    "abc-123": "abc-123",
    "abc--123": "abc--123",
    "r29f.dev.angrypigs": "r29f-dev-angrypigs",
    "MiXeD_Case": "mixed-case",
    "Ünïcode-App": "ncode-app",
    "$$$": "",
    "my app (v2)": "myappv2",
}

RFC1123_CASES = {
    **COMMON,
    "4abc123": "4abc123",
    "-4abc123": "4abc123",
    "89fdgsf---gs7-fgs--d7fddg-": "89fdgsf---gs7-fgs--d7fddg",
    "fd%gsf---gs7-f$gs--d7fddg-123": "fdgsf---gs7-fgs--d7fddg-123",
    # cut at 63, trailing '-' trimmed and refilled from after the cut
    "x" * 62 + "-" + "yz": "x" * 62 + "y",
    "x" * 62 + "---" + "yz": "x" * 62 + "y",
    "x" * 70: "x" * 63,
    "hello" + "-" * 56 + "f": "hello" + "-" * 56 + "f",
    "hello" + "-" * 58 + "f": "hellof",
}

RFC952_CASES = {
    **COMMON,
    "4abc123": "abc123",
    "-4abc123": "abc123",
    "89fdgsf---gs7-fgs--d7fddg-123": "fdgsf---gs7-fgs--d7fddg1",
    "89fdgsf---gs7-fgs--d7fddg---123": "fdgsf---gs7-fgs--d7fddg1",
    "chronos with a space AND MIXED CASE-2.0.1": "chronoswithaspaceandmixe",
    # the trailing "-" at the cut is trimmed and refilled from after the cut
    "nginx-router-mesosphere-tutorial": "nginx-router-mesospheret",
    "2048-game": "game",
}


@pytest.mark.parametrize(("name", "want"), sorted(RFC1123_CASES.items()))
def test_rfc1123(name: str, want: str) -> None:
    assert rfc1123(name) == want


@pytest.mark.parametrize(("name", "want"), sorted(RFC952_CASES.items()))
def test_rfc952(name: str, want: str) -> None:
    assert rfc952(name) == want


@pytest.mark.parametrize(
    ("name", "want1123", "want952"),
    [
        ("", "", ""),
        ("...", "", ""),
        ("a..c.e", "a.c.e", "a.c.e"),
        ("(@ host . com", "host.com", "host.com"),
        ("MiXeDcase.CoM", "mixedcase.com", "mixedcase.com"),
        ("marathon-0.6.0-dev", "marathon-0.6.0-dev", "marathon-0.dev"),
        (
            "pod_123$abc.marathon-0.6.0-dev.mesos",
            "pod-123abc.marathon-0.6.0-dev.mesos",
            "pod-123abc.marathon-0.dev.mesos",
        ),
    ],
)
def test_domain_frag(name: str, want1123: str, want952: str) -> None:
    assert domain_frag(name, rfc1123) == want1123
    assert domain_frag(name, rfc952) == want952


LABEL = re.compile(r"^[a-z0-9-]*$")


@given(st.text())
def test_rfc1123_properties(name: str) -> None:
    out = rfc1123(name)
    assert LABEL.match(out)
    assert len(out) <= 63
    assert not out.startswith("-")
    assert rfc1123(out) == out or out.endswith("-")  # idempotent unless refill ends in '-'


@given(st.text())
def test_rfc952_properties(name: str) -> None:
    out = rfc952(name)
    assert LABEL.match(out)
    assert len(out) <= 24
    assert not out[:1].isdigit() and not out.startswith("-")


@given(st.text(alphabet="abcXYZ019-._$ é", max_size=120))
def test_domain_frag_properties(name: str) -> None:
    out = domain_frag(name, rfc1123)
    assert ".." not in out and not out.startswith(".") and not out.endswith(".")
    assert all(LABEL.match(part) and 0 < len(part) <= 63 for part in out.split(".") if out)


@given(st.text(alphabet="abc-", max_size=80))
def test_rfc1123_keeps_short_clean_names(name: str) -> None:
    clean = name.strip("-")
    if len(clean) <= 63:
        assert rfc1123(name) == clean
