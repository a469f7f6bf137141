"""``fullduplex.WebSocket`` walked through the WHATWG WebSockets Standard.

Every test talks to a real ``fullduplex.serve`` server on 127.0.0.1 (or to a port
nobody listens on, or to a hand-written server for protocol errors). Waiting is
always on events, with a timeout.
"""

from __future__ import annotations

import array
import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import fullduplex
from fullduplex import Blob, CloseEvent, DOMException, Event, MessageEvent, WebSocket, browser
from fullduplex.browser import DOMSyntaxError, InvalidAccessError, InvalidStateError

TIMEOUT = 10.0


# ---------------------------------------------------------------------------
# Helpers


async def scripted(conn: Any) -> None:
    """Echo, plus ``please-close:CODE:REASON``, ``please-drop`` and ``please-two``."""
    async for message in conn:
        if isinstance(message, str) and message.startswith("please-close:"):
            _, code, reason = message.split(":", 2)
            await conn.close(int(code), reason)
            return
        if message == "please-drop":
            conn.protocol.abort()
            return
        if message == "please-two":
            await conn.send("one")
            await conn.send("two")
            continue
        await conn.send(message)


@contextlib.asynccontextmanager
async def server(handler: Any = scripted, **kwargs: Any) -> AsyncIterator[str]:
    async with fullduplex.serve(handler, "127.0.0.1", 0, **kwargs) as srv:
        yield f"ws://127.0.0.1:{srv.port}/"


class Recorder:
    """Records every event of a WebSocket as tuples; ``await ended()`` waits for close."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.events: list[tuple[Any, ...]] = []
        self.objects: list[Event] = []
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        for name in ("open", "message", "error", "close"):
            ws.addEventListener(name, self.record)

    def record(self, event: Event) -> None:
        self.objects.append(event)
        state = self.ws.readyState
        if isinstance(event, MessageEvent):
            self.events.append(("message", event.data, state))
            self.messages.put_nowait(event.data)
        elif isinstance(event, CloseEvent):
            self.events.append(("close", event.code, event.reason, event.wasClean, state))
            self.closed.set_result(event)
        else:
            self.events.append((event.type, state))
            if event.type == "open":
                self.opened.set_result(event)

    async def open(self) -> None:
        await asyncio.wait_for(asyncio.shield(self.opened), TIMEOUT)

    async def ended(self) -> CloseEvent:
        return await asyncio.wait_for(asyncio.shield(self.closed), TIMEOUT)

    async def message(self) -> Any:
        return await asyncio.wait_for(self.messages.get(), TIMEOUT)


def accept_key(key: str) -> str:
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


@contextlib.asynccontextmanager
async def raw_server(after_handshake: bytes) -> AsyncIterator[str]:
    """A hand-written server: answers the handshake, then writes ``after_handshake``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = ""
        for line in request.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept_key(key).encode()
            + b"\r\n\r\n"
            + after_handshake
        )
        with contextlib.suppress(ConnectionError):
            await reader.read(4096)  # the client's close frame: close TCP, as a server does
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"
    finally:
        srv.close()
        await srv.wait_closed()


# ---------------------------------------------------------------------------
# Constructor


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/relative",
        "relative/path",
        "//127.0.0.1/",
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "mailto:someone@example.com",
        "ws://",
        "ws://:9001/",
        "ws://127.0.0.1:65536/",
        "ws://127.0.0.1:9x/",
        "ws://exa mple.com/",
        "ws://exa<mple.com/",
        "ws://[::1/",
        "ws://[nope]/",
        "ws://256.0.0.1/",
        "ws://127.0.0.1/#",
        "ws://127.0.0.1/#fragment",
        "wss://127.0.0.1/path?query#fragment",
    ],
)
def test_constructor_refuses_bad_urls(url: str) -> None:
    with pytest.raises(DOMSyntaxError) as info:
        WebSocket(url)
    assert isinstance(info.value, DOMException)
    assert info.value.name == "SyntaxError"
    assert info.value.code == 12


@pytest.mark.parametrize(
    "protocols",
    [
        "",
        "a b",
        "a,b",
        "chat;v=1",
        "a\x01b",
        "a\x7fb",
        "caf\u00e9",
        "{chat}",
        ["chat", "chat"],
        ["chat", "CHAT"],
        ["ok", ""],
    ],
)
def test_constructor_refuses_bad_subprotocols(protocols: Any) -> None:
    with pytest.raises(DOMSyntaxError):
        WebSocket("ws://127.0.0.1:9/", protocols)


def test_constructor_refuses_subprotocols_that_are_not_str() -> None:
    with pytest.raises(TypeError):
        WebSocket("ws://127.0.0.1:9/", [b"chat"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ws://127.0.0.1:{port}", "ws://127.0.0.1:{port}/"),
        ("WS://127.0.0.1:{port}/Path", "ws://127.0.0.1:{port}/Path"),
        ("http://127.0.0.1:{port}/x?y=1", "ws://127.0.0.1:{port}/x?y=1"),
        ("  ws://127.0.0.1:{port}/a/./b/../c  ", "ws://127.0.0.1:{port}/a/c"),
        ("ws://127.0.0.1:{port}/a b?c d", "ws://127.0.0.1:{port}/a%20b?c%20d"),
        ("ws://127.0.0.1:{port}/caf\u00e9", "ws://127.0.0.1:{port}/caf%C3%A9"),
        ("ws://127.1:{port}/", "ws://127.0.0.1:{port}/"),
        ("ws:127.0.0.1:{port}/", "ws://127.0.0.1:{port}/"),
        ("ws://127.0.0.1:{port}/?", "ws://127.0.0.1:{port}/?"),
    ],
)
async def test_url_is_parsed_and_serialized(given: str, expected: str) -> None:
    async with server() as url:
        port = url.rsplit(":", 1)[1].strip("/")
        ws = WebSocket(given.format(port=port))
        assert ws.url == expected.format(port=port)
        rec = Recorder(ws)
        await rec.open()
        ws.close()
        await rec.ended()


def test_url_default_ports_are_left_out() -> None:
    serialized, target, origin = browser._parse_url("https://Example.COM:443/a")
    assert serialized == "wss://example.com/a"
    assert origin == "wss://example.com"
    assert (target.secure, target.host, target.port, target.resource) == (
        True,
        "example.com",
        443,
        "/a",
    )
    serialized, target, _ = browser._parse_url("ws://[0:0::1]:80")
    assert serialized == "ws://[::1]/"
    assert (target.host, target.port) == ("::1", 80)


def test_constants_on_class_and_instances() -> None:
    assert (WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED) == (
        0,
        1,
        2,
        3,
    )
    ws = WebSocket.__new__(WebSocket)
    assert (ws.CONNECTING, ws.OPEN, ws.CLOSING, ws.CLOSED) == (0, 1, 2, 3)


# ---------------------------------------------------------------------------
# readyState, events and their order


async def test_clean_close_initiated_by_the_client() -> None:
    async with server() as url:
        ws = WebSocket(url)
        assert ws.readyState == WebSocket.CONNECTING
        assert (ws.protocol, ws.extensions, ws.bufferedAmount) == ("", "", 0)
        with pytest.raises(InvalidStateError) as info:
            ws.send("too early")
        assert info.value.name == "InvalidStateError"
        rec = Recorder(ws)
        ws.onopen = lambda event: ws.send("Hello WebSockets!")
        await rec.open()
        assert await rec.message() == "Hello WebSockets!"
        ws.close(1000, "done")
        assert ws.readyState == WebSocket.CLOSING
        close = await rec.ended()
        assert rec.events == [
            ("open", WebSocket.OPEN),
            ("message", "Hello WebSockets!", WebSocket.OPEN),
            ("close", 1000, "done", True, WebSocket.CLOSED),
        ]
        assert ws.readyState == WebSocket.CLOSED
        assert close.target is ws and close.currentTarget is None and close.isTrusted
        message = rec.objects[1]
        assert isinstance(message, MessageEvent)
        assert message.origin == url.rstrip("/")
        assert (message.lastEventId, message.source, message.ports) == ("", None, ())


async def test_close_without_arguments_sends_no_status() -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        await rec.open()
        ws.close()
        ws.close()  # harmless
        ws.close(1000, "again")  # harmless too
        close = await rec.ended()
        assert (close.code, close.reason, close.wasClean) == (1005, "", True)
        ws.close()  # and after CLOSED


async def test_close_with_only_a_reason_uses_1000() -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        await rec.open()
        ws.close(reason="bye")
        close = await rec.ended()
        assert (close.code, close.reason, close.wasClean) == (1000, "bye", True)


async def test_server_initiated_close() -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        ws.onopen = lambda event: (ws.send("before"), ws.send("please-close:4000:bye"))
        close = await rec.ended()
        assert rec.events == [
            ("open", WebSocket.OPEN),
            ("message", "before", WebSocket.OPEN),
            ("close", 4000, "bye", True, WebSocket.CLOSED),
        ]
        assert close.wasClean


async def test_refused_connection_fires_error_then_close() -> None:
    async with server() as url:
        pass  # the server is gone: nothing listens on its port any more
    ws = WebSocket(url)
    rec = Recorder(ws)
    close = await rec.ended()
    assert rec.events == [
        ("error", WebSocket.CLOSED),
        ("close", 1006, "", False, WebSocket.CLOSED),
    ]
    assert type(rec.objects[0]) is Event and rec.objects[0].isTrusted
    assert not close.wasClean


async def test_abrupt_drop_fires_close_1006_without_error() -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        ws.onopen = lambda event: ws.send("please-drop")
        await rec.ended()
        assert rec.events == [
            ("open", WebSocket.OPEN),
            ("close", 1006, "", False, WebSocket.CLOSED),
        ]


async def test_protocol_error_from_the_server_fails_the_connection() -> None:
    bad_text = b"\x81\x02\xc3\x28"  # a text frame that is not UTF-8
    async with raw_server(bad_text) as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        await rec.ended()
        assert rec.events == [
            ("open", WebSocket.OPEN),
            ("error", WebSocket.CLOSED),
            ("close", 1006, "", False, WebSocket.CLOSED),
        ]


async def test_close_while_connecting_fails_the_connection_later() -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        ws.close(1000, "never mind")
        assert ws.readyState == WebSocket.CLOSING
        assert rec.events == []  # nothing is dispatched from inside close()
        ws.close()  # harmless
        await rec.ended()
        assert rec.events == [
            ("error", WebSocket.CLOSED),
            ("close", 1006, "", False, WebSocket.CLOSED),
        ]


async def test_close_while_connecting_after_the_request_was_sent() -> None:
    request_read: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # and never answer
        request_read.set_result(None)
        await reader.read()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with srv:
        ws = WebSocket(f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/")
        rec = Recorder(ws)
        await asyncio.wait_for(request_read, TIMEOUT)
        assert ws.readyState == WebSocket.CONNECTING
        ws.close()
        await rec.ended()
        assert rec.events == [
            ("error", WebSocket.CLOSED),
            ("close", 1006, "", False, WebSocket.CLOSED),
        ]


async def test_events_are_not_dispatched_from_inside_close() -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        seen_during_close: list[int] = []

        def on_open(event: Event) -> None:
            before = len(rec.events)
            ws.close()
            seen_during_close.append(len(rec.events) - before)

        ws.onopen = on_open
        await rec.ended()
        assert seen_during_close == [0]


async def test_messages_after_close_are_dropped() -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        ws.onopen = lambda event: (ws.send("a"), ws.send("b"), ws.close(1000))
        close = await rec.ended()
        assert [event[0] for event in rec.events] == ["open", "close"]
        assert close.wasClean


async def test_close_between_two_messages_drops_the_second() -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        ws.onopen = lambda event: ws.send("please-two")
        ws.onmessage = lambda event: ws.close(1000, "enough")
        await rec.ended()
        assert rec.events == [
            ("open", WebSocket.OPEN),
            ("message", "one", WebSocket.OPEN),
            ("close", 1000, "enough", True, WebSocket.CLOSED),
        ]


async def test_ready_state_becomes_closing_when_the_server_starts_closing() -> None:
    async def handler(conn: Any) -> None:
        await conn.send("hi")  # the message and the close frame may come in one read
        await conn.close(1001, "going")

    async with server(handler) as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        states: list[int] = []
        ws.onmessage = lambda event: states.append(ws.readyState)
        await rec.ended()
        assert states == [WebSocket.OPEN]
        assert rec.events[-1] == ("close", 1001, "going", True, WebSocket.CLOSED)


# ---------------------------------------------------------------------------
# close() arguments


@pytest.mark.parametrize("code", [0, 999, 1001, 1002, 1005, 1006, 1015, 2999, 5000, 65535, -1])
async def test_close_refuses_codes(code: int) -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        with pytest.raises(InvalidAccessError) as info:
            ws.close(code)
        assert info.value.name == "InvalidAccessError"
        assert ws.readyState == WebSocket.CONNECTING
        await rec.open()
        with pytest.raises(InvalidAccessError):
            ws.close(code, "reason")
        assert ws.readyState == WebSocket.OPEN
        ws.close(3000)
        assert (await rec.ended()).code == 3000


@pytest.mark.parametrize("reason", ["x" * 124, "\u00e9" * 62, "\u20ac" * 42])
async def test_close_refuses_long_reasons(reason: str) -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        await rec.open()
        with pytest.raises(DOMSyntaxError):
            ws.close(1000, reason)
        # The code is checked first.
        with pytest.raises(InvalidAccessError):
            ws.close(1, reason)
        assert ws.readyState == WebSocket.OPEN
        longest = "\u00e9" * 61 + "x"  # 123 bytes
        ws.close(4999, longest)
        close = await rec.ended()
        assert (close.code, close.reason) == (4999, longest)


def test_close_refuses_non_integer_codes() -> None:
    ws = WebSocket.__new__(WebSocket)
    with pytest.raises(TypeError):
        ws.close("1000")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ws.close(True)


# ---------------------------------------------------------------------------
# send() and bufferedAmount


async def test_send_types_and_binary_type_blob() -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        assert ws.binaryType == "blob"
        await rec.open()
        ws.send(b"\x00\x01")
        ws.send(bytearray(b"ab"))
        ws.send(memoryview(b"xyz")[1:])
        ws.send(array.array("H", [1, 2]))
        ws.send(Blob([b"bl", "ob"], type="Text/Plain"))
        ws.send("caf\u00e9 \ud800")  # a lone surrogate becomes U+FFFD
        with pytest.raises(TypeError):
            ws.send(42)  # type: ignore[arg-type]
        received = [await rec.message() for _ in range(6)]
        assert all(isinstance(blob, Blob) for blob in received[:5])
        assert [bytes(blob) for blob in received[:5]] == [
            b"\x00\x01",
            b"ab",
            b"yz",
            array.array("H", [1, 2]).tobytes(),
            b"blob",
        ]
        assert received[5] == "caf\u00e9 \ufffd"
        blob = received[4]
        assert (blob.size, blob.type) == (4, "")
        assert await blob.text() == "blob"
        assert await blob.arrayBuffer() == b"blob"
        assert await blob.bytes() == b"blob"
        ws.close()
        await rec.ended()


async def test_binary_type_arraybuffer_and_invalid_values() -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        ws.binaryType = "arraybuffer"
        ws.binaryType = "nonsense"  # ignored, as in a browser
        assert ws.binaryType == "arraybuffer"
        await rec.open()
        ws.send(b"\xff\x00")
        assert await rec.message() == b"\xff\x00"
        ws.binaryType = "blob"
        ws.send(b"\xfe")
        assert isinstance(await rec.message(), Blob)
        ws.close()
        await rec.ended()


async def test_buffered_amount_counts_utf8_bytes_until_the_loop_turns() -> None:
    async with server() as url:
        ws = WebSocket(url)
        rec = Recorder(ws)
        await rec.open()
        ws.send("h\u00e9llo")  # 6 bytes in UTF-8
        assert ws.bufferedAmount == 6
        ws.send(b"1234")
        assert ws.bufferedAmount == 10
        await rec.message()
        await rec.message()
        assert ws.bufferedAmount == 0
        ws.close()
        ws.send("after close")  # dropped, but counted, as the standard says
        assert ws.bufferedAmount == len("after close")
        await rec.ended()
        ws.send(Blob([b"12345"]))
        assert ws.bufferedAmount == len("after close") + 5
        await asyncio.sleep(0)
        assert ws.bufferedAmount == len("after close") + 5


async def test_buffered_amount_rises_while_the_server_does_not_read_and_falls_after() -> None:
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    resume: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handler(conn: Any) -> None:
        conn.protocol.pause_reading()
        ready.set_result(conn)
        await resume
        conn.protocol.resume_reading()
        async for message in conn:
            await conn.send(message)

    async with server(handler, max_size=None) as url:
        ws = WebSocket(url, max_size=None)
        ws.binaryType = "arraybuffer"
        rec = Recorder(ws)
        await rec.open()
        await asyncio.wait_for(ready, TIMEOUT)
        chunk = os.urandom(256 * 1024)  # incompressible: permessage-deflate may be on
        sent = 0
        previous = 0
        while sent < 400:  # at most 100 MiB; kernel buffers take a few MiB
            ws.send(chunk)
            sent += 1
            assert ws.bufferedAmount == previous + len(chunk)  # rises at once
            await asyncio.sleep(0)  # one loop turn: the transport writes what it can
            previous = ws.bufferedAmount
            if previous > 0:
                break
        assert 0 < previous <= sent * len(chunk)
        await asyncio.sleep(0)
        assert ws.bufferedAmount == previous  # the server still does not read
        resume.set_result(None)
        for _ in range(sent):
            assert len(await rec.message()) == len(chunk)
        assert ws.bufferedAmount == 0
        ws.close()
        await rec.ended()


async def test_extensions_with_and_without_compression() -> None:
    async with server() as url:
        for options, expected in (({}, "permessage-deflate"), ({"compression": None}, "")):
            ws = WebSocket(url, **options)
            rec = Recorder(ws)
            await rec.open()
            assert ws.extensions.split(";")[0] == expected
            ws.send("x" * 1000)
            assert await rec.message() == "x" * 1000
            ws.close()
            await rec.ended()
    with pytest.raises(ValueError):
        WebSocket(url, compression="brotli")


# ---------------------------------------------------------------------------
# Subprotocols


async def test_subprotocol_selected_by_the_server() -> None:
    async with server(subprotocols=["chat"]) as url:
        ws = WebSocket(url, ["superchat", "chat"])
        rec = Recorder(ws)
        assert ws.protocol == ""
        await rec.open()
        assert ws.protocol == "chat"
        ws.close()
        await rec.ended()
        assert ws.protocol == "chat"


async def test_no_subprotocol_selected_fails_the_connection() -> None:
    async with server() as url:
        ws = WebSocket(url, "chat")
        rec = Recorder(ws)
        await rec.ended()
        assert [event[0] for event in rec.events] == ["error", "close"]
        assert rec.events[-1][1] == 1006


# ---------------------------------------------------------------------------
# EventTarget


async def test_listeners_and_handler_attributes_together() -> None:
    async with server() as url:
        ws = WebSocket(url)
        calls: list[str] = []

        def listener(event: Event) -> None:
            calls.append("listener")

        class Handler:
            def handleEvent(self, event: Event) -> None:
                calls.append("handleEvent")

        ws.addEventListener("message", listener)
        ws.addEventListener("message", listener)  # the same listener twice runs once
        ws.onmessage = lambda event: calls.append("first handler")
        ws.addEventListener("message", Handler())
        ws.onmessage = lambda event: calls.append("second handler")  # keeps its place
        ws.addEventListener("message", lambda event: calls.append("once"), {"once": True})
        assert ws.onmessage is not None
        rec = Recorder(ws)
        ws.onopen = lambda event: ws.send("1")
        await rec.message()
        assert calls == ["listener", "second handler", "handleEvent", "once"]

        calls.clear()
        ws.removeEventListener("message", listener)
        ws.onmessage = None
        ws.onmessage = lambda event: calls.append("third handler")  # now at the end
        ws.send("2")
        await rec.message()
        assert calls == ["handleEvent", "third handler"]

        calls.clear()
        ws.onmessage = "not callable"  # type: ignore[assignment]
        assert ws.onmessage is None
        ws.send("3")
        await rec.message()
        assert calls == ["handleEvent"]
        ws.close()
        await rec.ended()


async def test_once_as_a_keyword_and_capture_listeners_first() -> None:
    async with server() as url:
        ws = WebSocket(url)
        calls: list[str] = []
        ws.addEventListener("message", lambda event: calls.append("bubble"))
        ws.addEventListener("message", lambda event: calls.append("capture"), True)
        ws.addEventListener("message", lambda event: calls.append("once"), once=True)
        rec = Recorder(ws)
        await rec.open()
        ws.send("1")
        ws.send("2")
        await rec.message()
        await rec.message()
        assert calls == ["capture", "bubble", "once", "capture", "bubble"]
        ws.close()
        await rec.ended()


async def test_an_exception_in_a_listener_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with server() as url:
        ws = WebSocket(url)
        calls: list[str] = []

        def broken(event: Event) -> None:
            raise RuntimeError("boom")

        async def broken_later(event: Event) -> None:
            calls.append("async")
            raise ValueError("later")

        ws.addEventListener("open", broken)
        ws.addEventListener("open", broken_later)
        ws.onopen = lambda event: calls.append("handler")
        rec = Recorder(ws)
        with caplog.at_level(logging.ERROR, logger="fullduplex.browser"):
            await rec.open()
            ws.close()
            await rec.ended()
        assert calls == ["handler", "async"]
        errors = [r for r in caplog.records if r.name == "fullduplex.browser"]
        assert len(errors) == 2
        assert {type(r.exc_info[1]) for r in errors if r.exc_info} == {RuntimeError, ValueError}


def test_dispatch_event_runs_listeners_synchronously() -> None:
    ws = browser.EventTarget()
    calls: list[Any] = []

    def first(event: Event) -> None:
        calls.append((event.type, event.isTrusted, event.currentTarget is ws))
        event.preventDefault()
        event.stopImmediatePropagation()

    ws.addEventListener("custom", first)
    ws.addEventListener("custom", lambda event: calls.append("not reached"))
    event = Event("custom", cancelable=True)
    assert ws.dispatchEvent(event) is False
    assert calls == [("custom", False, True)]
    assert event.defaultPrevented and event.target is ws and event.eventPhase == Event.NONE

    def redispatch(event: Event) -> None:
        with pytest.raises(InvalidStateError):
            ws.dispatchEvent(event)

    ws.addEventListener("again", redispatch)
    assert ws.dispatchEvent(Event("again")) is True
    ws.addEventListener("none", None)
    assert ws.dispatchEvent(CloseEvent("none", {"code": 4000, "wasClean": True})) is True


def test_event_constructors() -> None:
    message = MessageEvent("message", data=b"x", origin="ws://h")
    assert (message.type, message.data, message.origin, message.bubbles) == (
        "message",
        b"x",
        "ws://h",
        False,
    )
    close = CloseEvent("close", {"code": 1000, "reason": "r", "wasClean": True})
    assert (close.code, close.reason, close.wasClean) == (1000, "r", True)
    assert Event("x").timeStamp >= 0
    assert "code=1000" in repr(close)


def test_blob() -> None:
    blob = Blob(["h\u00e9", b"llo", Blob([b"!"])], {"type": "TEXT/Plain"})
    assert (blob.size, blob.type, bytes(blob)) == (7, "text/plain", b"h\xc3\xa9llo!")
    assert bytes(blob.slice(1, 3)) == b"\xc3\xa9"
    assert bytes(blob.slice(-2)) == b"o!"
    assert bytes(blob.slice(5, 2)) == b""
    assert blob.slice(0, None, "a/b").type == "a/b"
    assert Blob([], type="bad\u00e9").type == ""
    assert Blob([b"a"]) == Blob([b"a"]) and len(Blob([b"ab"])) == 2
    with pytest.raises(TypeError):
        Blob(b"not a list")  # type: ignore[arg-type]


def test_dom_exception() -> None:
    error = DOMException("nope", "InvalidAccessError")
    assert (error.name, error.message, error.code) == ("InvalidAccessError", "nope", 15)
    assert DOMException().name == "Error" and DOMException().code == 0
    assert InvalidStateError("x").code == 11


# ---------------------------------------------------------------------------
# A plain script: browser.run()


@pytest.fixture
def threaded_server() -> Iterator[str]:
    """An echo server on its own loop in a thread, for tests that run their own loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    srv = asyncio.run_coroutine_threadsafe(_start(), loop).result(TIMEOUT)
    try:
        yield f"ws://127.0.0.1:{srv.port}/"
    finally:
        asyncio.run_coroutine_threadsafe(_stop(srv), loop).result(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


async def _start() -> Any:
    return await fullduplex.serve(scripted, "127.0.0.1", 0)


async def _stop(srv: Any) -> None:
    await srv.close()


def test_run_from_a_plain_script(threaded_server: str) -> None:
    url = threaded_server
    received: list[Any] = []
    ws = WebSocket(url)  # no loop is running: it starts when run() does
    assert ws.readyState == WebSocket.CONNECTING
    ws.onopen = lambda event: ws.send("Hello WebSockets!")

    def on_message(event: MessageEvent) -> None:
        received.append(event.data)
        ws.close()
        # A socket created by a listener is waited for too.
        other = WebSocket(url)
        other.onopen = lambda event: other.close(1000)
        other.onclose = lambda event: received.append(event.code)

    ws.onmessage = on_message
    browser.run(timeout=TIMEOUT)
    assert received == ["Hello WebSockets!", 1000]
    assert ws.readyState == WebSocket.CLOSED


def test_run_with_a_main_function_and_close_before_run(threaded_server: str) -> None:
    events: list[str] = []
    early = WebSocket(threaded_server)
    early.close()
    early.onerror = lambda event: events.append("early error")
    early.onclose = lambda event: events.append("early close")

    async def main() -> None:
        ws = WebSocket(threaded_server)
        ws.onopen = lambda event: ws.close()
        ws.onclose = lambda event: events.append("main close")

    browser.run(main, timeout=TIMEOUT)
    assert sorted(events) == ["early close", "early error", "main close"]


def test_run_times_out() -> None:
    browser.run(timeout=TIMEOUT)  # nothing to wait for: returns at once
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # the kernel accepts; nobody answers the handshake
        port = listener.getsockname()[1]
        events: list[str] = []

        def main() -> None:
            ws = WebSocket(f"ws://127.0.0.1:{port}/", open_timeout=None)
            ws.onclose = lambda event: events.append("close")

        with pytest.raises(TimeoutError):
            browser.run(main, timeout=0.2)
        # The loop ended: the unfinished handshake was dropped and reported.
        assert events == ["close"]
