"""The prebuilt HTTP bodies as files of the run directory.

The builder writes each ``/v1/enumerate`` and ``/v1/axfr`` body to a file of
its own (a new name per body, renamed into place whole) and publishes only
the file's name and size. A serving process maps the file when it applies
the version: nothing of it is in the process's memory until the body is
asked for, the pages are the kernel's one copy for every process, and no
frame carries megabytes that each worker would read, decode and copy. A file
is removed when two newer bodies of its kind exist; a process that mapped it
keeps its mapping (the kernel frees the file when the last mapping goes).
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

# files kept per body: the newest, and the one before for a server that has
# not applied the newest yet
KEEP_FILES = 2
SUFFIX = ".json"


@dataclass(frozen=True, slots=True)
class BodyFile:
    """A body the builder wrote: where, and how many bytes."""

    path: str
    size: int


Body = bytes | memoryview


def open_body(ref: BodyFile) -> Body:
    """The body's bytes, mapped read-only (OSError: the file is gone)."""
    if ref.size == 0:
        return b""
    with open(ref.path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), ref.size, access=mmap.ACCESS_READ)
    # a view keeps the mapping alive for as long as a response still sends it
    return memoryview(mapped)


@dataclass
class BodyFiles:
    """Writes the bodies into ``directory`` (made, and emptied of an earlier
    builder's files, on creation)."""

    directory: str
    _written: dict[str, deque[str]] = field(default_factory=dict)
    _count: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        for name in os.listdir(self.directory):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, name))

    def write(self, key: str, pieces: Iterable[bytes | memoryview]) -> BodyFile:
        """A new file of body ``key`` (OSError: nothing written, nothing removed)."""
        path = os.path.join(self.directory, f"{key}-{os.getpid()}-{next(self._count)}{SUFFIX}")
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb", buffering=1 << 20) as f:
                size = sum(f.write(p) for p in pieces)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        written = self._written.setdefault(key, deque())
        written.append(path)
        while len(written) > KEEP_FILES:
            with contextlib.suppress(OSError):
                os.unlink(written.popleft())
        return BodyFile(path, size)
