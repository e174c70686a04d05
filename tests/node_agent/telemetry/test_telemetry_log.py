"""TelemetryLog: bounded ring buffer, sequence semantics, thread and asyncio waiters."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from node_agent.telemetry.log import TelemetryLog


def fill(log, fakes, n):
    return [log.append(fakes.reading(float(i), power_w=float(i)), process_rss_bytes=i) for i in range(n)]


def test_sequence_numbers_start_at_one_and_are_consecutive(fakes):
    log = TelemetryLog(capacity=5)
    assert log.latest_seq == 0 and log.latest() is None
    samples = fill(log, fakes, 3)
    assert [s.seq for s in samples] == [1, 2, 3]
    got = log.read_from(1, 10)
    assert [s.seq for s in got.samples] == [1, 2, 3] and got.next_seq == 4 and got.oldest_available_seq == 1
    assert got.samples[1].reading.power_w == 1.0 and got.samples[1].process_rss_bytes == 1


def test_bounded_and_dropped_seqs_are_reported(fakes):
    log = TelemetryLog(capacity=4)
    fill(log, fakes, 10)  # seqs 1..10, only 7..10 kept
    assert log.oldest_seq == 7 and log.dropped_total == 6 and log.latest_seq == 10
    got = log.read_from(3, 100)
    assert [s.seq for s in got.samples] == [7, 8, 9, 10]
    assert got.oldest_available_seq == 7
    assert got.missed(3) == 4  # 3, 4, 5, 6 are gone and the client can tell
    assert got.next_seq == got.samples[-1].seq + 1 == 11
    page = log.read_from(3, 2)
    assert [s.seq for s in page.samples] == [7, 8] and page.next_seq == 9 and page.missed(3) == 4
    assert [s.reading.power_w for s in page.samples] == [6.0, 7.0]
    assert log.read_from(8, 100).missed(8) == 0


def test_max_n_paging_and_future_seq(fakes):
    log = TelemetryLog(capacity=100)
    fill(log, fakes, 10)
    page = log.read_from(2, 3)
    assert [s.seq for s in page.samples] == [2, 3, 4] and page.next_seq == 5
    assert [s.seq for s in log.read_from(page.next_seq, 3).samples] == [5, 6, 7]
    tail = log.read_from(11, 5)
    assert tail.samples == [] and tail.next_seq == 11
    stale = log.read_from(500, 5)  # a client of an earlier agent process
    assert stale.samples == [] and stale.next_seq == 11
    with pytest.raises(ValueError, match="seq"):
        log.read_from(0, 5)
    with pytest.raises(ValueError, match="max_n"):
        log.read_from(1, 0)
    with pytest.raises(ValueError, match="capacity"):
        TelemetryLog(capacity=0)


def test_concurrent_appends_never_repeat_a_seq(fakes):
    log = TelemetryLog(capacity=10_000)
    r = fakes.reading(0.0)

    def worker():
        for _ in range(1000):
            log.append(r)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = log.read_from(1, 10_000)
    assert [s.seq for s in got.samples] == list(range(1, 4001))


def test_async_waiter_is_woken_by_append_from_another_thread(fakes):
    log = TelemetryLog()
    fill(log, fakes, 2)

    async def main():
        assert await log.wait_beyond(1, timeout_s=0.0)  # already there: immediate
        timer = threading.Timer(0.05, lambda: log.append(fakes.reading(9.0)))
        t0 = time.monotonic()
        timer.start()
        woke = await log.wait_beyond(2, timeout_s=5.0)
        return woke, time.monotonic() - t0

    woke, waited_s = asyncio.run(main())
    assert woke and 0.04 <= waited_s < 1.0
    assert log.n_waiters == 0


def test_async_waiter_times_out_and_is_unregistered(fakes):
    log = TelemetryLog()

    async def main():
        t0 = time.monotonic()
        woke = await log.wait_beyond(0, timeout_s=0.1)
        return woke, time.monotonic() - t0

    woke, waited_s = asyncio.run(main())
    assert not woke and waited_s >= 0.09
    assert log.n_waiters == 0
    log.append(fakes.reading(0.0))  # no stale waiter to wake, and no error


def test_waiters_on_several_loops_all_wake(fakes):
    log = TelemetryLog()
    results: list[bool] = []
    registered = threading.Barrier(4)

    def loop_thread():
        async def wait_two():
            return await asyncio.gather(log.wait_beyond(0, 5.0), log.wait_beyond(0, 5.0))

        async def main():
            task = asyncio.ensure_future(wait_two())
            await asyncio.sleep(0.01)  # let both register
            await asyncio.get_running_loop().run_in_executor(None, registered.wait)
            return await task

        results.extend(asyncio.run(main()))

    threads = [threading.Thread(target=loop_thread) for _ in range(3)]
    for t in threads:
        t.start()
    registered.wait(timeout=5)
    assert log.n_waiters == 6
    log.append(fakes.reading(0.0))
    for t in threads:
        t.join(timeout=5)
    assert results == [True] * 6 and log.n_waiters == 0


def test_blocking_waiter(fakes):
    log = TelemetryLog()
    threading.Timer(0.05, lambda: log.append(fakes.reading(0.0))).start()
    assert log.wait_beyond_blocking(0, timeout_s=5.0)
    assert not log.wait_beyond_blocking(1, timeout_s=0.05)
