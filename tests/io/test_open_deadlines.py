"""The shared opening-handshake timer of a server (``OpenDeadlines``)."""

from __future__ import annotations

import asyncio

import pytest

from fullduplex.io.protocol import OpenDeadlines

TIMEOUT = 5.0


class Handshaking:
    """Stands in for a connection in its opening handshake: records its timeout."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.began = loop.time()
        self.timed_out: asyncio.Future[float] = loop.create_future()
        self.bucket: set[object] | None = None

    def _open_timed_out(self) -> None:
        self.timed_out.set_result(self.loop.time())

    def finish(self) -> None:
        assert self.bucket is not None
        self.bucket.discard(self)


def start(deadlines: OpenDeadlines, loop: asyncio.AbstractEventLoop) -> Handshaking:
    conn = Handshaking(loop)
    conn.bucket = deadlines.add(conn)  # type: ignore[arg-type]
    return conn


async def test_a_handshake_times_out_within_timeout_and_granularity() -> None:
    loop = asyncio.get_running_loop()
    deadlines = OpenDeadlines(loop, 0.2, granularity=0.05)
    conns = [start(deadlines, loop) for _ in range(3)]
    for conn in conns:
        fired = await asyncio.wait_for(conn.timed_out, TIMEOUT)
        waited = fired - conn.began
        # The loop's clock may fire a timer up to its resolution early.
        assert 0.2 - 0.01 <= waited


async def test_finished_handshakes_do_not_time_out() -> None:
    loop = asyncio.get_running_loop()
    deadlines = OpenDeadlines(loop, 0.1, granularity=0.02)
    done = start(deadlines, loop)
    slow = start(deadlines, loop)
    done.finish()
    await asyncio.wait_for(slow.timed_out, TIMEOUT)
    assert not done.timed_out.done()


async def test_later_buckets_keep_the_timer_going() -> None:
    loop = asyncio.get_running_loop()
    deadlines = OpenDeadlines(loop, 0.1, granularity=0.02)
    first = start(deadlines, loop)
    await asyncio.wait_for(first.timed_out, TIMEOUT)
    # A connection arriving after the first bucket expired gets a timer again.
    second = start(deadlines, loop)
    fired = await asyncio.wait_for(second.timed_out, TIMEOUT)
    assert fired - second.began >= 0.1 - 0.01


async def test_connections_in_one_window_share_a_bucket() -> None:
    loop = asyncio.get_running_loop()
    deadlines = OpenDeadlines(loop, 60.0, granularity=30.0)
    a = start(deadlines, loop)
    b = start(deadlines, loop)
    assert a.bucket is b.bucket and a.bucket == {a, b}
    deadlines.close()


async def test_close_stops_the_timer() -> None:
    loop = asyncio.get_running_loop()
    deadlines = OpenDeadlines(loop, 0.05, granularity=0.01)
    cancelled = start(deadlines, loop)
    deadlines.close()
    # A later connection proves the loop went past the first deadline.
    later = OpenDeadlines(loop, 0.1, granularity=0.01)
    witness = start(later, loop)
    await asyncio.wait_for(witness.timed_out, TIMEOUT)
    assert not cancelled.timed_out.done()


@pytest.mark.parametrize("timeout", [0.0, 0.5, 10.0, 100.0])
def test_default_granularity_is_a_tenth_at_most_one_second(timeout: float) -> None:
    loop = asyncio.new_event_loop()
    try:
        assert OpenDeadlines(loop, timeout).granularity == min(1.0, timeout / 10)
    finally:
        loop.close()
