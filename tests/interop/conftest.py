"""Fixtures for the interop tests: our echo handler and the Node ``ws`` peers.

The Node peers live in ``tests/interop/node/``; ``./scripts/test`` installs their
dependencies. Each peer is a child process that talks JSON lines on stdout; every
process a test starts is terminated and awaited before the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).parent / "node"
TIMEOUT = 10.0


def node_missing() -> str | None:
    """Return why the Node peers cannot run, or ``None`` if they can."""
    if shutil.which("node") is None:
        return "node is not installed (./scripts/test needs Node 20)"
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        return "tests/interop/node/node_modules/ws is missing (run ./scripts/test)"
    return None


# ---------------------------------------------------------------------------
# Our side: an echo handler that records what it saw.


@dataclass
class Ended:
    """How a connection handled by :class:`EchoHandler` ended, seen from our side."""

    close_code: int | None
    close_reason: str | None
    error: BaseException  # what recv() raises once the connection is closed


@dataclass
class EchoHandler:
    """A ``fullduplex.serve`` handler: echoes every message with its type.

    Text commands, mirroring ``node/echo_server.js``:

    * ``please-close:CODE:REASON``: close the connection with CODE and REASON.
    * ``please-ping:DATA``: ping the client with DATA, wait for the pong, then echo the
      command (so a client that waits for its echo knows the pong arrived).

    Every connection is put on ``connections`` when the handler starts, and an
    :class:`Ended` on ``ended`` when it finishes.
    """

    connections: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    ended: asyncio.Queue[Ended] = field(default_factory=asyncio.Queue)
    latencies: list[float] = field(default_factory=list)

    async def __call__(self, conn: Any) -> None:
        import fullduplex

        self.connections.put_nowait(conn)
        try:
            async for message in conn:
                if isinstance(message, str) and message.startswith("please-close:"):
                    _, code, reason = message.split(":", 2)
                    await conn.close(int(code), reason)
                elif isinstance(message, str) and message.startswith("please-ping:"):
                    data = message.removeprefix("please-ping:").encode()
                    self.latencies.append(await conn.ping(data))
                    await conn.send(message)
                else:
                    await conn.send(message)
        except fullduplex.ConnectionClosed:
            pass
        finally:
            await conn.wait_closed()
            try:
                await conn.recv()
            except fullduplex.ConnectionClosed as exc:
                error: BaseException = exc
            else:  # pragma: no cover - recv() after the close must raise
                error = AssertionError("recv() returned after the connection closed")
            self.ended.put_nowait(Ended(conn.close_code, conn.close_reason, error))

    async def next_connection(self) -> Any:
        return await asyncio.wait_for(self.connections.get(), TIMEOUT)

    async def next_ended(self) -> Ended:
        return await asyncio.wait_for(self.ended.get(), TIMEOUT)


@pytest.fixture
def echo_handler() -> EchoHandler:
    return EchoHandler()


def _header_values(headers: Any, name: str) -> list[str]:
    """All values of header ``name`` in ``headers`` (a mapping or a list of pairs)."""
    items = headers.items() if hasattr(headers, "items") else headers
    return [value for key, value in items if key.lower() == name.lower()]


@pytest.fixture
def header_values() -> Any:
    """``header_values(headers, name)``: every value of a header, any case, any container."""
    return _header_values


# ---------------------------------------------------------------------------
# The Node ws peers.


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Terminate ``proc`` if it still runs, and reap it."""
    if proc.stdin is not None and not proc.stdin.is_closing():
        proc.stdin.close()
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _stderr(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    try:
        data = await asyncio.wait_for(proc.stderr.read(), 5)
    except asyncio.TimeoutError:
        return "<stderr not available>"
    return data.decode(errors="replace")


class NodeEchoServer:
    """A running ``node/echo_server.js``; ``events`` holds every JSON line it printed."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/"
        self.events: list[dict[str, Any]] = []

    async def next_event(self, name: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Read lines until an event called ``name``; every line lands in ``events``."""
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                raise AssertionError(f"echo_server.js exited before a {name!r} event")
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == name:
                return event


@dataclass
class ClientRun:
    """What ``node/client.js`` reported."""

    report: dict[str, Any]
    returncode: int
    stderr: str


class NodePeers:
    """Starts the Node ``ws`` peers as child processes."""

    @contextlib.asynccontextmanager
    async def echo_server(self, *args: str) -> AsyncIterator[NodeEchoServer]:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_DIR / "echo_server.js"),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
            if not line:
                raise AssertionError(f"echo_server.js did not start: {await _stderr(proc)}")
            event = json.loads(line)
            assert event["event"] == "listening", event
            server = NodeEchoServer(proc, int(event["port"]))
            server.events.append(event)
            yield server
        finally:
            await _stop(proc)

    async def run_client(
        self, url: str, scenario: dict[str, Any], timeout: float = TIMEOUT
    ) -> ClientRun:
        """Run ``node/client.js`` with ``scenario`` against ``url`` and return its report."""
        scenario = {"timeout": int(timeout * 1000), **scenario}
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_DIR / "client.js"),
            url,
            json.dumps(scenario),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            # client.js gives up by itself after `timeout`; allow for start-up on top.
            line = await asyncio.wait_for(proc.stdout.readline(), timeout + 5)
            returncode = await asyncio.wait_for(proc.wait(), 5)
            stderr = await _stderr(proc)
            if not line:
                raise AssertionError(f"client.js printed no report: {stderr}")
            return ClientRun(json.loads(line), returncode, stderr)
        finally:
            await _stop(proc)


@pytest.fixture
def node() -> NodePeers:
    reason = node_missing()
    if reason is not None:
        pytest.skip(reason)
    return NodePeers()
