"""Small process helpers shared by the supervisor and its children."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies, so that
    no child of a killed supervisor lives on; exit now if it already died."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the supervisor still stops its children
        log.debug("PR_SET_PDEATHSIG unavailable")
    if os.getppid() != parent:
        os._exit(0)


def orphaned(parent: int, run_dir: str) -> None:
    """When the supervisor died without cleaning up (SIGKILL), its children
    remove the run directory on their way out."""
    if os.getppid() != parent:
        shutil.rmtree(run_dir, ignore_errors=True)


def lower_priority(step: int) -> None:
    """Run at a lower CPU priority than the serving processes."""
    try:
        os.nice(step)
    except OSError:
        log.debug("could not lower the CPU priority")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result
