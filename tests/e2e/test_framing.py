"""Framing over a real socket: sizes, length encodings, TCP segmentation, masking.

RFC 6455 §5.2 (base framing), §5.3 (masking).
"""

from __future__ import annotations

import random
import struct

import pytest

from .rawclient import BINARY, CLOSE, CONT, PING, PONG, TEXT, encode_header, raw_client
from .support import assert_echo, echo_server, opcode_name

MIB = 2**20
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 16 * MIB]
CHOPS = [None, 1, 997, 65536]
MAX_WRITES = 20_000  # a 16 MiB frame in 1-byte pieces would take minutes
# 64 KiB in 1-byte pieces takes seconds: once per length encoding, not four times.
SLOW_ONES = [(TEXT, 65535, 1), (BINARY, 65536, 1)]


def _frame_length(size: int) -> int:
    return 2 + (0 if size < 126 else 2 if size < 65536 else 8) + 4 + size


def _cases() -> list[tuple[int, int, int | None]]:
    cases: list[tuple[int, int, int | None]] = []
    for size in SIZES:
        for chop in CHOPS:
            if chop is not None and chop >= _frame_length(size):
                continue  # same as sending it whole
            if chop is not None and _frame_length(size) // chop > MAX_WRITES:
                continue
            cases += [(TEXT, size, chop), (BINARY, size, chop)]
    return cases + SLOW_ONES


def _case_id(case: tuple[int, int, int | None]) -> str:
    opcode, size, chop = case
    return f"{opcode_name(opcode)}-{size}-{'whole' if chop is None else chop}"


def _payload(opcode: int, size: int) -> bytes:
    if opcode == TEXT:  # 1- to 4-byte characters, so pieces cut through them
        data = ("ascii é € 𝄞 " * (size // 10 + 1)).encode()[:size]
        valid = data.decode(errors="ignore").encode()
        return valid + b"." * (size - len(valid))
    return random.Random(size).randbytes(size)


@pytest.mark.parametrize(("opcode", "size", "chop"), _cases(), ids=list(map(_case_id, _cases())))
async def test_echo_sizes_and_segmentation(opcode: int, size: int, chop: int | None) -> None:
    payload = _payload(opcode, size)
    options = {"max_size": None} if size > MIB else {}
    async with echo_server(**options) as server, raw_client(server.port) as peer:
        await peer.send_frame(opcode, payload, chop=chop)
        parts = []
        while True:
            frame = await peer.recv_frame(timeout=30 if size > MIB else 5)
            # §5.1: a server MUST NOT mask; §5.2: minimal length encoding; no RSV
            # without a negotiated extension.
            assert frame.mask is None, frame
            assert frame.minimal_length, (frame, frame.length_size)
            assert frame.rsv == 0, frame
            assert frame.opcode == (opcode if not parts else CONT), frame
            parts.append(frame.payload)
            if frame.fin:
                break
        echoed = b"".join(parts)
        assert len(echoed) == size
        assert echoed == payload


async def test_many_messages_in_one_write_echo_in_order() -> None:
    messages = [(TEXT if i % 2 else BINARY, f"message {i}".encode() * (i % 7)) for i in range(200)]
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frames((op, payload, True) for op, payload in messages)
        for expected in messages:
            assert await peer.recv_message() == expected


@pytest.mark.parametrize(
    "mask", [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04"], ids=bytes.hex
)
async def test_any_masking_key_is_accepted(mask: bytes) -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(TEXT, "masked with a chosen key", mask=mask)
        assert await peer.recv_message() == (TEXT, b"masked with a chosen key")


@pytest.mark.parametrize(
    ("opcode", "payload"),
    [(TEXT, b"bare"), (BINARY, b"bare"), (BINARY, b""), (PING, b"bare"), (CLOSE, b"\x03\xe8")],
    ids=["text", "binary", "empty-binary", "ping", "close"],
)
async def test_unmasked_client_frame_fails_1002(opcode: int, payload: bytes) -> None:
    # §5.1: "The server MUST close the connection upon receiving a frame that is not
    # masked" ... "a server MAY send a Close frame with a status code of 1002".
    async with echo_server() as server, raw_client(server.port) as peer:
        await assert_echo(peer)
        await peer.send_frame(opcode, payload, mask=None)
        assert await peer.expect_close(1002) == []


async def test_unmasked_continuation_fails_1002() -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(TEXT, "first half, masked", fin=False)
        await peer.send_frame(CONT, "second half, bare", mask=None)
        assert await peer.expect_close(1002) == []


@pytest.mark.parametrize(("size", "length_size"), [(5, 2), (5, 8), (200, 8)])
async def test_non_minimal_length_is_echoed_or_refused_with_1002(
    size: int, length_size: int
) -> None:
    # §5.2 obliges the *sender* to use the minimal encoding; a receiver may be lenient
    # or strict. Either way: the right payload back, or a 1002, never anything else.
    payload = b"x" * size
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(BINARY, payload, length_size=length_size)
        frame = await peer.recv_frame()
        if frame.opcode == CLOSE:
            assert frame.close_code == 1002, frame
        else:
            assert (frame.opcode, frame.payload, frame.fin) == (BINARY, payload, True)
            assert frame.minimal_length, frame


async def test_64_bit_length_with_most_significant_bit_set_fails_1002() -> None:
    # §5.2: "the most significant bit MUST be 0" in a 64-bit payload length.
    header = encode_header(BINARY, 0, mask=b"abcd", length_size=8)
    header = header[:2] + struct.pack("!Q", 2**63 + 5) + header[10:]
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send(header + b"hello")
        assert await peer.expect_close(1002, reply=False) == []


async def test_server_frames_are_never_masked_control_frames_too() -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(PING, b"are you there")
        pong = await peer.recv_frame()
        assert (pong.opcode, pong.payload, pong.mask) == (PONG, b"are you there", None)
        await peer.send_close(1000)
        close = await peer.recv_frame()
        assert close.opcode == CLOSE and close.mask is None, close
