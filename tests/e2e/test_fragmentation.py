"""Fragmented messages. RFC 6455 §5.4.

A message is a first frame (text or binary) with FIN=0, any number of continuation
frames (opcode 0), and a last one with FIN=1; control frames may be injected between
fragments; fragments of different messages must not be interleaved.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from .rawclient import BINARY, CONT, PING, PONG, TEXT, encode_frame, raw_client
from .support import CloseRecorder, assert_echo, echo_server, opcode_name

TEXT_MESSAGE = "fragments: κόσμε, 日本語, 𣎴, and plain ASCII".encode()


def _split(payload: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``payload`` into pieces of the given sizes; the last piece takes the rest."""
    pieces, pos = [], 0
    for size in sizes:
        pieces.append(payload[pos : pos + size])
        pos += size
    pieces.append(payload[pos:])
    return pieces


def _fragments(opcode: int, pieces: list[bytes]) -> list[tuple[int, bytes, bool]]:
    last = len(pieces) - 1
    return [(opcode if i == 0 else CONT, piece, i == last) for i, piece in enumerate(pieces)]


SPLITS = {
    "2": [10],
    "3": [5, 5],
    "empty-first": [0],
    "empty-last": [len(TEXT_MESSAGE)],
    "empty-middle": [7, 0, 0, 3],
    "all-empty-but-one": [0, 0, len(TEXT_MESSAGE), 0],
    "bytewise": [1] * (len(TEXT_MESSAGE) - 1),
}


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=opcode_name)
@pytest.mark.parametrize("split", list(SPLITS))
async def test_fragmented_message_is_echoed_as_one(opcode: int, split: str) -> None:
    frames = _fragments(opcode, _split(TEXT_MESSAGE, SPLITS[split]))
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frames(frames)
        assert await peer.recv_message() == (opcode, TEXT_MESSAGE)
        await assert_echo(peer)


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=opcode_name)
async def test_empty_message_in_empty_fragments(opcode: int) -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frames(_fragments(opcode, [b"", b"", b""]))
        assert await peer.recv_message() == (opcode, b"")


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=opcode_name)
async def test_fragments_sent_separately_each_in_chops(opcode: int) -> None:
    payload = bytes(range(0x20, 0x7F)) * 700  # 66,500 bytes: a 64-bit length fragment
    async with echo_server() as server, raw_client(server.port) as peer:
        for op, piece, fin in _fragments(opcode, _split(payload, [100, 65536, 0])):
            await peer.send(encode_frame(op, piece, fin=fin), chop=997)
        assert await peer.recv_message() == (opcode, payload)


async def test_text_split_inside_every_multibyte_sequence() -> None:
    # §5.6 / §8.1: UTF-8 validity is a property of the whole message, so a fragment
    # boundary may fall inside a code point.
    async with echo_server() as server, raw_client(server.port) as peer:
        for cut in range(len(TEXT_MESSAGE) + 1):
            await peer.send_frames(_fragments(TEXT, _split(TEXT_MESSAGE, [cut])))
            assert await peer.recv_message() == (TEXT, TEXT_MESSAGE), f"cut at {cut}"


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=opcode_name)
@pytest.mark.parametrize("same_write", [True, False], ids=["one-write", "frame-by-frame"])
async def test_pings_between_fragments_are_answered(opcode: int, same_write: bool) -> None:
    # §5.4: "An endpoint MUST be capable of handling control frames in the middle of a
    # fragmented message." §5.5.3: a pong answers each ping "as soon as is practical",
    # so both pongs come before the echo, which needs the last fragment.
    frames = [
        (opcode, b"frag-1 ", False),
        (PING, b"ping-1", True),
        (CONT, b"frag-2 ", False),
        (PING, b"ping-2", True),
        (PONG, b"unsolicited", True),
        (CONT, b"frag-3", True),
    ]
    async with echo_server() as server, raw_client(server.port) as peer:
        if same_write:
            await peer.send_frames(frames)
        else:
            for op, payload, fin in frames:
                await peer.send_frame(op, payload, fin=fin)
        for expected in (b"ping-1", b"ping-2"):
            pong = await peer.recv_frame()
            assert (pong.opcode, pong.payload) == (PONG, expected)
        assert await peer.recv_message() == (opcode, b"frag-1 frag-2 frag-3")


async def test_ping_answered_while_message_is_still_open() -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(TEXT, "open ", fin=False)
        await peer.send_frame(PING, b"still there?")
        pong = await peer.recv_frame()  # answered before the message is complete
        assert (pong.opcode, pong.payload) == (PONG, b"still there?")
        await peer.send_frame(CONT, "and closed")
        assert await peer.recv_message() == (TEXT, b"open and closed")


@pytest.mark.parametrize("fin", [True, False], ids=["fin", "no-fin"])
@pytest.mark.parametrize("payload", [b"", b"orphan"], ids=["empty", "payload"])
async def test_continuation_without_a_start_fails_1002(fin: bool, payload: bytes) -> None:
    # §5.4: a continuation frame only continues a message that was started.
    async with echo_server() as server, raw_client(server.port) as peer:
        await assert_echo(peer)
        await peer.send_frame(CONT, payload, fin=fin)
        assert await peer.expect_close(1002) == []


async def test_continuation_after_a_finished_message_fails_1002() -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frames([(TEXT, b"complete", True)])
        assert await peer.recv_message() == (TEXT, b"complete")
        await peer.send_frame(CONT, b"too late")
        assert await peer.expect_close(1002) == []


@pytest.mark.parametrize("first", [TEXT, BINARY], ids=opcode_name)
@pytest.mark.parametrize("second", [TEXT, BINARY], ids=opcode_name)
@pytest.mark.parametrize("fin", [True, False], ids=["fin", "no-fin"])
async def test_new_message_while_fragmented_one_is_open_fails_1002(
    first: int, second: int, fin: bool
) -> None:
    # §5.4: "the fragments of one message MUST NOT be interleaved between the
    # fragments of another message unless an extension has been negotiated".
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(first, b"open", fin=False)
        await peer.send_frame(second, b"intruder", fin=fin)
        assert await peer.expect_close(1002) == []


@pytest.mark.parametrize("code", [1000, 4000])
async def test_close_between_fragments_is_honoured(code: int) -> None:
    # §5.5.1 / §5.4: a close frame may come between fragments; the endpoint answers it
    # (the unfinished message is dropped) and then closes TCP.
    recorder = CloseRecorder()
    async with echo_server(recorder) as server, raw_client(server.port) as peer:
        await peer.send_frame(TEXT, "never finished", fin=False)
        await peer.send_close(code, "bye")
        assert await peer.expect_close(code, reply=False) == []
        code_seen, reason_seen, _ = await recorder.result()
        assert (code_seen, reason_seen) == (code, "bye")


async def _roundtrip(opcode: int, payload: bytes, cuts: list[int], chop: int | None) -> None:
    frames = _fragments(opcode, _split(payload, cuts))
    wire = b"".join(encode_frame(op, piece, fin=fin) for op, piece, fin in frames)
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send(wire, chop=chop)
        got = await peer.recv_message()
        assert got == (opcode, payload)


@st.composite
def _messages(draw: st.DrawFn) -> tuple[int, bytes, list[int], int | None]:
    if draw(st.booleans()):
        opcode, payload = TEXT, draw(st.text(max_size=300)).encode()
    else:
        opcode, payload = BINARY, draw(st.binary(max_size=3000))
    cuts = draw(st.lists(st.integers(0, len(payload)), max_size=8))
    chop = draw(st.one_of(st.none(), st.integers(1, 4096)))
    if chop is not None and (len(payload) + 14 * (len(cuts) + 1)) // chop > 500:
        chop = None  # keep each example cheap
    return opcode, payload, cuts, chop


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messages())
def test_any_fragmentation_and_segmentation_echoes_the_message(
    case: tuple[int, bytes, list[int], int | None],
) -> None:
    opcode, payload, cuts, chop = case
    asyncio.run(asyncio.wait_for(_roundtrip(opcode, payload, cuts, chop), 10))
