"""The server's opening handshake: one-piece and chopped requests answer alike, the
101 response is there for whoever asks, and ServerProtocol keeps to its slots."""

from __future__ import annotations

import ast
import asyncio
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import fullduplex
from e2e.rawclient import CLOSE, TEXT, accept_key, new_key, open_tcp, upgrade_headers
from fullduplex.io import server as io_server
from fullduplex.io.protocol import WebSocketProtocol
from fullduplex.io.server import ServerProtocol
from fullduplex.protocol.connection import Side
from support import TIMEOUT


class Recorder:
    """Keeps what each connection looked like when it opened, and echoes."""

    opened: list[tuple[Any, Any, Any]]

    def __init__(self, opened: list[tuple[Any, Any, Any]]) -> None:
        self.opened = opened

    def on_open(self, ws: Any) -> None:
        self.opened.append((ws.request, ws.response, ws.subprotocol))

    def on_message(self, ws: Any, data: Any) -> None:
        ws.send(data)

    def on_close(self, ws: Any, code: int, reason: str, was_clean: bool) -> None:
        pass


@asynccontextmanager
async def recording(**options: Any) -> AsyncIterator[tuple[Any, list[tuple[Any, Any, Any]]]]:
    opened: list[tuple[Any, Any, Any]] = []
    async with fullduplex.serve_callbacks(
        lambda: Recorder(opened), "127.0.0.1", 0, **options
    ) as server:
        yield server, opened


def request_bytes(headers: list[tuple[str, str]], eol: str = "\r\n") -> bytes:
    lines = ["GET /room?id=7 HTTP/1.1", *(f"{k}: {v}" for k, v in headers), "", ""]
    return eol.join(lines).encode("latin-1")


@pytest.mark.parametrize(
    ("chop", "eol"),
    [(None, "\r\n"), (1, "\r\n"), (7, "\r\n"), (None, "\n")],
    ids=["whole", "byte-by-byte", "chopped", "bare-LF"],
)
async def test_every_way_of_sending_the_request_gets_the_same_answer(
    chop: int | None, eol: str
) -> None:
    async with recording(compression=None) as (server, opened):
        key = new_key()
        headers = [*upgrade_headers(server.port, key), ("X-Trace", "a b")]
        peer = await open_tcp(server.port)
        try:
            await peer.send(request_bytes(headers, eol), chop=chop)
            response = await peer.read_http()
            assert response.status == 101, response
            assert response.get("Sec-WebSocket-Accept") == accept_key(key)
            await peer.send_frame(TEXT, "hi")
            frame = await peer.recv_frame()
            assert (frame.opcode, frame.payload) == (TEXT, b"hi")
            await peer.send_close(1000)
            assert (await peer.recv_frame()).opcode == CLOSE
        finally:
            await peer.aclose()
        (request, sent, subprotocol) = opened[0]
        assert request.path == "/room?id=7"
        assert request.headers.get_all("x-trace") == ["a b"]
        assert sent.status == 101
        assert sent.headers["Sec-WebSocket-Accept"] == accept_key(key)
        assert "Sec-WebSocket-Protocol" not in sent.headers
        assert subprotocol is None


async def test_the_response_names_the_subprotocol_and_extension_chosen() -> None:
    async with recording(subprotocols=["chat"]) as (server, opened):
        key = new_key()
        headers = [
            *upgrade_headers(server.port, key),
            ("Sec-WebSocket-Protocol", "other, chat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ]
        peer = await open_tcp(server.port)
        try:
            await peer.send(request_bytes(headers))
            response = await peer.read_http()
            assert response.status == 101, response
            await peer.send_close(1000)
            assert (await peer.recv_frame()).opcode == CLOSE
        finally:
            await peer.aclose()
        _, sent, subprotocol = opened[0]
        assert subprotocol == "chat"
        assert sent.headers["Sec-WebSocket-Protocol"] == response.get("Sec-WebSocket-Protocol")
        assert sent.headers["Sec-WebSocket-Extensions"] == response.get("Sec-WebSocket-Extensions")
        assert sent.headers["Sec-WebSocket-Accept"] == accept_key(key)


async def test_a_refused_request_has_no_response() -> None:
    async with recording() as (server, opened):
        peer = await open_tcp(server.port)
        try:
            headers = [h for h in upgrade_headers(server.port) if h[0] != "Sec-WebSocket-Key"]
            await peer.send(request_bytes(headers))
            response = await asyncio.wait_for(peer.read_http(), TIMEOUT)
            assert response.status == 400
        finally:
            await peer.aclose()
        assert opened == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("Sec-WebSocket-Protocol", "a b"), ("Sec-WebSocket-Extensions", "=bad")],
)
async def test_a_malformed_negotiation_header_gets_400_naming_it(name: str, value: str) -> None:
    async with recording(subprotocols=["chat"]) as (server, opened):
        peer = await open_tcp(server.port)
        try:
            await peer.send(request_bytes([*upgrade_headers(server.port), (name, value)]))
            response = await asyncio.wait_for(peer.read_http(), TIMEOUT)
            assert response.status == 400
            assert f"Invalid {name}".encode() in response.body
        finally:
            await peer.aclose()
        assert opened == []


def test_limits_are_checked_when_the_protocol_is_made() -> None:
    async def make() -> None:
        ServerProtocol(lambda proto: Recorder([]), max_headers=-1)

    with pytest.raises(ValueError):
        asyncio.run(make())


async def test_server_protocol_sets_only_its_slots_and_the_base_attributes() -> None:
    """Once the base class has ``__slots__``, any other attribute would fail (or bring
    back a per-instance ``__dict__``)."""
    base = WebSocketProtocol(Side.SERVER)
    known = set(ServerProtocol.__slots__) | set(dir(WebSocketProtocol))
    known |= set(getattr(base, "__dict__", {}))
    tree = ast.parse(inspect.getsource(io_server.ServerProtocol))
    assigned = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }
    assert assigned - known == set()
    # And what other modules set on a server connection (``http.basic_auth``).
    assert "username" in ServerProtocol.__slots__
