"""The blocking client, ``fullduplex.sync``, against a real server on another thread."""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import fullduplex
from fullduplex.sync import ClientConnection, connect

TIMEOUT = 10.0


async def scripted(conn: Any) -> None:
    """Echo, plus a few commands the tests use."""
    async for message in conn:
        if isinstance(message, str) and message.startswith("please-close:"):
            _, code, reason = message.split(":", 2)
            await conn.close(int(code), reason)
            return
        if message == "please-drop":
            conn.protocol.abort()
            return
        if isinstance(message, str) and message.startswith("please-send:"):
            for index in range(int(message.split(":")[1])):
                await conn.send(f"m{index}")
            continue
        await conn.send(message)


class ThreadedServer:
    """``fullduplex.serve`` on its own event loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self.call(self._start())
        self.url = f"ws://127.0.0.1:{self.server.port}/"

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    async def _start(self) -> Any:
        return await fullduplex.serve(scripted, "127.0.0.1", 0)

    async def _stop(self) -> None:
        await self.server.close()

    def stop(self) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


@pytest.fixture
def server() -> Iterator[ThreadedServer]:
    srv = ThreadedServer()
    try:
        yield srv
    finally:
        srv.stop()


def sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fullduplex-sync"]


def test_echo_and_context_manager(server: ThreadedServer) -> None:
    with connect(server.url) as ws:
        assert isinstance(ws, ClientConnection)
        assert ws.state is fullduplex.State.OPEN
        ws.send("Hello WebSockets!")
        assert ws.recv(timeout=TIMEOUT) == "Hello WebSockets!"
        ws.send(b"\x00\xff")
        assert ws.recv(timeout=TIMEOUT) == b"\x00\xff"
        ws.send(["frag", "ments"])
        assert ws.recv(timeout=TIMEOUT) == "fragments"
        assert ws.ping(timeout=TIMEOUT) >= 0
        assert ws.close_code is None
        assert ws.response.status == 101
    assert ws.state is fullduplex.State.CLOSED
    assert (ws.close_code, ws.close_reason) == (1000, "")
    with pytest.raises(fullduplex.ConnectionClosedOK):
        ws.send("after close")
    with pytest.raises(fullduplex.ConnectionClosedOK):
        ws.recv()
    ws.close()  # harmless
    assert not ws._runner.thread.is_alive()


def test_recv_timeout_loses_nothing(server: ThreadedServer) -> None:
    with connect(server.url) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.05)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)
        ws.send("late")
        assert ws.recv(timeout=TIMEOUT) == "late"


def test_iteration_ends_on_a_normal_close(server: ThreadedServer) -> None:
    with connect(server.url) as ws:
        ws.send("please-send:3")
        ws.send("please-close:1000:done")
        assert list(ws) == ["m0", "m1", "m2"]
        assert (ws.close_code, ws.close_reason) == (1000, "done")


def test_iteration_raises_on_an_abnormal_close(server: ThreadedServer) -> None:
    with connect(server.url) as ws:
        ws.send("one")
        ws.send("please-drop")
        received = []
        with pytest.raises(fullduplex.ConnectionClosedError) as info:
            for message in ws:
                received.append(message)
        assert received == ["one"]
        assert info.value.code == 1006
        with pytest.raises(fullduplex.ConnectionClosedError):
            ws.send("x")


def test_server_close_code_and_reason(server: ThreadedServer) -> None:
    with connect(server.url) as ws:
        ws.send("please-close:4000:bye")
        with pytest.raises(fullduplex.ConnectionClosedError) as info:
            ws.recv(timeout=TIMEOUT)
        assert (info.value.code, info.value.reason) == (4000, "bye")
    assert (ws.close_code, ws.close_reason) == (4000, "bye")


def test_one_thread_receives_while_others_send(server: ThreadedServer) -> None:
    count = 300
    received: list[Any] = []
    with connect(server.url, max_queue=4) as ws:

        def receive() -> None:
            for _ in range(count * 2):
                received.append(ws.recv(timeout=TIMEOUT))

        receiver = threading.Thread(target=receive)
        receiver.start()

        def send(prefix: str) -> None:
            for index in range(count):
                ws.send(f"{prefix}{index}")

        senders = [threading.Thread(target=send, args=(prefix,)) for prefix in "ab"]
        for thread in senders:
            thread.start()
        for thread in [*senders, receiver]:
            thread.join(TIMEOUT)
    for prefix in "ab":
        assert [m for m in received if m.startswith(prefix)] == [
            f"{prefix}{i}" for i in range(count)
        ]


def test_reading_pauses_when_the_queue_is_full_and_resumes(server: ThreadedServer) -> None:
    with connect(server.url, max_queue=2) as ws:
        ws.send("please-send:50")
        assert [ws.recv(timeout=TIMEOUT) for _ in range(50)] == [f"m{i}" for i in range(50)]


def test_close_from_another_thread_wakes_recv(server: ThreadedServer) -> None:
    with connect(server.url) as ws:
        errors: list[BaseException] = []

        def receive() -> None:
            try:
                ws.recv(timeout=TIMEOUT)
            except BaseException as exc:
                errors.append(exc)

        receiver = threading.Thread(target=receive)
        receiver.start()
        ws.close(1000, "bye")
        receiver.join(TIMEOUT)
        assert len(errors) == 1 and isinstance(errors[0], fullduplex.ConnectionClosedOK)


def test_bad_close_arguments_leave_the_connection_open(server: ThreadedServer) -> None:
    with connect(server.url) as ws:
        with pytest.raises(ValueError):
            ws.close(1005)
        ws.send("still open")
        assert ws.recv(timeout=TIMEOUT) == "still open"


def test_open_timeout() -> None:
    # A listening socket nobody accepts from: the handshake never completes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(TimeoutError):
            connect(f"ws://127.0.0.1:{port}/", open_timeout=0.1)


def test_ping_timeout() -> None:
    # A hand-written server that completes the handshake and then reads nothing.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []

        def serve_one() -> None:
            peer, _ = listener.accept()
            accepted.append(peer)
            request = b""
            while b"\r\n\r\n" not in request:
                request += peer.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
            accept = base64.b64encode(hashlib.sha1(key + guid).digest())
            peer.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )

        thread = threading.Thread(target=serve_one)
        thread.start()
        try:
            ws = connect(f"ws://127.0.0.1:{port}/", close_timeout=0.1)
            with pytest.raises(TimeoutError):
                ws.ping(b"hello", timeout=0.05)
            assert ws.state is fullduplex.State.OPEN
            ws.close()  # the server never answers: dropped after close_timeout
            assert ws.close_code == 1006
        finally:
            thread.join(TIMEOUT)
            for peer in accepted:
                peer.close()


def test_connection_refused_leaves_no_thread(unused_port: int) -> None:
    before = len(sync_threads())
    with pytest.raises(OSError):
        connect(f"ws://127.0.0.1:{unused_port}/")
    assert len(sync_threads()) == before


def test_invalid_uri() -> None:
    with pytest.raises(fullduplex.InvalidURI):
        connect("http://127.0.0.1/")


def test_garbage_collection_stops_the_thread(server: ThreadedServer) -> None:
    ws = connect(server.url)
    thread = ws._runner.thread
    assert thread.is_alive()
    del ws
    gc.collect()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
