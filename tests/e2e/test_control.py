"""Pings and pongs. RFC 6455 §5.5 (control frames), §5.5.2 (ping), §5.5.3 (pong)."""

from __future__ import annotations

import pytest

from .rawclient import BINARY, CLOSE, PING, PONG, TEXT, encode_header, raw_client
from .support import assert_echo, echo_server


@pytest.mark.parametrize(
    "payload",
    [b"", b"x", bytes(range(125)), b"\xff" * 125, "κόσμε".encode()],
    ids=["empty", "one", "125-binary", "125-ff", "utf8"],
)
async def test_ping_gets_pong_with_same_payload(payload: bytes) -> None:
    # §5.5.2: the pong "MUST have identical Application data" as the ping.
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(PING, payload)
        pong = await peer.recv_frame()
        assert (pong.opcode, pong.payload, pong.fin, pong.rsv) == (PONG, payload, True, 0)
        await assert_echo(peer)


async def test_ping_with_126_bytes_fails_1002() -> None:
    # §5.5: "All control frames MUST have a payload length of 125 bytes or less".
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(PING, b"p" * 126)
        assert await peer.expect_close(1002) == []


async def test_ping_with_64k_length_fails_1002_before_the_payload() -> None:
    # The length alone is enough to know the frame is invalid.
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send(encode_header(PING, 65536, mask=b"abcd") + b"p" * 100)
        assert await peer.expect_close(1002, reply=False) == []


@pytest.mark.parametrize("payload", [b"", b"fragmented ping"])
async def test_fragmented_ping_fails_1002(payload: bytes) -> None:
    # §5.5: "Control frames themselves MUST NOT be fragmented."
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(PING, payload, fin=False)
        assert await peer.expect_close(1002) == []


@pytest.mark.parametrize("payload", [b"", b"unsolicited", b"u" * 125])
async def test_unsolicited_pong_is_ignored(payload: bytes) -> None:
    # §5.5.3: "A Pong frame MAY be sent unsolicited. ... A response to an unsolicited
    # Pong frame is not expected." The echo right after it must be the next frame.
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(PONG, payload)
        await assert_echo(peer, TEXT, b"after the pong")
        await peer.send_frame(PONG, payload)
        await assert_echo(peer, BINARY, b"\x00after another")


async def test_ten_pings_get_ten_pongs_in_order() -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frames((PING, f"ping {i}".encode(), True) for i in range(10))
        for i in range(10):
            pong = await peer.recv_frame()
            assert (pong.opcode, pong.payload) == (PONG, f"ping {i}".encode())
        await assert_echo(peer)


async def test_pings_sent_one_byte_at_a_time() -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(PING, b"slowly", chop=1)
        pong = await peer.recv_frame()
        assert (pong.opcode, pong.payload) == (PONG, b"slowly")


async def test_keepalive_pings_answered_keep_the_connection_open() -> None:
    async with (
        echo_server(ping_interval=0.1, ping_timeout=1) as server,
        raw_client(server.port) as peer,
    ):
        for _ in range(3):
            ping = await peer.recv_frame()
            assert ping.opcode == PING and ping.mask is None, ping
            await peer.send_frame(PONG, ping.payload)
        await peer.send_frame(TEXT, "still open")
        while (frame := await peer.recv_frame()).opcode == PING:
            await peer.send_frame(PONG, frame.payload)
        assert (frame.opcode, frame.payload) == (TEXT, b"still open")


async def test_keepalive_without_pongs_ends_the_connection() -> None:
    async with (
        echo_server(ping_interval=0.1, ping_timeout=0.2) as server,
        raw_client(server.port) as peer,
    ):
        # Never answer: the server must give up on us within a bounded time, with a
        # close frame (any code: the RFC leaves it open) or by dropping TCP.
        while True:
            try:
                frame = await peer.recv_frame()
            except EOFError:
                break
            if frame.opcode == CLOSE:
                await peer.expect_eof()
                break
            assert frame.opcode == PING, frame
