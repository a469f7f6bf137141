"""The closing handshake. RFC 6455 §5.5.1, §7.1, §7.4.

§5.5.1: "If an endpoint receives a Close frame and did not previously send a Close
frame, the endpoint MUST send a Close frame in response. (When sending a Close frame in
response, the endpoint typically echos the status code it received.)"
§7.1.1: "the server SHOULD close the underlying TCP connection first".
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .rawclient import BINARY, CLOSE, PING, TEXT, close_payload, encode_header, raw_client
from .support import CloseRecorder, assert_echo, echo_server

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
# §7.4.1 reserves 1004, 1005, 1006 and 1015 from the wire; §7.4.2: 0-999 are unused,
# 1000-2999 are for the RFC and its extensions (1012-1014 are IANA-registered since,
# but a server is not obliged to accept codes it does not know; 1016+ are unassigned).
# Autobahn case 7.9.x expects these to fail the connection.
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999]
INVALID_CODES += [5000, 65535]


async def test_close_without_payload_is_answered_then_tcp_closed() -> None:
    recorder = CloseRecorder()
    async with echo_server(recorder) as server, raw_client(server.port) as peer:
        await assert_echo(peer)
        await peer.send_close(None)
        frame = await peer.recv_frame()
        assert frame.opcode == CLOSE, frame
        assert frame.payload in (b"", close_payload(1000)), frame
        await peer.expect_eof()
        # §7.1.5: "If this Close control frame contains no status code, _The WebSocket
        # Connection Close Code_ is considered to be 1005."
        code, reason, _ = await recorder.result()
        assert (code, reason) == (1005, "")


@pytest.mark.parametrize("code", VALID_CODES)
async def test_valid_close_code_is_echoed_then_tcp_closed(code: int) -> None:
    recorder = CloseRecorder()
    async with echo_server(recorder) as server, raw_client(server.port) as peer:
        await assert_echo(peer)
        await peer.send_close(code, "see you")
        frame = await peer.recv_frame()
        assert frame.opcode == CLOSE, frame
        assert frame.close_code == code, frame
        await peer.expect_eof()  # without any further frame
        assert await recorder.result() == (
            code,
            "see you",
            "loop ended" if code in (1000, 1001) else "ConnectionClosedError",
        )


@pytest.mark.parametrize("code", INVALID_CODES)
async def test_invalid_close_code_fails_1002(code: int) -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await assert_echo(peer)
        await peer.send_close(code)
        # We already sent our close, so no reply is due.
        assert await peer.expect_close(1002, reply=False) == []


async def test_one_byte_close_payload_fails_1002() -> None:
    # §5.5.1: if there is a body, "the first two bytes of the body MUST be a 2-byte
    # unsigned integer".
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(CLOSE, b"\x03")
        assert await peer.expect_close(1002, reply=False) == []


async def test_close_reason_of_123_bytes_is_fine() -> None:
    reason = "r" * 123  # 2 + 123 = 125 bytes, the largest control frame payload
    recorder = CloseRecorder()
    async with echo_server(recorder) as server, raw_client(server.port) as peer:
        await peer.send_close(1000, reason)
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code) == (CLOSE, 1000), frame
        await peer.expect_eof()
        assert await recorder.result() == (1000, reason, "loop ended")


async def test_close_reason_of_124_bytes_fails_1002() -> None:
    # 2 + 124 = 126 bytes: §5.5 "All control frames MUST have a payload length of 125
    # bytes or less".
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_close(1000, "r" * 124)
        assert await peer.expect_close(1002, reply=False) == []


@pytest.mark.parametrize(
    "reason",
    [b"\xff", b"\xed\xa0\x80", b"ok so far \xc0\x80", b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce"],
    ids=["ff", "surrogate", "overlong", "truncated"],
)
async def test_close_reason_not_utf8_fails_1007(reason: bytes) -> None:
    # §5.5.1: the reason is UTF-8; §8.1 then requires failing with 1007 (§7.4.1).
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_close(1000, reason)
        assert await peer.expect_close(1007, reply=False) == []


async def test_close_reason_utf8_is_reported_to_the_handler() -> None:
    reason = "au revoir, κόσμε 𣎴"
    recorder = CloseRecorder()
    async with echo_server(recorder) as server, raw_client(server.port) as peer:
        await peer.send_close(4321, reason)
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code) == (CLOSE, 4321)
        await peer.expect_eof()
        assert await recorder.result() == (4321, reason, "ConnectionClosedError")


async def test_frames_after_the_clients_close_are_not_echoed() -> None:
    # §1.4 / §5.5.1: after the close frame the peer sends no more data; whatever
    # arrives after it is not a message.
    async with echo_server() as server, raw_client(server.port) as peer:
        await assert_echo(peer, TEXT, b"before")
        await peer.send_frames(
            [
                (CLOSE, close_payload(1000), True),
                (TEXT, b"after close", True),
                (BINARY, b"after close", True),
                (PING, b"after close", True),
            ]
        )
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code) == (CLOSE, 1000), frame
        while True:  # then, until TCP closes, no data frame
            try:
                later = await peer.recv_frame()
            except EOFError:
                break
            assert later.opcode not in (TEXT, BINARY, CLOSE), later


async def test_handler_returning_closes_with_1000() -> None:
    async def handler(conn: Any) -> None:
        await conn.send("goodbye")

    async with echo_server(handler) as server, raw_client(server.port) as peer:
        assert await peer.recv_message() == (TEXT, b"goodbye")
        assert await peer.expect_close(1000) == []


async def test_handler_closing_with_a_code_and_reason() -> None:
    async def handler(conn: Any) -> None:
        await conn.close(4000, "custom")

    async with echo_server(handler) as server, raw_client(server.port) as peer:
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code, frame.close_reason) == (CLOSE, 4000, b"custom")
        await peer.send_close(4000)
        await peer.expect_eof()


async def test_dropped_tcp_without_close_is_1006_for_the_handler() -> None:
    recorder = CloseRecorder()
    async with echo_server(recorder) as server:
        async with raw_client(server.port) as peer:
            await assert_echo(peer)
            peer.close_tcp()
        code, _, ending = await recorder.result()
        assert (code, ending) == (1006, "ConnectionClosedError")


async def test_server_close_sends_1001_to_clients() -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await assert_echo(peer)
        closing = asyncio.ensure_future(server.close())
        assert await peer.expect_close(1001) == []
        await asyncio.wait_for(closing, 5)


async def test_server_drops_tcp_after_close_timeout_if_the_client_never_answers() -> None:
    async def handler(conn: Any) -> None:
        pass  # returns at once: the server starts the closing handshake with 1000

    async with (
        echo_server(handler, close_timeout=0.3) as server,
        raw_client(server.port) as peer,
    ):
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code) == (CLOSE, 1000), frame
        await peer.expect_eof()  # we never send our close frame


async def test_server_drops_tcp_after_close_timeout_if_the_client_stops_mid_frame() -> None:
    async def handler(conn: Any) -> None:
        await conn.close(1000)

    async with (
        echo_server(handler, close_timeout=0.3) as server,
        raw_client(server.port) as peer,
    ):
        await peer.send(encode_header(BINARY, 100, mask=b"abcd") + b"partial")
        frame = await peer.recv_frame()
        assert (frame.opcode, frame.close_code) == (CLOSE, 1000), frame
        await peer.expect_eof()
