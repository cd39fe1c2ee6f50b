"""The HTTP bodies as files: written whole, mapped by the replica, pruned; a
body file that cannot be opened keeps the last body; the body thread waits
while a refresh runs."""

from __future__ import annotations

import asyncio
import os
import threading
import tracemalloc
from pathlib import Path

import pytest

from mesosdns.builder.poll import Poller, Source
from mesosdns.metrics import RefreshStats
from mesosdns.records.bodies import CHECK_EVERY, EnumerateWriter
from mesosdns.records.generator import GeneratorParams
from mesosdns.records.model import EnumFramework, EnumRecord, EnumTask
from mesosdns.store.bodyfiles import KEEP_FILES, BodyFile, BodyFiles, open_body
from mesosdns.store.replica import Replica


def test_written_whole_mapped_and_pruned(tmp_path: Path) -> None:
    d = tmp_path / "bodies"
    d.mkdir()
    (d / "enumerate-1-0.json").write_bytes(b"left by an earlier builder")
    files = BodyFiles(str(d))
    assert os.listdir(d) == []
    refs = [files.write("enumerate", [b"{", memoryview(b'"n": %d' % i), b"}"])
            for i in range(4)]
    axfr = files.write("axfr", [b"[]"])
    for i, ref in enumerate(refs):
        assert ref.size == len(b'{"n": %d}' % i)
    kept = sorted(os.listdir(d))
    assert kept == sorted([os.path.basename(r.path) for r in refs[-KEEP_FILES:]]
                          + [os.path.basename(axfr.path)])
    assert bytes(open_body(refs[-1])) == b'{"n": 3}'
    assert open_body(files.write("axfr", [])) == b""
    with pytest.raises(OSError):
        open_body(refs[0])


def test_a_mapping_outlives_the_file(tmp_path: Path) -> None:
    files = BodyFiles(str(tmp_path))
    first = files.write("axfr", [b"first body"])
    mapped = open_body(first)
    for i in range(KEEP_FILES):  # the first file is removed
        files.write("axfr", [b"later %d" % i])
    assert not os.path.exists(first.path)
    assert bytes(mapped) == b"first body"


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    files = BodyFiles(str(tmp_path))
    kept = files.write("axfr", [b"kept"])

    def pieces() -> list[bytes]:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        files.write("axfr", pieces())
    assert os.listdir(tmp_path) == [os.path.basename(kept.path)]


def test_the_replica_maps_body_files_and_keeps_the_last_when_one_is_gone(
        tmp_path: Path) -> None:
    files = BodyFiles(str(tmp_path))
    replica = Replica()
    one = files.write("enumerate", [b'{"frameworks": null}'])
    replica.bodies = replica._bodies({"enumerate": one, "axfr": b"inline"})
    assert bytes(replica.bodies["enumerate"]) == b'{"frameworks": null}'
    assert replica.bodies["axfr"] == b"inline"
    gone = BodyFile(str(tmp_path / "never-written.json"), 10)
    replica.bodies = replica._bodies({"enumerate": gone, "axfr": b"inline 2"})
    assert bytes(replica.bodies["enumerate"]) == b'{"frameworks": null}'
    assert replica.bodies["axfr"] == b"inline 2"


def test_the_enumerate_writer_calls_its_checkpoint() -> None:
    calls: list[int] = []
    tasks = tuple(EnumTask(f"t{i}", f"t{i}.1", (EnumRecord(f"t{i}.m.mesos.", "10.0.0.1", "A"),))
                  for i in range(3 * CHECK_EVERY + 1))
    list(EnumerateWriter().pieces([EnumFramework("m", tasks)], lambda: calls.append(1)))
    assert len(calls) == 3


def test_a_body_goes_to_its_file_without_being_held(tmp_path: Path) -> None:
    """The pieces are made as the file takes them: writing a body of some
    MB, and the next one from the first's file, allocates a small part of it."""
    tasks = tuple(
        EnumTask(f"task-{i}", f"task-{i}.{'0' * 40}", tuple(
            EnumRecord(f"_task-{i}._tcp.m.slave.mesos.{j}", f"10.0.{i % 250}.{j}", "A")
            for j in range(8)))
        for i in range(8000))
    files, writer = BodyFiles(str(tmp_path)), EnumerateWriter()
    fws = [EnumFramework("m", tasks)]
    peaks = []
    for _ in range(2):
        tracemalloc.start()
        ref = files.write("enumerate", writer.pieces(fws))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        writer.wrote(open_body(ref))
    assert ref.size > 8_000_000
    assert bytes(open_body(ref)) == EnumerateWriter().write(fws)
    # holding the body would take its size at least; what is allocated is the
    # file's 1 MiB buffer and the tasks' spans (the second body copies the
    # pieces from the first's file)
    assert peaks[0] < ref.size / 2 and peaks[1] < ref.size / 2, (peaks, ref.size)


def test_a_refresh_clears_the_idle_gate_while_it_runs(tmp_path: Path) -> None:
    """The body thread's checkpoint waits on ``poller.idle``: clear from the
    start of a refresh to its end (a failed one included), set after."""
    state = tmp_path / "state.json"
    state.write_text('{"frameworks": [], "slaves": [], "leader": "master@10.0.0.1:5050"}')
    seen: list[bool] = []

    async def go() -> None:
        poller = Poller(Source(state_file=str(state)), GeneratorParams(), RefreshStats(),
                        refresh_seconds=60, compilers=lambda: None,  # type: ignore[arg-type,return-value]
                        sink=lambda u: None)
        waiter_done = threading.Event()

        def body_thread() -> None:
            poller.idle.wait()
            seen.append(poller.idle.is_set())
            waiter_done.set()

        real_fetch = poller._fetch

        async def fetch(masters: object) -> object:
            seen.append(poller.idle.is_set())
            threading.Thread(target=body_thread).start()
            await asyncio.sleep(0.05)
            assert not waiter_done.is_set()  # waits while the refresh runs
            return await real_fetch(masters)  # type: ignore[arg-type]

        poller._fetch = fetch  # type: ignore[assignment,method-assign]
        await poller.refresh()  # fails later (no compilers): the gate opens anyway
        assert poller.idle.is_set()
        await asyncio.to_thread(waiter_done.wait, 5)

    asyncio.run(go())
    assert seen == [False, True]
