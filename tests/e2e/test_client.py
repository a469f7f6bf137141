"""``fullduplex.connect`` against a hand-written server, and against ``fullduplex.serve``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import fullduplex
from fullduplex.errors import (
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    InvalidStatus,
)

from .rawclient import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    RSV1,
    TEXT,
    RawPeer,
    RawServer,
    accept_key,
    close_payload,
    encode_frame,
    raw_server,
)
from .support import echo_server

CLOSED = fullduplex.State.CLOSED


@asynccontextmanager
async def connected(server: RawServer, **kwargs: Any) -> AsyncIterator[tuple[Any, RawPeer]]:
    """Our client connected to the raw server; yields (client connection, raw peer)."""
    connecting = asyncio.ensure_future(fullduplex.connect(server.url, **kwargs))
    try:
        peer = await server.accept()
        request = await peer.accept_handshake()
        # §4.1 / §5.3: what every client request must look like.
        assert request.start_line == "GET / HTTP/1.1", request
        assert request.get("Sec-WebSocket-Version") == "13", request
        assert "websocket" in request.tokens("Upgrade"), request
        assert "upgrade" in request.tokens("Connection"), request
        conn = await asyncio.wait_for(connecting, 5)
    except BaseException:
        connecting.cancel()
        raise
    try:
        yield conn, peer
    finally:
        peer.close_tcp()  # whatever state the test left it in, end it quickly
        await asyncio.wait_for(_quiet_close(conn), 5)


async def _quiet_close(conn: Any) -> None:
    try:
        await conn.close()
    except fullduplex.FullDuplexError:
        pass


async def test_client_frames_are_masked_with_fresh_keys() -> None:
    # §5.3: "The masking key ... MUST be ... unpredictable"; §5.1: a client MUST mask.
    async with raw_server() as server, connected(server) as (conn, peer):
        for i in range(4):
            await conn.send(f"message {i}")
        frames = [await peer.recv_frame() for _ in range(4)]
        assert [f.payload for f in frames] == [f"message {i}".encode() for i in range(4)]
        assert all(f.mask is not None and f.opcode == TEXT and f.fin for f in frames)
        assert len({f.mask for f in frames}) == 4, [f.mask for f in frames]


async def test_masked_server_frame_fails_the_client_with_1002() -> None:
    # §5.1: "A client MUST close a connection if it detects a masked frame."
    async with raw_server() as server, connected(server) as (conn, peer):
        await peer.send_frame(TEXT, "masked by the server", mask=b"abcd")
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(conn.recv(), 5)
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code) == (CLOSE, 1002), frame
        await peer.send_close(1002)
        peer.close_tcp()
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert conn.state == CLOSED


async def test_rsv_bit_from_the_server_fails_the_client_with_1002() -> None:
    async with raw_server() as server, connected(server) as (conn, peer):
        await peer.send_frame(BINARY, b"rsv", rsv=RSV1)
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(conn.recv(), 5)
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code) == (CLOSE, 1002), frame


async def test_server_fragmented_text_is_reassembled() -> None:
    text = "fragmented by the server: κόσμε 𣎴"
    data = text.encode()
    async with raw_server() as server, connected(server) as (conn, peer):
        await peer.send_frames(
            [
                (TEXT, data[:5], False),
                (PING, b"in between", True),
                (CONT, b"", False),
                (CONT, data[5:-2], False),  # ends inside the 4-byte sequence
                (CONT, data[-2:], True),
                (BINARY, b"\x00\x01", False),
                (CONT, b"\x02", True),
            ]
        )
        assert await asyncio.wait_for(conn.recv(), 5) == text
        assert await asyncio.wait_for(conn.recv(), 5) == b"\x00\x01\x02"
        pong = await peer.recv_frame()
        assert (pong.opcode, pong.payload, pong.mask is not None) == (PONG, b"in between", True)


async def test_client_waits_for_the_server_to_close_tcp() -> None:
    # §7.1.1: "the server SHOULD close the underlying TCP connection first" ... "the
    # client SHOULD wait for the server to close the connection".
    async with raw_server() as server, connected(server, close_timeout=5) as (conn, peer):
        closing = asyncio.ensure_future(conn.close())
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code) == (CLOSE, 1000), frame
        await peer.send_close(1000)
        await peer.expect_silence(0.2)  # the client does not drop TCP on its own
        assert not peer.at_eof and not closing.done()
        peer.close_tcp()
        await asyncio.wait_for(closing, 2)
        assert conn.state == CLOSED
        assert conn.close_code == 1000


async def test_client_gives_up_after_close_timeout_if_tcp_stays_open() -> None:
    async with raw_server() as server, connected(server, close_timeout=0.5) as (conn, peer):
        start = time.monotonic()
        closing = asyncio.ensure_future(conn.close())
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code) == (CLOSE, 1000), frame
        await peer.send_close(1000)  # and then never close TCP
        await asyncio.wait_for(closing, 5)
        assert time.monotonic() - start < 3
        assert conn.state == CLOSED
        await peer.expect_eof()  # the client closed TCP itself in the end


async def test_client_gives_up_after_close_timeout_if_no_close_comes_back() -> None:
    async with raw_server() as server, connected(server, close_timeout=0.5) as (conn, peer):
        start = time.monotonic()
        closing = asyncio.ensure_future(conn.close(4000, "bye"))
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code, frame.close_reason) == (CLOSE, 4000, b"bye")
        await asyncio.wait_for(closing, 5)  # we never answer
        assert time.monotonic() - start < 3
        assert conn.state == CLOSED
        await peer.expect_eof()


async def test_server_initiated_close_is_echoed_by_the_client() -> None:
    async with raw_server() as server, connected(server) as (conn, peer):
        await peer.send_close(1001, "going away")
        with pytest.raises(ConnectionClosedOK):
            await asyncio.wait_for(conn.recv(), 5)
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code, frame.mask is not None) == (CLOSE, 1001, True)
        peer.close_tcp()
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert (conn.close_code, conn.close_reason) == (1001, "going away")


async def test_invalid_utf8_from_the_server_fails_the_client_with_1007() -> None:
    async with raw_server() as server, connected(server) as (conn, peer):
        await peer.send_frame(TEXT, b"\xce\xba\xed\xa0\x80")
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(conn.recv(), 5)
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code) == (CLOSE, 1007), frame


async def test_client_answers_pings() -> None:
    async with raw_server() as server, connected(server) as (_, peer):
        await peer.send_frame(PING, b"hello client")
        pong = await peer.recv_frame()
        assert (pong.opcode, pong.payload) == (PONG, b"hello client")


async def test_bad_accept_key_is_refused() -> None:
    # §4.1: if the Sec-WebSocket-Accept value is not the expected one, "the client
    # MUST _Fail the WebSocket Connection_".
    async with raw_server() as server:
        connecting = asyncio.ensure_future(fullduplex.connect(server.url))
        peer = await server.accept()
        await peer.read_http()
        await peer.send(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: c3BvaWxlZA==\r\n\r\n"
        )
        with pytest.raises(HandshakeError):
            await asyncio.wait_for(connecting, 5)


async def test_first_frame_in_the_same_write_as_the_101_is_not_lost() -> None:
    # §4.2.2: once the server has sent its response it may send data at once, so the
    # bytes behind the response head are the first frames.
    async with raw_server() as server:
        connecting = asyncio.ensure_future(fullduplex.connect(server.url, close_timeout=1))
        peer = await server.accept()
        request = await peer.read_http()
        key = request.get("Sec-WebSocket-Key")
        assert key
        await peer.send(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept_key(key).encode()
            + b"\r\n\r\n"
            + encode_frame(TEXT, b"right behind the head", mask=None)
        )
        conn = await asyncio.wait_for(connecting, 5)
        try:
            assert await asyncio.wait_for(conn.recv(), 5) == "right behind the head"
        finally:
            peer.close_tcp()
            await asyncio.wait_for(_quiet_close(conn), 5)


async def test_non_101_answer_raises_invalid_status() -> None:
    async with raw_server() as server:
        connecting = asyncio.ensure_future(fullduplex.connect(server.url))
        peer = await server.accept()
        await peer.read_http()
        await peer.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope")
        with pytest.raises(InvalidStatus) as info:
            await asyncio.wait_for(connecting, 5)
        assert info.value.status == 403


@pytest.mark.parametrize("size", [0, 125, 126, 65536, 2**20])
async def test_our_client_and_server_echo(size: int) -> None:
    text = "é" * (size // 2)  # 2 bytes each: at most max_size
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    async with echo_server() as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with fullduplex.connect(url) as conn:
            await conn.send(text)
            assert await asyncio.wait_for(conn.recv(), 5) == text
            await conn.send(data)
            assert await asyncio.wait_for(conn.recv(), 5) == data
            await conn.send(["frag", "mented"])
            assert await asyncio.wait_for(conn.recv(), 5) == "fragmented"
            latency = await asyncio.wait_for(conn.ping(b"x"), 5)
            assert isinstance(latency, float) and latency >= 0


async def test_raw_frames_sent_by_our_client_are_well_formed_against_raw_peer() -> None:
    async with raw_server() as server, connected(server) as (conn, peer):
        await conn.send(["a", "b", "c"])
        frames = [await peer.recv_frame() for _ in range(3)]
        assert [(f.opcode, f.payload, f.fin) for f in frames] == [
            (TEXT, b"a", False),
            (CONT, b"b", False),
            (CONT, b"c", True),
        ]
        await conn.send(b"x" * 70000)
        frame = await peer.recv_frame()
        assert (frame.opcode, len(frame.payload), frame.minimal_length) == (BINARY, 70000, True)
        # a close from our side: a masked 1000 with the reason
        closing = asyncio.ensure_future(conn.close(1000, "done"))
        frame = await peer.recv_frame()
        assert frame.payload == close_payload(1000, "done"), frame
        await peer.send(encode_frame(CLOSE, close_payload(1000), mask=None))
        peer.close_tcp()
        await asyncio.wait_for(closing, 5)
