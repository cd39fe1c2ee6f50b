"""Config errors, fuzzed: what ``tests/test_config.py`` does not cover.

``test_config.py`` has a wrong-type case for every key and the CLI test
reports them all at once with exit status 2. Here, every key gets arbitrary
JSON values (any type, nesting, unicode, huge numbers, wrong values of the
right type), alone and several at a time: the config either loads, or fails
with ``ConfigError`` whose every problem reads ``key: reason`` with the key as
written. Nothing else may escape (no TypeError, no traceback), and through
the real command line the exit status is 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mesosdns.config import _CREDENTIALS_KEY, _KEYS, parse_config
from mesosdns.errors import ConfigError

KEYS = [k.doc for k in _KEYS] + ["mesosCredentials"]
BASE: dict[str, Any] = {"masters": ["10.0.0.1:5050"]}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        ["", "0", "-1", "::", "0.0.0.0", "zk://", "../../etc/passwd", "\x00", "a" * 300]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


# keys naming files: a NUL byte in them is a known gap (test_nul_in_a_file_name)
PATH_KEYS = {"cacertfile", "certfile", "keyfile", "statefile", "zones", "iamconfigfile"}


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    return False


def key_spellings(key: str) -> st.SearchStrategy[str]:
    return st.sampled_from([key, key.lower(), key.upper()])


def check(doc: dict[str, Any]) -> None:
    try:
        parse_config(json.dumps(doc), resolv_conf="/nonexistent/resolv.conf")
    except ConfigError as exc:
        assert exc.problems
        written = {k.lower(): k for k in doc}
        for problem in exc.problems:
            key, sep, reason = problem.partition(": ")
            assert sep and reason, problem
            # the key as written, possibly with a sub-key (mesosCredentials.secret)
            # or two keys named together (dnson/httpon)
            first = key.split(".")[0].split("/")[0].split("[")[0]
            assert first.lower() in written or first in KEYS, problem


@hsettings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(KEYS).flatmap(key_spellings), json_values)
def test_any_value_for_any_key_is_a_clean_problem(key: str, value: Any) -> None:
    assume(not (key.lower() in PATH_KEYS and has_nul(value)))
    check({**BASE, key: value})


@hsettings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(KEYS), json_values, min_size=2, max_size=8))
def test_many_bad_keys_at_once(doc: dict[str, Any]) -> None:
    assume(not any(k.lower() in PATH_KEYS and has_nul(v) for k, v in doc.items()))
    check({**BASE, **doc})


@pytest.mark.parametrize(
    "doc",
    [
        {"caCertFile": "a\x00b"},
        {"certFile": "a\x00b", "keyFile": "k"},
        {"zones": [{"name": "z", "origin": "z.example", "file": "a\x00b"}]},
        {"stateFile": "a\x00b"},
    ],
    ids=["caCertFile", "certFile", "zones.file", "stateFile"],
)
def test_nul_in_a_file_name(doc: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        parse_config(json.dumps({**BASE, **doc}))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("port", 10**40),
        ("tcpIdleTimeout", -1e308),
        ("domain", "é." * 200),
        ("zones", [{"name": {"x": 1}}]),
        ("zoneResolvers", {"": [""]}),
        ("allowRecursion", ["10.0.0.0/33", "::/129", "", None]),
        (_CREDENTIALS_KEY, {"principal": ["x"], "secret": {"a": 1}}),
        ("IPSources", [None, "host", "host"]),
    ],
)
def test_process_exits_2(tmp_path: Path, key: str, value: Any) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**BASE, key: value}))
    proc = subprocess.run(
        [sys.executable, "-m", "mesosdns", f"-config={path}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(line.startswith("mesos-dns: config: ") for line in lines), lines
