"""``max_size``: messages over the limit fail with 1009 (RFC 6455 §7.4.1, "a message
that is too big for it to process"), as soon as the size is known to be over: the
server must not buffer the oversized payload first.
"""

from __future__ import annotations

import pytest

from .rawclient import BINARY, CONT, TEXT, encode_frame, encode_header, let_peer_run, raw_client
from .support import assert_echo, echo_server, opcode_name

LIMIT = 1000


def _payload(size: int) -> bytes:
    return (b"0123456789" * (size // 10 + 1))[:size]


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=opcode_name)
async def test_message_of_exactly_max_size_is_echoed(opcode: int) -> None:
    async with echo_server(max_size=LIMIT) as server, raw_client(server.port) as peer:
        await assert_echo(peer, opcode, _payload(LIMIT))


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=opcode_name)
async def test_fragmented_message_of_exactly_max_size_is_echoed(opcode: int) -> None:
    data = _payload(LIMIT)
    async with echo_server(max_size=LIMIT) as server, raw_client(server.port) as peer:
        await peer.send_frames([(opcode, data[:600], False), (CONT, data[600:], True)])
        assert await peer.recv_message() == (opcode, data)


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=opcode_name)
@pytest.mark.parametrize("sent", [0, 1, 500, LIMIT], ids=lambda n: f"sent{n}")
async def test_one_byte_over_in_one_frame_fails_1009_early(opcode: int, sent: int) -> None:
    # Only the header and ``sent`` payload bytes go out: the length says it all.
    frame = encode_frame(opcode, _payload(LIMIT + 1))
    header = len(frame) - (LIMIT + 1)
    async with echo_server(max_size=LIMIT) as server, raw_client(server.port) as peer:
        await assert_echo(peer, opcode, b"fits")
        await peer.send(frame[: header + sent])
        assert await peer.expect_close(1009, reply=False) == []


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=opcode_name)
async def test_huge_declared_length_fails_1009_early(opcode: int) -> None:
    head = encode_header(opcode, 2**40, mask=b"\x01\x02\x03\x04")
    async with echo_server(max_size=LIMIT) as server, raw_client(server.port) as peer:
        await peer.send(head + b"\x01" * 100)
        assert await peer.expect_close(1009, reply=False) == []


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=opcode_name)
@pytest.mark.parametrize("sent", [0, 1, 100], ids=lambda n: f"sent{n}")
async def test_over_max_size_across_fragments_fails_1009_early(opcode: int, sent: int) -> None:
    # 600 bytes accepted so far; the next fragment announces 401 more: 1001 in total.
    data = _payload(LIMIT + 1)
    second = encode_frame(CONT, data[600:], fin=True)
    header = len(second) - 401
    async with echo_server(max_size=LIMIT) as server, raw_client(server.port) as peer:
        await peer.send_frame(opcode, data[:600], fin=False)
        await let_peer_run()
        await peer.send(second[: header + sent])
        assert await peer.expect_close(1009, reply=False) == []


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=opcode_name)
async def test_over_max_size_in_many_small_fragments_fails_1009(opcode: int) -> None:
    # Each fragment is small; only their sum is too big. The last fragment is never
    # sent: the failure may not wait for the end of the message.
    async with echo_server(max_size=LIMIT) as server, raw_client(server.port) as peer:
        frames = [(opcode if i == 0 else CONT, b"x" * 100, False) for i in range(10)]
        await peer.send_frames(frames)  # exactly LIMIT so far, message still open
        await peer.send_frame(CONT, b"y", fin=False)
        assert await peer.expect_close(1009) == []


async def test_max_size_none_accepts_a_message_over_the_default() -> None:
    data = _payload(2**20 + 1)  # one byte over the documented default of 2**20
    async with echo_server(max_size=None) as server, raw_client(server.port) as peer:
        await assert_echo(peer, BINARY, data)


async def test_default_max_size_is_one_mebibyte() -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await assert_echo(peer, BINARY, _payload(2**20))
        await peer.send(encode_header(BINARY, 2**20 + 1, mask=b"abcd") + b"\0" * 10)
        assert await peer.expect_close(1009, reply=False) == []
