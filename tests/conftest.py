"""Shared test helpers: system tools and free ports.

``require_tool`` is both a plain function (``from conftest import require_tool``)
and a fixture of the same name that hands out that function.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest
from ports import free_port as find_free_port

EXTRA_TOOL_DIRS = ("/usr/sbin", "/sbin", "/usr/share/zookeeper/bin")


def in_ci() -> bool:
    """Whether we run in CI, where a missing tool is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def require_tool(name: str) -> str:
    """The absolute path of system tool ``name``; skip the test when it is
    missing (fail in CI, where ``scripts/test.sh`` should have installed it)."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *EXTRA_TOOL_DIRS])
    found = shutil.which(name, path=search)
    if found:
        return os.path.abspath(found)
    message = f"system tool {name!r} not found on PATH or in {', '.join(EXTRA_TOOL_DIRS)}"
    if in_ci():
        pytest.fail(f"{message}; scripts/test.sh should have installed it")
    pytest.skip(message)


@pytest.fixture(name="require_tool")
def _require_tool_fixture() -> Callable[[str], str]:
    return require_tool


@pytest.fixture
def free_port() -> int:
    """A TCP+UDP port free on 127.0.0.1."""
    return find_free_port()
