"""One exception tree for the whole package.

Third-party errors are translated into these at the boundary where they arise.
"""

from __future__ import annotations


class MesosDNSError(Exception):
    """Base of every error mesosdns raises on purpose."""


class ConfigError(MesosDNSError):
    """The configuration is invalid; ``problems`` lists every ``key: reason``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class StateError(MesosDNSError):
    """A Mesos state document could not be used (not JSON, not an object, no leader)."""

    kind = "invalid_state"


class FetchError(MesosDNSError):
    """The state could not be fetched from any master.

    ``kind`` names what went wrong (``unreachable``, ``timeout``, ``http_5xx``,
    ``invalid_json``, ``no_leader``, ...; several joined by ``+`` when the
    masters failed differently), for metrics and once-per-kind logging.
    """

    def __init__(self, message: str, kind: str = "fetch") -> None:
        super().__init__(message)
        self.kind = kind


class IAMLoginError(MesosDNSError):
    """Logging in to the DC/OS IAM failed; ``transient`` when a retry may help
    (transport errors, timeouts, 5xx). The message never carries a secret."""

    kind = "iam_login"

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class ZoneError(MesosDNSError):
    """An operator zone is invalid."""
