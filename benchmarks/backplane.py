"""Cross-node fan-out through each backplane: throughput and latency, in one run.

::

    python benchmarks/backplane.py [--messages 20000] [--size 100] [--latency 2000]

Three nodes (three backplane instances, each with its own connections) share one
bus: node A publishes on a channel, nodes B and C are subscribed to it, so every
message crosses the bus and is delivered twice. The Redis and NATS servers are
started on free loopback ports for the run (``redis-server`` without persistence,
``nats-server -js``); a backplane whose server or client library is missing is
skipped. The in-memory backplane (nodes sharing a hub in one process) is the
baseline: it shows the cost of the bus itself.

Measured:

- *awaited*: one publisher awaiting each ``publish`` (the chat's pattern: a
  connection's messages keep their order), messages/s until B and C have them all.
- *64 in flight*: 64 publications outstanding at a time (many connections).
- *latency*: one message at a time, publish to arrival at B, p50 and p99.

All nodes share one process and event loop here, so the figures include the
subscribers' work. Shared machines are noisy: compare rows of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fullduplex.pubsub import Backplane, MemoryBackplane, MemoryHub, MemoryRoomStore


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(command: Callable[[int, Path], list[str]]) -> Any:
    """Run a bus server on a free port in a temp dir; yield the port."""
    with tempfile.TemporaryDirectory(prefix="fullduplex-bench-") as tmp:
        port = _free_port()
        process = subprocess.Popen(
            command(port, Path(tmp)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command(port, Path(tmp))[0]} did not start")
                time.sleep(0.01)
            yield port
        finally:
            process.terminate()
            process.wait(10)


class _Counter:
    """A subscription callback counting arrivals and waking a waiter at a target."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = asyncio.Event()
        self.arrivals: list[int] = []
        self.record = False

    def __call__(self, channel: str, data: bytes) -> None:
        self.count += 1
        if self.record:
            self.arrivals.append(time.perf_counter_ns() - int(data[:20]))
        if self.count >= self.target:
            self.done.set()

    def expect(self, total: int) -> None:
        self.target = total
        if self.count >= total:
            self.done.set()
        else:
            self.done.clear()


async def _measure(
    nodes: list[Backplane], messages: int, size: int, samples: int
) -> dict[str, float]:
    publisher, *subscribers = nodes
    counters = [_Counter() for _ in subscribers]
    for node, counter in zip(subscribers, counters, strict=True):
        await node.subscribe("bench", counter)
    payload = b"x" * size
    total = 0

    async def run(burst: Callable[[], Any], count: int) -> float:
        nonlocal total
        total += count
        for counter in counters:
            counter.expect(total)
        start = time.perf_counter()
        await burst()
        await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in counters)), 120)
        return count / (time.perf_counter() - start)

    async def awaited() -> None:
        for _ in range(messages):
            await publisher.publish("bench", payload)

    async def in_flight() -> None:
        window = 64
        for first in range(0, messages, window):
            batch = min(window, messages - first)
            await asyncio.gather(*(publisher.publish("bench", payload) for _ in range(batch)))

    await run(awaited, min(1000, messages))  # warm-up
    result = {"awaited": await run(awaited, messages), "in_flight": await run(in_flight, messages)}

    for counter in counters:
        counter.record = True
    for _ in range(samples):
        total += 1
        for counter in counters:
            counter.expect(total)
        stamp = str(time.perf_counter_ns()).encode().rjust(20, b"0")
        await publisher.publish("bench", stamp + payload[20:])
        await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in counters)), 10)
    latencies = sorted(counters[0].arrivals)
    result["p50"] = statistics.median(latencies) / 1000
    result["p99"] = latencies[int(len(latencies) * 0.99) - 1] / 1000
    return result


@contextlib.asynccontextmanager
async def _memory() -> AsyncIterator[list[Backplane]]:
    hub, store = MemoryHub(), MemoryRoomStore()
    yield [MemoryBackplane(hub=hub, store=store) for _ in range(3)]


@contextlib.asynccontextmanager
async def _shared(make: Callable[[], Backplane]) -> AsyncIterator[list[Backplane]]:
    nodes = [make() for _ in range(3)]
    try:
        for node in nodes:
            await node.start()
        yield nodes
    finally:
        for node in nodes:
            await node.close()


async def _bench(args: argparse.Namespace) -> list[tuple[str, dict[str, float] | str]]:
    rows: list[tuple[str, dict[str, float] | str]] = []
    async with _memory() as nodes:
        rows.append(("memory", await _measure(nodes, args.messages, args.size, args.latency)))

    redis = shutil.which("redis-server")
    try:
        from fullduplex.pubsub.redis import RedisBackplane
    except ImportError:
        rows.append(("redis", "skipped: redis-py not installed"))
    else:
        if redis is None:
            rows.append(("redis", "skipped: redis-server not installed"))
        else:
            command = lambda port, tmp: [  # noqa: E731
                redis, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
                "--save", "", "--appendonly", "no",
            ]  # fmt: skip
            with _server(command) as port:
                url = f"redis://127.0.0.1:{port}/0"
                async with _shared(lambda: RedisBackplane(url)) as nodes:
                    rows.append(
                        ("redis", await _measure(nodes, args.messages, args.size, args.latency))
                    )

    nats = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")
    try:
        from fullduplex.pubsub.nats import NatsBackplane
    except ImportError:
        rows.append(("nats", "skipped: nats-py not installed"))
    else:
        if nats is None:
            rows.append(("nats", "skipped: nats-server not installed"))
        else:
            command = lambda port, tmp: [  # noqa: E731
                nats, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp),
            ]  # fmt: skip
            with _server(command) as port:
                url = f"nats://127.0.0.1:{port}"
                async with _shared(lambda: NatsBackplane(url)) as nodes:
                    rows.append(
                        ("nats", await _measure(nodes, args.messages, args.size, args.latency))
                    )
    return rows


def _table(rows: list[tuple[str, dict[str, float] | str]], args: argparse.Namespace) -> str:
    lines = [
        f"Fan-out A → B, C; {args.messages} messages of {args.size} B; "
        f"latency over {args.latency} messages one at a time.",
        "",
        "| backplane | awaited (msg/s) | 64 in flight (msg/s) "
        "| p50 latency (µs) | p99 latency (µs) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, result in rows:
        if isinstance(result, str):
            lines.append(f"| {name} | {result} | | | |")
        else:
            lines.append(
                f"| {name} | {result['awaited']:,.0f} | {result['in_flight']:,.0f} "
                f"| {result['p50']:,.0f} | {result['p99']:,.0f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="per throughput run")
    parser.add_argument("--size", type=int, default=100, help="payload bytes (>= 20)")
    parser.add_argument("--latency", type=int, default=2_000, help="latency samples")
    args = parser.parse_args(argv)
    args.size = max(args.size, 20)
    rows = asyncio.run(_bench(args))
    print(_table(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
