"""The command line: Go-style flags, config errors, version, and the hand-off to app.run."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import mesosdns
from mesosdns import cli
from mesosdns.cli import Options, UsageError, main, parse_args
from mesosdns.config import Config

REPO = Path(__file__).resolve().parent.parent
GOOD = {"masters": ["10.0.0.1:5050"]}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() reconfigures the root logger; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], Options()),
        (["-config=x.json"], Options(config="x.json")),
        (["-config", "x.json"], Options(config="x.json")),
        (["--config", "x.json"], Options(config="x.json")),
        (["--config=x.json"], Options(config="x.json")),
        (["-config="], Options(config="")),
        (["-version"], Options(version=True)),
        (["--version"], Options(version=True)),
        (["-version=false"], Options()),
        (["-v"], Options(verbosity=1)),
        (["-v=1"], Options(verbosity=1)),
        (["-v=2"], Options(verbosity=2)),
        (["-v", "2"], Options(verbosity=2)),
        (["-v", "-config", "c"], Options(verbosity=1, config="c")),
        (["-vv"], Options(verbosity=2)),
        (["-v=1", "-vv"], Options(verbosity=2)),
        (["-logQueries"], Options(log_queries=True)),
        (
            ["-logtostderr", "-alsologtostderr=true", "-stderrthreshold", "INFO", "-v=1"],
            Options(verbosity=1),
        ),
        (["-h"], Options(help=True)),
        (["-config=a", "-config=b"], Options(config="b")),
        (["-config=a", "rest", "-version"], Options(config="a")),  # stops at a non-flag
        (["--", "-version"], Options()),
    ],
)
def test_parse_args_go_forms(argv: list[str], expected: Options) -> None:
    assert parse_args(argv) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-x"], "flag provided but not defined: -x"),
        (["-Config=a"], "flag provided but not defined: -Config"),
        (["-config"], "flag needs an argument: -config"),
        (["---config=a"], "bad flag syntax: ---config=a"),
        (["-=a"], "bad flag syntax: -=a"),
        (["-version=maybe"], 'invalid boolean value "maybe" for -version: parse error'),
        (["-v=abc"], 'invalid value "abc" for flag -v: parse error'),
    ],
)
def test_parse_args_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_args(argv)
    assert str(info.value) == message


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flag provided but not defined: -nope\nUsage of mesos-dns:")


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-help"]) == 0
    assert "-config string" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-version", "-config=/does/not/exist"]) == 0
    out = capsys.readouterr()
    assert out.out == f"{mesosdns.__version__}\n"
    assert out.err == ""


@pytest.fixture
def fake_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Config, int]]]:
    """Install a stand-in ``mesosdns.app`` whose run() records its arguments."""
    calls: list[tuple[Config, int]] = []
    module = types.ModuleType("mesosdns.app")

    def run(config: Config, verbosity: int) -> int:
        calls.append((config, verbosity))
        return 0

    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mesosdns.app", module)
    yield calls


def write(tmp_path: Path, doc: object, name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def test_main_hands_the_config_to_app_run(
    tmp_path: Path, fake_app: list[tuple[Config, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {**GOOD, "ttl": 5, "Extra": 1, "mesosCredentials": {"x": 1}})
    assert main([f"-config={path}", "-vv", "-logQueries"]) == 0
    [(config, verbosity)] = fake_app
    assert (config.ttl, config.log_queries, config.file, verbosity) == (5, True, path, 2)
    assert capsys.readouterr().err.splitlines() == [
        "mesos-dns: config: warning: Extra: unknown key, ignored",
        "mesos-dns: config: warning: mesosCredentials.x: unknown key, ignored",
    ]


def test_default_config_path_is_config_json_in_cwd(
    tmp_path: Path, fake_app: list[tuple[Config, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, GOOD)
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert fake_app[0][0].file == str(tmp_path / "config.json")


def test_run_status_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("mesosdns.app")
    module.run = lambda config, verbosity: 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mesosdns.app", module)
    assert main(["-config", write(tmp_path, GOOD)]) == 3


def test_config_errors_exit_2_without_calling_run(
    tmp_path: Path, fake_app: list[tuple[Config, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {**GOOD, "port": "53", "TTL": -1})
    assert main(["-config", path]) == 2
    assert fake_app == []
    assert capsys.readouterr().err.splitlines() == [
        "mesos-dns: config: port: expected an integer, got string",
        "mesos-dns: config: TTL: must be between 0 and 2147483647, got -1",
    ]


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "missing.json")
    assert main([f"--config={path}"]) == 2
    assert capsys.readouterr().err == (
        f"mesos-dns: config: {path}: cannot read: No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("verbosity", "level"),
    [(0, logging.WARNING), (1, logging.INFO), (2, logging.DEBUG), (5, logging.DEBUG)],
)
def test_logging_levels(verbosity: int, level: int) -> None:
    cli.setup_logging(verbosity)
    assert logging.getLogger().level == level


# --------------------------------------------------------------------------- as a process

# One wrong-typed value for every key the config accepts.
BAD_VALUES: dict[str, object] = {
    **dict.fromkeys(
        [
            "refreshSeconds",
            "port",
            "timeout",
            "stateTimeoutSeconds",
            "zkDetectionTimeout",
            "httpport",
            "ttl",
            "srvRecordDefaultWeight",
            "SOARefresh",
            "SOARetry",
            "SOAExpire",
            "SOAMinttl",
            "maxTcpConnections",
            "tcpIdleTimeout",
            "maxInflightForwards",
            "maxUDPPayload",
        ],
        "x",
    ),
    **dict.fromkeys(
        [
            "recurseon",
            "dnson",
            "httpon",
            "externalon",
            "enforceRFC952",
            "SetTruncateBit",
            "EnumerationOn",
            "mesosHTTPSOn",
            "logQueries",
            "reversePTR",
            "omitUnhealthy",
        ],
        "yes",
    ),
    **dict.fromkeys(
        [
            "SOAMname",
            "SOARname",
            "zk",
            "domain",
            "listener",
            "HTTPListener",
            "caCertFile",
            "certFile",
            "keyFile",
            "IAMConfigFile",
            "mesosAuthentication",
            "stateFile",
            "clusterID",
            "stateSource",
        ],
        1,
    ),
    **dict.fromkeys(
        [
            "masters",
            "resolvers",
            "IPSources",
            "domainAliases",
            "allowRecursion",
            "zones",
            "zoneResolvers",
            "mesosCredentials",
        ],
        True,
    ),
}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    return subprocess.run(
        [sys.executable, "-m", "mesosdns", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_process_reports_every_wrong_key_and_exits_2(tmp_path: Path) -> None:
    write(tmp_path, BAD_VALUES, "bad.json")
    proc = run_cli("-config=bad.json", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    keys = [line.removeprefix("mesos-dns: config: ").split(":")[0] for line in lines]
    assert all(line.startswith("mesos-dns: config: ") for line in lines)
    assert sorted(keys) == sorted(BAD_VALUES)


def test_process_refuses_a_udp_payload_below_512(tmp_path: Path) -> None:
    write(tmp_path, {**GOOD, "maxUDPPayload": 511}, "bad.json")
    proc = run_cli("-config=bad.json", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2,
        "mesos-dns: config: maxUDPPayload: must be between 512 and 65535, got 511\n",
    )


@pytest.mark.parametrize(
    "form", [["-config", "bad.json"], ["--config=bad.json"], ["--config", "bad.json"]]
)
def test_process_config_flag_forms(tmp_path: Path, form: list[str]) -> None:
    write(tmp_path, {**GOOD, "port": "53"}, "bad.json")
    proc = run_cli(*form, cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2,
        "mesos-dns: config: port: expected an integer, got string\n",
    )


@pytest.mark.parametrize("text", ["{not json", "[1]", ""])
def test_process_invalid_json(tmp_path: Path, text: str) -> None:
    (tmp_path / "config.json").write_text(text)
    proc = run_cli(cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mesos-dns: config: config.json: ")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("flag", ["-version", "--version"])
def test_process_version(tmp_path: Path, flag: str) -> None:
    proc = run_cli(flag, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{mesosdns.__version__}\n", "")


def test_process_bad_flag(tmp_path: Path) -> None:
    proc = run_cli("-bogus", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("flag provided but not defined: -bogus")
