"""The load generator: a lean WebSocket client on raw ``asyncio.Protocol`` (uvloop if present).

It does what a fast client must and nothing more: frames are masked and encoded once
before a run and the same bytes are written again and again; replies are parsed only
far enough to find where each frame ends (headers are read, payloads are skipped,
never copied or unmasked). Subscribers of a broadcast do not even parse: they count
bytes. The handshake checks only the ``101`` status line.

Every measurement is by time, not by count: a warm-up, then a window during which
completed round trips (or handshakes, or deliveries) are counted, so a cell takes the
same time whatever the server's speed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
MASK = b"\x37\xfa\x21\x3d"
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="

perf_counter = time.perf_counter


def mask(payload: bytes, key: bytes = MASK) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` (RFC 6455 §5.3)."""
    n = len(payload)
    if not n:
        return b""
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keys, "little")).to_bytes(
        n, "little"
    )


def client_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One final, masked client frame carrying ``payload``."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + MASK + mask(payload)


def payload_of(size: int) -> bytes:
    return os.urandom(size)


CLOSE_FRAME = client_frame((1000).to_bytes(2, "big"), opcode=0x8)


def request(path: str, port: int) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: "
        f"{KEY.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class HandshakeFailed(ConnectionError):
    pass


class Client(asyncio.Protocol):
    """Handshake, then find frame boundaries; subclasses decide what to do with frames."""

    def __init__(self, loop: asyncio.AbstractEventLoop, req: bytes) -> None:
        self.loop = loop
        self.req = req
        self.transport: Any = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.is_open = False
        self.head = b""
        self.skip = 0  # bytes still to come of a frame whose header was read
        self.skip_op = 0
        self.carry = b""  # an incomplete frame header
        self.close_seen = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.req)

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_open = False
        if not self.opened.done():
            self.opened.set_exception(HandshakeFailed(f"connection lost in handshake: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.is_open:
            self.frames(data)
            return
        head = self.head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self.head = head
            return
        self.head = b""
        if not head.startswith(b"HTTP/1.1 101"):
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            if not self.opened.done():
                self.opened.set_exception(HandshakeFailed(f"handshake refused: {line}"))
            self.transport.abort()
            return
        self.is_open = True
        self.on_open()
        if not self.opened.done():
            self.opened.set_result(None)
        rest = head[end + 4 :]
        if rest:
            self.frames(rest)

    def on_open(self) -> None:
        pass

    def on_frames(self, count: int) -> None:
        pass

    def on_close_frame(self) -> None:
        self.close_seen = True

    def frames(self, data: bytes) -> None:
        n = len(data)
        pos = 0
        done = 0
        skip = self.skip
        if skip:
            if skip > n:
                self.skip = skip - n
                return
            pos = skip
            self.skip = 0
            if self.skip_op == 8:
                self.on_close_frame()
            elif self.skip_op < 8:
                done = 1
        if self.carry:
            data = self.carry + data[pos:]
            self.carry = b""
            n = len(data)
            pos = 0
        while pos < n:
            if n - pos < 2:
                self.carry = data[pos:]
                break
            b1 = data[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                hl = 2
            elif length == 126:
                hl = 4
                if pos + 4 > n:
                    self.carry = data[pos:]
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
            else:
                hl = 10
                if pos + 10 > n:
                    self.carry = data[pos:]
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            if b1 & 0x80:
                hl += 4
            end = pos + hl + length
            op = data[pos] & 0x0F
            if end > n:
                if pos + hl > n:
                    self.carry = data[pos:]
                else:
                    self.skip = end - n
                    self.skip_op = op
                break
            if op < 8:
                done += 1
            elif op == 8:
                self.on_close_frame()
            pos = end
        if done:
            self.on_frames(done)


class EchoClient(Client):
    """Keeps ``window`` messages in flight; records round-trip times when ``window`` is 1."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, req: bytes, frame: bytes, window: int
    ) -> None:
        super().__init__(loop, req)
        self.frame = frame
        self.window = window
        self.small = len(frame) <= 4096
        self.count = 0
        self.running = False
        self.latencies: list[float] = []
        self.t_sent = 0.0

    def go(self) -> None:
        self.running = True
        self.t_sent = perf_counter()
        if self.small:
            self.transport.write(self.frame * self.window)
        else:
            self.transport.writelines([self.frame] * self.window)

    def on_frames(self, count: int) -> None:
        self.count += count
        if self.window == 1:
            now = perf_counter()
            self.latencies.append(now - self.t_sent)
            self.t_sent = now
        if self.running:
            if count == 1:
                self.transport.write(self.frame)
            elif self.small:
                self.transport.write(self.frame * count)
            else:
                self.transport.writelines([self.frame] * count)


class Subscriber(Client):
    """Counts the bytes of the frames it receives; all frames are the same size."""

    def __init__(self, loop: asyncio.AbstractEventLoop, req: bytes) -> None:
        super().__init__(loop, req)
        self.nbytes = 0
        self.frame_len = 0

    def frames(self, data: bytes) -> None:
        if not self.nbytes:
            self.frame_len = frame_length(data)
        self.nbytes += len(data)


def frame_length(data: bytes) -> int:
    """Length of the whole frame that ``data`` starts with (its first 10 bytes suffice)."""
    b1 = data[1]
    length = b1 & 0x7F
    head = 2
    if length == 126:
        length, head = int.from_bytes(data[2:4], "big"), 4
    elif length == 127:
        length, head = int.from_bytes(data[2:10], "big"), 10
    return head + (4 if b1 & 0x80 else 0) + length


class HandshakeClient(Client):
    """Opens, sends a close frame at once, and is done when the server drops TCP."""

    def on_open(self) -> None:
        self.transport.write(CLOSE_FRAME)


# ----------------------------------------------------------------- measurements


async def open_clients(
    factory: Callable[[], Client], n: int, port: int, concurrency: int = 128
) -> list[Client]:
    """Open ``n`` connections, at most ``concurrency`` handshakes at a time."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)

    async def one() -> Client:
        async with sem:
            _, proto = await loop.create_connection(factory, HOST, port)
            await proto.opened
            return proto

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    clients = [r for r in results if isinstance(r, Client)]
    errors = [r for r in results if not isinstance(r, Client)]
    if errors:
        for c in clients:
            c.transport.abort()
        raise RuntimeError(f"{len(errors)} of {n} connections failed: {errors[0]!r}")
    return clients


def abort_all(clients: list[Client]) -> None:
    for c in clients:
        if c.transport is not None:
            c.transport.abort()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def no_probe() -> float:
    return float("nan")


async def echo(
    port: int,
    size: int,
    conns: int,
    window: int,
    warmup: float,
    duration: float,
    cpu: Callable[[], float] = no_probe,
) -> dict[str, float]:
    """Round trips per second with ``conns`` connections × ``window`` messages in flight."""
    loop = asyncio.get_running_loop()
    frame = client_frame(payload_of(size))
    req = request("/", port)
    clients: list[Any] = await open_clients(
        lambda: EchoClient(loop, req, frame, window), conns, port
    )
    try:
        for c in clients:
            c.go()
        await asyncio.sleep(warmup)
        c0 = sum(c.count for c in clients)
        l0 = [len(c.latencies) for c in clients]
        t0, s0 = perf_counter(), cpu()
        await asyncio.sleep(duration)
        c1 = sum(c.count for c in clients)
        t1, s1 = perf_counter(), cpu()
        lat = sorted(x for c, i in zip(clients, l0, strict=True) for x in c.latencies[i:])
        for c in clients:
            c.running = False
        if not any(c.is_open for c in clients):
            raise RuntimeError("the server closed every connection")
    finally:
        abort_all(clients)
    rate = (c1 - c0) / (t1 - t0)
    result = {"value": rate, "mbps": rate * size / 1e6, "cpu_us": per_op(s1 - s0, c1 - c0)}
    if window == 1:
        result["p50_us"] = percentile(lat, 0.50) * 1e6
        result["p99_us"] = percentile(lat, 0.99) * 1e6
    return result


def per_op(cpu_seconds: float, ops: int) -> float:
    """Server CPU microseconds per operation (NaN when not measured)."""
    return cpu_seconds / ops * 1e6 if ops else float("nan")


HSLOAD_SOURCE = Path(__file__).with_name("hsload.c")
HSLOAD_BINARY = Path(__file__).with_name("build") / "hsload"


def hsload_binary() -> Path | None:
    """The C handshake client, compiled on first use; ``None`` without a C compiler.

    Opening a connection costs the Python client more CPU than it costs a fast
    server, so with it the handshake rate would measure the client; this client
    costs little beyond the kernel's own work.
    """
    binary = HSLOAD_BINARY
    if binary.exists() and binary.stat().st_mtime >= HSLOAD_SOURCE.stat().st_mtime:
        return binary
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None
    binary.parent.mkdir(exist_ok=True)
    tmp = binary.with_suffix(f".tmp{os.getpid()}")
    built = subprocess.run(
        [compiler, "-O2", "-Wall", "-o", str(tmp), str(HSLOAD_SOURCE)],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        raise RuntimeError(f"building {HSLOAD_SOURCE.name} failed:\n{built.stderr}")
    tmp.replace(binary)
    return binary


async def handshakes(
    port: int,
    concurrency: int,
    warmup: float,
    duration: float,
    cpu: Callable[[], float] = no_probe,
) -> dict[str, float]:
    """Fresh connections opened and closed (close handshake, TCP closed) per second."""
    binary = hsload_binary()
    if binary is not None:
        return await _handshakes_c(binary, port, concurrency, warmup, duration, cpu)
    return await _handshakes_py(port, concurrency, warmup, duration, cpu)


async def _handshakes_c(
    binary: Path,
    port: int,
    concurrency: int,
    warmup: float,
    duration: float,
    cpu: Callable[[], float],
) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        str(port),
        str(concurrency),
        str(warmup),
        str(duration),
        request("/hs", port).hex(),
        CLOSE_FRAME.hex(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        start = await asyncio.wait_for(proc.stdout.readline(), warmup + 30)
        s0 = cpu()
        end = await asyncio.wait_for(proc.stdout.readline(), duration + 30)
        s1 = cpu()
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if start != b"START\n" or not end.startswith(b"END "):
        error = (await proc.stderr.read()).decode(errors="replace").strip()
        raise RuntimeError(f"handshake client failed: {error or 'no output'}")
    done_s, seconds_s, bad_s = end.split()[1:4]
    done, seconds, bad = int(done_s), float(seconds_s), int(bad_s)
    if bad > done // 100:
        raise RuntimeError(f"{bad} connections closed without a close frame")
    return {"value": done / seconds, "cpu_us": per_op(s1 - s0, done)}


async def _handshakes_py(
    port: int,
    concurrency: int,
    warmup: float,
    duration: float,
    cpu: Callable[[], float],
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    req = request("/hs", port)
    state = {"done": 0, "bad": 0, "stop": False}
    live: set[Client] = set()

    async def worker() -> None:
        while not state["stop"]:
            _, proto = await loop.create_connection(lambda: HandshakeClient(loop, req), HOST, port)
            live.add(proto)
            await proto.lost
            live.discard(proto)
            if proto.close_seen:
                state["done"] += 1
            else:
                state["bad"] += 1

    tasks = [loop.create_task(worker()) for _ in range(concurrency)]
    try:
        await asyncio.sleep(warmup)
        d0, t0, s0 = state["done"], perf_counter(), cpu()
        await asyncio.sleep(duration)
        d1, t1, s1 = state["done"], perf_counter(), cpu()
        state["stop"] = True
        finished, _ = await asyncio.wait(tasks, timeout=5)
        for t in finished:
            if t.exception() is not None:
                raise RuntimeError(f"handshake failed: {t.exception()!r}")
    finally:
        for t in tasks:
            t.cancel()
        abort_all(list(live))
    if state["bad"] > state["done"] // 100:
        raise RuntimeError(f"{state['bad']} connections closed without a close frame")
    return {"value": (d1 - d0) / (t1 - t0), "cpu_us": per_op(s1 - s0, d1 - d0)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def memory(port: int, pid: int, counts: list[int]) -> dict[int, float]:
    """RSS growth of the server per idle open connection, in KiB, at each count."""
    loop = asyncio.get_running_loop()
    req = request("/", port)

    def factory() -> Client:
        return Client(loop, req)

    warm = await open_clients(factory, 50, port)
    abort_all(warm)
    await asyncio.sleep(0.3)
    base = rss_kib(pid)
    clients: list[Client] = []
    out: dict[int, float] = {}
    try:
        for n in counts:
            clients += await open_clients(factory, n - len(clients), port)
            await asyncio.sleep(0.3)
            out[n] = (rss_kib(pid) - base) / n
    finally:
        abort_all(clients)
        await asyncio.sleep(0.2)
    return out


async def broadcast(
    port: int,
    subscribers: int,
    size: int,
    window: int,
    warmup: float,
    duration: float,
    cpu: Callable[[], float] = no_probe,
) -> dict[str, float]:
    """Deliveries per second at ``subscribers`` connections of one publisher's messages."""
    loop = asyncio.get_running_loop()
    req = request("/bcast", port)
    subs: list[Any] = await open_clients(lambda: Subscriber(loop, req), subscribers, port)
    pub: Any = None
    try:
        frame = client_frame(payload_of(size))
        (pub,) = await open_clients(lambda: EchoClient(loop, req, frame, window), 1, port)
        await asyncio.sleep(0.1)  # let every server register the publisher
        pub.go()
        await asyncio.sleep(warmup)
        b0, t0, s0 = sum(s.nbytes for s in subs), perf_counter(), cpu()
        await asyncio.sleep(duration)
        b1, t1, s1 = sum(s.nbytes for s in subs), perf_counter(), cpu()
        pub.running = False
        if not pub.is_open:
            raise RuntimeError("the server closed the publisher")
    finally:
        abort_all(subs)
        if pub is not None:
            abort_all([pub])
    # Servers send unmasked frames; the raw ceiling forwards the client's masked ones.
    frame_len = max((s.frame_len for s in subs), default=0)
    if not frame_len:
        raise RuntimeError("no subscriber received anything")
    delivered = (b1 - b0) // frame_len
    return {"value": delivered / (t1 - t0), "cpu_us": per_op(s1 - s0, delivered)}
