"""The entry points: ``parse_config`` (a document) and ``load_config`` (a file).

Decode, run every check in a fixed order, then raise all the problems together
or build the ``Config``.
"""

from __future__ import annotations

import os

from mesosdns.config.checks import (
    _check_auth,
    _check_domains,
    _check_ip_sources,
    _check_listeners,
    _check_paths,
    _check_resolvers,
    _check_services,
    _check_sources,
    _check_tls,
    _os_reason,
)
from mesosdns.config.decode import _decode_document, _parse_json
from mesosdns.config.extensions import _check_extensions, _check_zones
from mesosdns.config.model import RESOLV_CONF, Config
from mesosdns.config.rrl import _check_rrl
from mesosdns.errors import ConfigError


def parse_config(
    data: bytes | str,
    source: str = "<config>",
    *,
    file: str | None = None,
    resolv_conf: str = RESOLV_CONF,
) -> tuple[Config, list[str]]:
    """Decode and validate a config document; return it and the warnings.

    ``source`` names the document in messages; ``file`` (default: ``source``
    made absolute unless it looks like ``<...>``) is the config file's path, and
    relative ``stateFile`` paths are resolved against its directory.
    ``resolv_conf`` is read only when ``resolvers`` is empty (as the original).
    Raises ConfigError listing every problem.
    """
    if file is None:
        file = "" if source.startswith("<") else os.path.abspath(source)
    d = _decode_document(_parse_json(data, source))
    base_dir = os.path.dirname(file) if file else os.getcwd()
    for check in (_check_services, _check_sources, _check_ip_sources, _check_domains,
                  _check_listeners, _check_paths, _check_tls, _check_auth):
        check(d)
    _check_resolvers(d, resolv_conf)
    _check_extensions(d, base_dir)
    _check_zones(d, base_dir)  # operator zones
    _check_rrl(d)
    if d.problems:
        raise ConfigError(d.problems)
    return Config(**d.values, file=file), d.warnings


def load_config(path: str, *, resolv_conf: str = RESOLV_CONF) -> tuple[Config, list[str]]:
    """Read, decode and validate the config file at ``path`` ('~' expanded)."""
    full = os.path.abspath(os.path.expanduser(path))
    try:
        with open(full, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {_os_reason(exc)}"]) from None
    return parse_config(data, path, file=full, resolv_conf=resolv_conf)
