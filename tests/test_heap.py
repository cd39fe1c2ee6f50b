"""The heap's free pages go back to the system."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
from mesosdns import heap

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

base = rss_mib()
# 200 MiB in blocks too large for Python's own allocator (malloc's heap),
# every 64th kept: the heap's top stays in use, so malloc keeps the rest
blocks = [bytes(4000) + bytes([i % 256]) for i in range(50_000)]
kept = blocks[::64]
del blocks
before = rss_mib()
heap.trim()
after = rss_mib()
print(round(base), round(before), round(after), len(kept))
"""


def test_trim_gives_the_freed_pages_back() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    base, before, after = (float(x) for x in out[:3])
    assert before - base > 150, out  # freed, but still held by the process
    assert after - base < 60, out  # given back
