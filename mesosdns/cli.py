"""The ``mesos-dns`` command line, parsed as the original's Go ``flag`` package does.

Accepted: ``-config=FILE`` / ``-config FILE`` (one or two dashes, default
``config.json``), ``-version``, ``-v`` / ``-v=N`` / ``-v N`` (glog's verbosity
level, which the original takes: 1 verbose, 2 very verbose), ``-vv`` (very
verbose), ``-logQueries`` (log every query), ``-h`` / ``-help``.  glog's other
flags (``-logtostderr``, ``-alsologtostderr``, ``-stderrthreshold``,
``-log_dir``, ``-log_backtrace_at``, ``-vmodule``) are accepted and ignored so
that existing service files keep working.  As with Go, parsing stops at the
first argument that is not a flag, or after ``--``.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from typing import Final, TextIO

from mesosdns import __version__
from mesosdns.config import load_config
from mesosdns.errors import ConfigError

PROG: Final = "mesos-dns"
EXIT_USAGE: Final = 2
EXIT_CONFIG: Final = 2

_BOOL_FLAGS: Final = frozenset({"version", "vv", "logQueries", "h", "help",
                                "logtostderr", "alsologtostderr"})
_VALUE_FLAGS: Final = frozenset({"config", "v", "stderrthreshold", "log_dir",
                                 "log_backtrace_at", "vmodule"})
_TRUE: Final = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "false", "FALSE", "False"})

USAGE: Final = f"""Usage of {PROG}:
  -config string
        path to config file (json) (default "config.json")
  -logQueries
        log every DNS query (mesosdns extension)
  -v int
        log level for V logs: 1 verbose, 2 very verbose
  -version
        output the version
  -vv
        very verbose logging (same as -v=2)
"""


class UsageError(Exception):
    """The command line is malformed (the message says how, as Go's flag does)."""


@dataclass
class Options:
    """What the command line asked for."""

    config: str = "config.json"
    version: bool = False
    verbosity: int = 0
    log_queries: bool = False
    help: bool = False


def _flag_name(arg: str) -> tuple[str, str | None]:
    """``-name[=value]`` / ``--name[=value]`` -> (name, value or None)."""
    body = arg[2:] if arg.startswith("--") else arg[1:]
    if not body or body[0] in "-=":
        raise UsageError(f"bad flag syntax: {arg}")
    name, eq, value = body.partition("=")
    return name, (value if eq else None)


def _parse_bool(name: str, value: str | None) -> bool:
    if value is None or value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f'invalid boolean value "{value}" for -{name}: parse error')


def _parse_level(value: str) -> int:
    try:
        level = int(value, 10)
    except ValueError:
        raise UsageError(f'invalid value "{value}" for flag -v: parse error') from None
    return max(level, 0)


def _apply(opts: Options, name: str, value: str) -> None:
    if name == "config":
        opts.config = value
    elif name == "v":
        opts.verbosity = max(opts.verbosity, _parse_level(value))


def _apply_bool(opts: Options, name: str, on: bool) -> None:
    if name == "version":
        opts.version = on
    elif name == "vv" and on:
        opts.verbosity = max(opts.verbosity, 2)
    elif name == "logQueries":
        opts.log_queries = on
    elif name in ("h", "help"):
        opts.help = on


def parse_args(argv: list[str]) -> Options:
    """Parse ``argv`` (without the program name); raise UsageError when malformed."""
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, value = _flag_name(arg)
        if name in _BOOL_FLAGS:
            _apply_bool(opts, name, _parse_bool(name, value))
        elif name == "v" and value is None:
            # glog needs -v=N; a bare -v means "verbose" unless a level follows.
            if i < len(argv) and argv[i].isdigit():
                value, i = argv[i], i + 1
            _apply(opts, name, value or "1")
        elif name in _VALUE_FLAGS:
            if value is None:
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: -{name}")
                value, i = argv[i], i + 1
            _apply(opts, name, value)
        else:
            raise UsageError(f"flag provided but not defined: -{name}")
    return opts


def setup_logging(verbosity: int, stream: TextIO | None = None) -> None:
    """Log to stderr: warnings and errors; -v adds info, -vv (or -v=2) debug."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        stream=stream or sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


def _report(lines: list[str], prefix: str) -> None:
    for line in lines:
        print(f"{PROG}: {prefix}{line}", file=sys.stderr)


def _serve(options: Options) -> int:
    try:
        config, warnings = load_config(options.config)
    except ConfigError as exc:
        _report(exc.problems, "config: ")
        return EXIT_CONFIG
    _report(warnings, "config: warning: ")
    if options.log_queries:
        config = dataclasses.replace(config, log_queries=True)
    if config.log_queries:
        # the per-query lines are debug records of the DNS server's logger:
        # show them whatever -v says
        logging.getLogger("mesosdns.dns.protocol").setLevel(logging.DEBUG)
    try:
        from mesosdns.app import run  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name != "mesosdns.app":
            raise
        _report(["the server (mesosdns.app) is not available in this build"], "")
        return 1
    try:
        return int(run(config, options.verbosity))
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    """Run mesos-dns; return the exit status (2 for a bad command line or config)."""
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"{exc}\n{USAGE}", end="", file=sys.stderr)
        return EXIT_USAGE
    if options.help:
        print(USAGE, end="", file=sys.stderr)
        return 0
    if options.version:
        print(__version__)
        return 0
    setup_logging(options.verbosity)
    return _serve(options)
