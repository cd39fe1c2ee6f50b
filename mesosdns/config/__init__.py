"""The configuration: the original's ``config.json`` as a validated, frozen value.

Keys are matched as Go's ``encoding/json`` matches them against the original's
``Config`` struct: case-insensitively (``refreshSeconds``, ``RefreshSeconds`` and
``REFRESHSECONDS`` are one key).  Types are checked as Go's decoder checks them
(a string where an integer belongs is an error, JSON ``null`` leaves a scalar at
its default and empties a list or a map), ranges as the Go field types and the
original's validation allow.  Unknown keys are warnings, never errors.  Every
problem is collected and raised together as ``ConfigError(["key: reason", ...])``
with the key as written in the file.

Deliberate differences from the original, all stricter and reported up front
instead of failing later: ``refreshSeconds`` and ``timeout`` must be positive
(the original panics or misbehaves), ``listener``/``HTTPListener`` must be IP
literals (an empty one means ``0.0.0.0``), a master needs a non-empty host, and
a ``zk`` URL must start with ``zk://`` and name at least one server.

The package, by area (each module imports only those above it; ``view`` names
``Config`` for its types only):

- ``addresses``: ``host:port``, resolver, domain-name and ``zk://`` syntax;
- ``view``: the ``/v1/config`` body (Go field names, secrets hidden);
- ``model``: the frozen ``Config``, ``MesosCredentials``, defaults, constants;
- ``decode``: JSON, Go-style key matching and per-key types, unknown keys;
- ``checks``: cross-field validation, resolv.conf;
- ``extensions``: our extension keys and the operator zones;
- ``rrl``: the ``rrl`` key's sub-keys (response rate limiting);
- ``load``: ``parse_config`` and ``load_config``.
"""

from __future__ import annotations

from mesosdns.config.addresses import ZkURL as ZkURL
from mesosdns.config.addresses import is_valid_domain as is_valid_domain
from mesosdns.config.addresses import mask_url_password as mask_url_password
from mesosdns.config.addresses import parse_zk_url as parse_zk_url
from mesosdns.config.addresses import split_host_port as split_host_port
from mesosdns.config.addresses import split_resolver as split_resolver
from mesosdns.config.decode import _CREDENTIALS_KEY as _CREDENTIALS_KEY
from mesosdns.config.decode import _KEYS as _KEYS
from mesosdns.config.decode import MAX_WORKERS as MAX_WORKERS
from mesosdns.config.decode import Decoder as Decoder
from mesosdns.config.decode import config_key as config_key
from mesosdns.config.extensions import cluster_domains as cluster_domains
from mesosdns.config.load import load_config as load_config
from mesosdns.config.load import parse_config as parse_config
from mesosdns.config.model import AUTH_MECHANISMS as AUTH_MECHANISMS
from mesosdns.config.model import DEFAULT_ALLOW_RECURSION as DEFAULT_ALLOW_RECURSION
from mesosdns.config.model import IP_SOURCES as IP_SOURCES
from mesosdns.config.model import RESOLV_CONF as RESOLV_CONF
from mesosdns.config.model import STATE_SOURCES as STATE_SOURCES
from mesosdns.config.model import Config as Config
from mesosdns.config.model import MesosCredentials as MesosCredentials
from mesosdns.config.model import RRLConfig as RRLConfig
from mesosdns.config.view import REDACTED as REDACTED

__all__ = [
    "DEFAULT_ALLOW_RECURSION",
    "Config",
    "MesosCredentials",
    "RRLConfig",
    "ZkURL",
    "is_valid_domain",
    "load_config",
    "parse_config",
    "parse_zk_url",
    "split_host_port",
    "split_resolver",
]
