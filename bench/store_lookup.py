"""Benchmark: one look-up in a per-process dict against one in LMDB.

The serving processes look every query's key up in the compiled table. This
measures the two candidate stores the same way: 400,000 keys shaped like the
hot table's (counts, a 30-byte name, type, class), 120-byte values, 200,000
random look-ups in a Python loop (loop overhead included, the same for both),
median of 5. LMDB through py-lmdb, one read transaction held open (as a
server would renew it per version).

py-lmdb is not a dependency of mesosdns: install it next to the benchmark
(``pip install lmdb``) to run this.

    taskset -c 0 python bench/store_lookup.py
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable


def per_lookup_us(get: Callable[[bytes], object], probe: list[bytes]) -> float:
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        for k in probe:
            get(k)
        runs.append((time.perf_counter() - t) / len(probe) * 1e6)
    return statistics.median(runs)


def main() -> int:
    try:
        import lmdb
    except ImportError:
        print("py-lmdb is not installed: pip install lmdb", file=sys.stderr)
        return 1
    rng = random.Random(0)
    keys = [b"\x00\x01" + b"\x00" * 6 + rng.randbytes(30) + b"\x00\x01\x00\x01"
            for _ in range(400_000)]
    value = rng.randbytes(120)
    table = {k: (None, value) for k in keys}
    with tempfile.TemporaryDirectory() as path:
        env = lmdb.open(path, map_size=1 << 30)
        with env.begin(write=True) as txn:
            for k in keys:
                txn.put(k, value)
        reader = env.begin()
        probe = [rng.choice(keys) for _ in range(200_000)]
        d = per_lookup_us(table.get, probe)
        m = per_lookup_us(reader.get, probe)
        reader.abort()
        env.close()
    print(f"dict.get {d:.2f} us, lmdb get {m:.2f} us per look-up ({m / d:.1f}x)")
    print("reproduce: taskset -c 0 python bench/store_lookup.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
