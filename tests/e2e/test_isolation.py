"""One bad connection never hurts the others, nor the listening server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from .rawclient import (
    BINARY,
    CONT,
    PING,
    PONG,
    RSV1,
    TEXT,
    RawPeer,
    encode_header,
    open_tcp,
    raw_client,
    upgrade_headers,
)
from .support import assert_echo, echo_server

LIMIT = 4096


async def _rsv(peer: RawPeer) -> None:
    await peer.send_frame(TEXT, "rsv", rsv=RSV1)


async def _opcode(peer: RawPeer) -> None:
    await peer.send_frame(0xB, b"reserved control opcode")


async def _utf8(peer: RawPeer) -> None:
    await peer.send_frame(TEXT, b"bad \xed\xa0\x80 text")


async def _unmasked(peer: RawPeer) -> None:
    await peer.send_frame(BINARY, b"bare", mask=None)


async def _too_big(peer: RawPeer) -> None:
    await peer.send(encode_header(BINARY, LIMIT + 1, mask=b"abcd") + b"\0" * 100)


async def _long_ping(peer: RawPeer) -> None:
    await peer.send_frame(PING, b"p" * 126)


async def _orphan_continuation(peer: RawPeer) -> None:
    await peer.send_frame(CONT, b"orphan")


async def _bad_close_code(peer: RawPeer) -> None:
    await peer.send_close(1005)


BAD: dict[str, tuple[Callable[[RawPeer], Awaitable[None]], int]] = {
    "rsv": (_rsv, 1002),
    "opcode": (_opcode, 1002),
    "utf8": (_utf8, 1007),
    "unmasked": (_unmasked, 1002),
    "too-big": (_too_big, 1009),
    "long-ping": (_long_ping, 1002),
    "orphan-continuation": (_orphan_continuation, 1002),
    "close-1005": (_bad_close_code, 1002),
}


@pytest.mark.parametrize("kind", list(BAD))
async def test_bad_client_is_failed_while_a_good_one_keeps_echoing(kind: str) -> None:
    send_bad, code = BAD[kind]
    async with (
        echo_server(max_size=LIMIT) as server,
        raw_client(server.port) as good,
    ):
        await assert_echo(good, TEXT, b"before")
        await good.send_frame(TEXT, "half of a ", fin=False)  # left open meanwhile
        async with raw_client(server.port) as bad:
            await assert_echo(bad, BINARY, b"bad client is fine so far")
            await send_bad(bad)
            await bad.expect_close(code, reply=False)
        await good.send_frame(CONT, "message")
        assert await good.recv_message() == (TEXT, b"half of a message")
        await assert_echo(good, BINARY, b"after")
        async with raw_client(server.port) as newcomer:
            await assert_echo(newcomer, TEXT, b"new connections are accepted")


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 32,  # a TLS hello
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n",
        b"GET / HTTP/1.1\r\n",  # then the client gives up
        b"",
    ],
    ids=["tls", "not-http", "bad-header", "truncated", "nothing"],
)
async def test_garbage_before_the_handshake_does_not_hurt_the_server(garbage: bytes) -> None:
    async with echo_server() as server, raw_client(server.port) as good:
        bad = await open_tcp(server.port)
        await bad.send(garbage)
        await bad.aclose()
        await assert_echo(good)
        async with raw_client(server.port) as newcomer:
            await assert_echo(newcomer)


async def test_client_dropping_tcp_mid_frame_does_not_hurt_others() -> None:
    async with echo_server() as server, raw_client(server.port) as good:
        async with raw_client(server.port) as bad:
            await bad.send(encode_header(BINARY, 1000, mask=b"abcd") + b"\0" * 10)
            bad.abort()
        await assert_echo(good)
        async with raw_client(server.port) as newcomer:
            await assert_echo(newcomer)


async def test_client_stopping_mid_handshake_does_not_hurt_others() -> None:
    async with echo_server() as server, raw_client(server.port) as good:
        stalled = await open_tcp(server.port)
        try:
            head = "".join(f"{k}: {v}\r\n" for k, v in upgrade_headers(server.port))
            await stalled.send(f"GET / HTTP/1.1\r\n{head}".encode())  # no final CRLF
            await assert_echo(good)
            async with raw_client(server.port) as newcomer:
                await assert_echo(newcomer)
        finally:
            await stalled.aclose()


async def _boom_on_command(conn: Any) -> None:
    async for message in conn:
        if message == "boom":
            raise RuntimeError("the handler failed on purpose")
        await conn.send(message)


async def test_handler_raising_closes_that_connection_with_1011() -> None:
    # §7.4.1: 1011, "an unexpected condition that prevented it from fulfilling the
    # request"; the contract: "A handler that raises ends its connection with 1011".
    async with (
        echo_server(_boom_on_command) as server,
        raw_client(server.port) as good,
        raw_client(server.port) as doomed,
    ):
        await assert_echo(good)
        await assert_echo(doomed)
        await doomed.send_frame(TEXT, "boom")
        assert await doomed.expect_close(1011) == []
        await assert_echo(good, TEXT, b"still here")
        async with raw_client(server.port) as newcomer:
            await assert_echo(newcomer)
            await newcomer.send_frame(TEXT, "boom")
            await newcomer.expect_close(1011)
        await assert_echo(good, BINARY, b"and still here")


async def test_many_bad_clients_at_once() -> None:
    async with echo_server(max_size=LIMIT) as server, raw_client(server.port) as good:
        peers = []
        try:
            for _ in range(3):
                for send_bad, code in BAD.values():
                    peer = await open_tcp(server.port)
                    peers.append((peer, code))
                    response = await peer.handshake(upgrade_headers(server.port))
                    assert response.status == 101
                    await send_bad(peer)
            await assert_echo(good)
            for peer, code in peers:
                await peer.expect_close(code, reply=False)
        finally:
            for peer, _ in peers:
                await peer.aclose()
        await assert_echo(good)


async def test_many_clients_interleaving_their_messages() -> None:
    async def chat(peer: RawPeer, n: int) -> None:
        for i in range(20):
            payload = f"client {n} message {i}".encode() * (1 + i % 5)
            await peer.send_frames(
                [(TEXT, payload[:3], False), (PING, b"%d" % i, True), (CONT, payload[3:], True)]
            )
            pong = await peer.recv_frame()
            assert (pong.opcode, pong.payload) == (PONG, b"%d" % i)
            assert await peer.recv_message() == (TEXT, payload)

    async with echo_server() as server, AsyncExitStack() as stack:
        peers = [await stack.enter_async_context(raw_client(server.port)) for _ in range(25)]
        await asyncio.gather(*(chat(peer, n) for n, peer in enumerate(peers)))
