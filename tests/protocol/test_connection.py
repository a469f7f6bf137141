"""The sans-I/O connection: receiving, sending, closing, limits (RFC 6455 §5-§7)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import example, given, settings, strategies as st

from fullduplex.errors import (
    InvalidState,
    InvalidUTF8,
    MessageTooBig,
    PolicyViolation,
    ProtocolError,
)
from fullduplex.protocol import connection as connection_module
from fullduplex.protocol.connection import Connection, Side, State
from fullduplex.protocol.events import CloseReceived, Message, Ping, Pong

from .strategies import (
    Send,
    first_impossible_byte,
    frame_soup,
    invalid_utf8,
    raw_frame,
    seeded_random,
    sends,
    split,
    split_points,
    texts,
)

CLIENT, SERVER = Side.CLIENT, Side.SERVER
SIDES = pytest.mark.parametrize("side", [CLIENT, SERVER], ids=["client", "server"])
KEY = bytes.fromhex("37fa213d")

FIN = 0x80
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


# ------------------------------------------------------------------ helpers


def make(side: Side, **kwargs: object) -> Connection:
    kwargs.setdefault("random_bytes", seeded_random())
    return Connection(side, **kwargs)  # type: ignore[arg-type]


def peer_frame(side: Side, b0: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame as the peer of ``side`` would send it: masked towards a server."""
    key = KEY if side is SERVER else None
    return raw_frame(b0, payload, key=key, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Frame:
    fin: bool
    rsv: int
    opcode: int
    key: bytes | None
    payload: bytes


def read_frames(data: bytes) -> list[Frame]:
    """Parse what a connection wrote, straight from the RFC 6455 §5.2 layout."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        pos += 2
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif n == 127:
            n = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        key = None
        if b1 & 0x80:
            key = data[pos : pos + 4]
            pos += 4
        payload = data[pos : pos + n]
        assert len(payload) == n, "truncated frame"
        pos += n
        if key is not None:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        frames.append(Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, key, payload))
    return frames


def sent(conn: Connection) -> list[Frame]:
    """Drain and parse the frames ``conn`` wants to write, checking their masking."""
    frames = read_frames(b"".join(conn.data_to_send()))
    for frame in frames:
        # RFC 6455 §5.1: a client masks every frame, a server none.
        assert (frame.key is not None) is (conn.side is CLIENT)
    return frames


def close_frame(code: int | None, reason: str = "") -> Frame:
    payload = b"" if code is None else code.to_bytes(2, "big") + reason.encode()
    return Frame(True, 0, CLOSE, None, payload)


def unkeyed(frames: list[Frame]) -> list[Frame]:
    return [Frame(f.fin, f.rsv, f.opcode, None, f.payload) for f in frames]


def assert_failed(conn: Connection, error: type[ProtocolError], code: int) -> None:
    """``conn`` failed with ``error``: close frame with ``code`` queued, reading stopped."""
    assert type(conn.failure) is error
    assert conn.failure.close_code == code
    frames = unkeyed(sent(conn))
    assert frames[-1].opcode == CLOSE
    assert frames[-1].payload[:2] == code.to_bytes(2, "big")
    assert conn.close_sent is not None and conn.close_sent[0] == code
    assert conn.state is State.CLOSING
    if conn.side is SERVER:
        assert conn.eof_wanted
    else:
        assert not conn.eof_wanted
        assert conn.close_expected()
    # Nothing more is read.
    conn.receive_data(peer_frame(conn.side, FIN | TEXT, b"late"))
    assert conn.events() == []
    assert conn.data_to_send() == []


def pump(src: Connection, dst: Connection) -> None:
    for chunk in src.data_to_send():
        dst.receive_data(chunk)


# ------------------------------------------------------------ basic receive


def test_states_use_the_browser_ready_state_numbers() -> None:
    assert [s.value for s in State] == [0, 1, 2, 3]
    assert [s.name for s in State] == ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]
    assert make(CLIENT).state is State.OPEN


@SIDES
def test_events_and_output_are_drained(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | TEXT, b"a") + peer_frame(side, FIN | PING, b"p"))
    assert conn.events() == [Message("a"), Ping(b"p")]
    assert conn.events() == []
    assert len(conn.data_to_send()) == 1
    assert conn.data_to_send() == []


@SIDES
def test_every_opcode(side: Side) -> None:
    conn = make(side)
    wire = b"".join(
        [
            peer_frame(side, FIN | TEXT, "é".encode()),
            peer_frame(side, FIN | BINARY, b"\x00\xff"),
            peer_frame(side, TEXT, b"a"),
            peer_frame(side, CONT, b"b"),
            peer_frame(side, FIN | CONT, b"c"),
            peer_frame(side, BINARY, b"x"),
            peer_frame(side, FIN | CONT, b"y"),
            peer_frame(side, FIN | PING, b"ping"),
            peer_frame(side, FIN | PONG, b"pong"),
            peer_frame(side, FIN | CLOSE, b"\x03\xe8"),
        ]
    )
    conn.receive_data(wire)
    assert conn.failure is None
    assert conn.events() == [
        Message("é"),
        Message(b"\x00\xff"),
        Message("abc"),
        Message(b"xy"),
        Ping(b"ping"),
        Pong(b"pong"),
        CloseReceived(1000, ""),
    ]
    assert unkeyed(sent(conn)) == [
        Frame(True, 0, PONG, None, b"ping"),
        close_frame(1000),
    ]


@SIDES
def test_empty_messages(side: Side) -> None:
    conn = make(side)
    conn.receive_data(
        peer_frame(side, FIN | TEXT)
        + peer_frame(side, FIN | BINARY)
        + peer_frame(side, TEXT)
        + peer_frame(side, FIN | CONT)
        + peer_frame(side, BINARY)
        + peer_frame(side, CONT)
        + peer_frame(side, FIN | CONT)
    )
    assert conn.events() == [Message(""), Message(b""), Message(""), Message(b"")]
    assert conn.failure is None


@SIDES
def test_message_is_delivered_only_when_complete(side: Side) -> None:
    conn = make(side)
    wire = peer_frame(side, TEXT, b"Hel") + peer_frame(side, FIN | CONT, b"lo")
    conn.receive_data(wire[:-1])
    assert conn.events() == []
    conn.receive_data(wire[-1:])
    assert conn.events() == [Message("Hello")]


def test_binary_message_is_bytes_and_text_is_str() -> None:
    conn = make(CLIENT)
    conn.receive_data(
        peer_frame(CLIENT, FIN | BINARY, b"ab") + peer_frame(CLIENT, FIN | TEXT, b"ab")
    )
    binary, text = conn.events()
    assert isinstance(binary, Message) and type(binary.data) is bytes and not binary.is_text
    assert isinstance(text, Message) and type(text.data) is str and text.is_text


@SIDES
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_receive_data_accepts_buffer_types(side: Side, kind: Callable[[bytes], object]) -> None:
    conn = make(side)
    wire = peer_frame(side, TEXT, b"Hel") + peer_frame(side, FIN | CONT, b"lo")
    conn.receive_data(kind(wire[:5]))  # type: ignore[arg-type]
    conn.receive_data(kind(wire[5:]))  # type: ignore[arg-type]
    conn.receive_data(kind(b""))  # type: ignore[arg-type]
    assert conn.events() == [Message("Hello")]


# --------------------------------------------------------------- masking


def test_client_masks_every_frame_with_a_fresh_key() -> None:
    calls: list[int] = []
    stream = bytearray()
    rng = seeded_random(7)

    def random_bytes(n: int) -> bytes:
        calls.append(n)
        chunk = rng(n)
        stream.extend(chunk)
        return chunk

    conn = Connection(CLIENT, random_bytes=random_bytes)
    keys = []
    for i in range(600):
        if i % 3 == 0:
            conn.send_text("x" * (i % 130))
        elif i % 3 == 1:
            conn.send_binary(bytes(i % 70))
        else:
            conn.send_ping(b"p")
        (frame,) = sent(conn)
        assert frame.key is not None
        keys.append(frame.key)
        # Pool refills after every 256 frames, with one call each time.
        assert len(calls) == i // 256 + 1
    # The keys are the random bytes, in order, never reused.
    assert b"".join(keys) == bytes(stream[: 4 * 600])
    assert all(a != b for a, b in itertools.pairwise(keys))
    assert len(set(keys)) == len(keys)


def test_client_payload_is_masked_with_its_key() -> None:
    conn = Connection(CLIENT, random_bytes=lambda n: KEY * (n // 4))
    conn.send_text("Hello")
    # RFC 6455 §5.7, masked "Hello".
    assert conn.data_to_send() == [bytes.fromhex("818537fa213d7f9f4d5158")]


def test_server_never_masks() -> None:
    conn = make(SERVER)
    conn.send_text("Hello")
    conn.send_binary(b"\x01" * 300)
    conn.send_text("a", fin=False)
    conn.send_continuation("b", fin=True)
    conn.send_ping(b"x")
    conn.send_pong(b"y")
    conn.send_close(1000, "bye")
    out = b"".join(conn.data_to_send())
    assert out.startswith(bytes.fromhex("810548656c6c6f"))
    assert all(f.key is None for f in read_frames(out))
    assert len(read_frames(out)) == 7


@pytest.mark.parametrize(
    "b0", [FIN | TEXT, FIN | BINARY, TEXT, FIN | PING, FIN | PONG, FIN | CLOSE]
)
def test_server_fails_unmasked_frames(b0: int) -> None:
    conn = make(SERVER)
    conn.receive_data(raw_frame(b0, b"ab"[: 0 if b0 & 0xF == CLOSE else 2]))
    assert_failed(conn, ProtocolError, 1002)
    assert conn.failure is not None and conn.failure.code == "WS_UNMASKED_CLIENT_FRAME"


@pytest.mark.parametrize(
    "b0", [FIN | TEXT, FIN | BINARY, TEXT, FIN | PING, FIN | PONG, FIN | CLOSE]
)
def test_client_fails_masked_frames(b0: int) -> None:
    conn = make(CLIENT)
    conn.receive_data(raw_frame(b0, b"", key=KEY))
    assert_failed(conn, ProtocolError, 1002)
    assert conn.failure is not None and conn.failure.code == "WS_MASKED_SERVER_FRAME"


def test_server_fails_unmasked_frame_from_its_first_two_bytes() -> None:
    conn = make(SERVER)
    conn.receive_data(b"\x82\x7f")  # the 64-bit length has not arrived yet
    assert_failed(conn, ProtocolError, 1002)


# ------------------------------------------------------ header validation


@SIDES
@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
@pytest.mark.parametrize("fin", [FIN, 0])
def test_reserved_opcodes(side: Side, opcode: int, fin: int) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, fin | opcode, b"x"))
    assert_failed(conn, ProtocolError, 1002)
    assert conn.failure is not None and conn.failure.code == "WS_RESERVED_OPCODE"
    assert conn.events() == []


@SIDES
@pytest.mark.parametrize("opcode", [3, 0xB])
def test_reserved_opcode_inside_fragmented_message(side: Side, opcode: int) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, TEXT, b"a") + peer_frame(side, FIN | opcode))
    assert_failed(conn, ProtocolError, 1002)


@SIDES
@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
@pytest.mark.parametrize("opcode", [TEXT, BINARY, CONT, PING, CLOSE])
def test_reserved_bits(side: Side, rsv: int, opcode: int) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | rsv | opcode))
    assert_failed(conn, ProtocolError, 1002)
    assert conn.failure is not None and conn.failure.code == "WS_RSV_SET"


@SIDES
def test_reserved_bits_fail_before_the_payload(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | 0x40 | BINARY, b"x" * 1000)[:2])
    assert_failed(conn, ProtocolError, 1002)


@SIDES
@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_control_frame_of_125_bytes(side: Side, opcode: int) -> None:
    payload = b"\x03\xe8" + b"r" * 123 if opcode == CLOSE else bytes(range(125))
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | opcode, payload))
    assert conn.failure is None
    (event,) = conn.events()
    if opcode == CLOSE:
        assert event == CloseReceived(1000, "r" * 123)
    else:
        assert event.data == payload  # type: ignore[union-attr]


@SIDES
@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
@pytest.mark.parametrize(("length", "form"), [(126, 16), (127, 64), (200, 16), (5, 16)])
def test_control_frame_over_125_bytes(side: Side, opcode: int, length: int, form: int) -> None:
    conn = make(side)
    # Even a short payload in a 16-bit length field says "126" in the 7-bit one.
    conn.receive_data(peer_frame(side, FIN | opcode, b"\x03\xe8" * (length // 2), length_form=form))
    assert_failed(conn, ProtocolError, 1002)
    assert conn.events() == []


@SIDES
@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_fragmented_control_frame(side: Side, opcode: int) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, opcode))
    assert_failed(conn, ProtocolError, 1002)
    assert conn.failure is not None and conn.failure.code == "WS_FRAGMENTED_CONTROL"


@SIDES
def test_control_frames_between_fragments(side: Side) -> None:
    conn = make(side)
    conn.receive_data(
        peer_frame(side, TEXT, b"caf\xc3")
        + peer_frame(side, FIN | PING, b"1")
        + peer_frame(side, CONT, b"\xa9")
        + peer_frame(side, FIN | PONG, b"2")
        + peer_frame(side, FIN | CONT, b"!")
    )
    assert conn.events() == [Ping(b"1"), Pong(b"2"), Message("café!")]
    assert unkeyed(sent(conn)) == [Frame(True, 0, PONG, None, b"1")]


@SIDES
def test_close_between_fragments(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, TEXT, b"abc") + peer_frame(side, FIN | CLOSE, b"\x03\xe8"))
    assert conn.events() == [CloseReceived(1000, "")]
    assert conn.failure is None


@SIDES
@pytest.mark.parametrize("length", [2**63, 2**64 - 1])
def test_64_bit_length_with_top_bit_set(side: Side, length: int) -> None:
    conn = make(side, max_size=None)
    conn.receive_data(peer_frame(side, FIN | BINARY, length=length, length_form=64))
    assert_failed(conn, ProtocolError, 1002)
    assert conn.failure is not None and conn.failure.code == "WS_BAD_LENGTH"


@SIDES
def test_64_bit_length_just_below_the_top_bit(side: Side) -> None:
    conn = make(side, max_size=None)
    conn.receive_data(peer_frame(side, FIN | BINARY, length=2**63 - 1, length_form=64) + b"abc")
    assert conn.failure is None
    assert conn.events() == []


@SIDES
@pytest.mark.parametrize("fin", [FIN, 0])
def test_continuation_without_a_message(side: Side, fin: int) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, fin | CONT, b"x"))
    assert_failed(conn, ProtocolError, 1002)
    assert conn.failure is not None and conn.failure.code == "WS_UNEXPECTED_CONTINUATION"


@SIDES
def test_continuation_after_a_complete_message(side: Side) -> None:
    conn = make(side)
    conn.receive_data(
        peer_frame(side, TEXT, b"a") + peer_frame(side, FIN | CONT, b"b") + peer_frame(side, CONT)
    )
    assert conn.events() == [Message("ab")]
    assert_failed(conn, ProtocolError, 1002)


@SIDES
@pytest.mark.parametrize("first", [TEXT, BINARY])
@pytest.mark.parametrize("second", [FIN | TEXT, FIN | BINARY, TEXT, BINARY])
def test_new_message_inside_a_fragmented_one(side: Side, first: int, second: int) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, first, b"a") + peer_frame(side, second, b"b"))
    assert_failed(conn, ProtocolError, 1002)
    assert conn.failure is not None and conn.failure.code == "WS_EXPECTED_CONTINUATION"
    assert conn.events() == []


# ---------------------------------------------------------------- sending


def test_send_fragments_with_a_ping_in_between() -> None:
    conn = make(SERVER)
    conn.send_text("Hel", fin=False)
    conn.send_ping(b"!")
    conn.send_continuation("l", fin=False)
    conn.send_continuation(b"o", fin=True)
    conn.send_binary(b"\x00", fin=False)
    conn.send_continuation(bytearray(b"\x01"), fin=False)
    conn.send_continuation(memoryview(b"\x02"), fin=True)
    assert b"".join(conn.data_to_send()) == bytes.fromhex(
        "010348656c89012100016c80016f020100000101800102"
    )


@pytest.mark.parametrize(("sender", "receiver"), [(CLIENT, SERVER), (SERVER, CLIENT)])
def test_sent_fragments_reassemble(sender: Side, receiver: Side) -> None:
    a, b = make(sender), make(receiver)
    a.send_text(b"caf\xc3", fin=False)  # split inside a UTF-8 sequence
    a.send_ping(b"p")
    a.send_continuation(b"\xa9", fin=True)
    a.send_binary(b"x", fin=False)
    a.send_continuation(b"", fin=False)
    a.send_continuation(b"y", fin=True)
    pump(a, b)
    assert b.events() == [Ping(b"p"), Message("café"), Message(b"xy")]
    pump(b, a)
    assert a.events() == [Pong(b"p")]


@SIDES
def test_send_accepts_buffer_types(side: Side) -> None:
    conn = make(side)
    conn.send_text(b"\xc3\xa9")
    conn.send_binary(bytearray(b"ab"))
    conn.send_binary(memoryview(b"abcd")[1:3])
    assert [f.payload for f in sent(conn)] == [b"\xc3\xa9", b"ab", b"bc"]


@SIDES
def test_send_message_picks_text_or_binary_and_keeps_the_rules(side: Side) -> None:
    conn = make(side)
    conn.send_message("é")
    conn.send_message(b"ab")
    conn.send_message(bytearray(b"cd"))
    conn.send_message(memoryview(b"xefx")[1:3])
    conn.send_message(b"L" * LARGE)
    frames = unkeyed(sent(conn))
    assert [(f.opcode, f.payload) for f in frames] == [
        (TEXT, "é".encode()),
        (BINARY, b"ab"),
        (BINARY, b"cd"),
        (BINARY, b"ef"),
        (BINARY, b"L" * LARGE),
    ]
    assert all(f.fin for f in frames)
    conn.send_binary(b"part", fin=False)
    with pytest.raises(InvalidState):
        conn.send_message(b"while fragmented")
    conn.send_continuation(b"end", fin=True)
    conn.send_close()
    with pytest.raises(InvalidState):
        conn.send_message("after close")


@SIDES
def test_continuation_without_a_started_message_is_refused(side: Side) -> None:
    conn = make(side)
    with pytest.raises(InvalidState):
        conn.send_continuation(b"x", fin=True)
    conn.send_text("a")
    with pytest.raises(InvalidState):
        conn.send_continuation(b"x", fin=False)
    conn.send_binary(b"a", fin=False)
    conn.send_continuation(b"b", fin=True)
    with pytest.raises(InvalidState):
        conn.send_continuation(b"c", fin=True)
    assert len(sent(conn)) == 3


@SIDES
@pytest.mark.parametrize("first", ["text", "binary"])
def test_new_message_while_fragmented_is_refused(side: Side, first: str) -> None:
    conn = make(side)
    if first == "text":
        conn.send_text("a", fin=False)
    else:
        conn.send_binary(b"a", fin=False)
    attempts: list[Callable[[], None]] = [
        lambda: conn.send_text("b"),
        lambda: conn.send_text("b", fin=False),
        lambda: conn.send_binary(b"b"),
        lambda: conn.send_binary(b"b", fin=False),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidState):
            attempt()
    conn.send_ping()  # control frames are fine in between
    conn.send_continuation(b"z", fin=True)
    conn.send_text("next")
    assert [f.opcode for f in sent(conn)] == [TEXT if first == "text" else BINARY, PING, CONT, TEXT]


def test_send_prepared() -> None:
    server = make(SERVER)
    frame = server.prepare_frame("Hello")
    assert frame == bytes.fromhex("810548656c6c6f")
    assert server.prepare_frame(b"\x00" * 126) == bytes.fromhex("827e007e") + b"\x00" * 126
    server.send_prepared(frame)
    assert server.data_to_send() == [frame]
    server.send_text("a", fin=False)
    with pytest.raises(InvalidState):
        server.send_prepared(frame)
    server.send_continuation("b", fin=True)
    server.send_close()
    with pytest.raises(InvalidState):
        server.send_prepared(frame)
    client = make(CLIENT)
    with pytest.raises(InvalidState):
        client.send_prepared(frame)


@SIDES
def test_nothing_can_be_sent_after_send_close(side: Side) -> None:
    conn = make(side)
    conn.send_text("a", fin=False)
    conn.send_close(1001, "away")
    assert conn.state is State.CLOSING
    assert conn.close_sent == (1001, "away")
    attempts: list[Callable[[], None]] = [
        lambda: conn.send_text("x"),
        lambda: conn.send_binary(b"x"),
        lambda: conn.send_continuation(b"x", fin=True),
        lambda: conn.send_ping(b"x"),
        lambda: conn.send_pong(b"x"),
        lambda: conn.send_close(),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidState):
            attempt()
    assert unkeyed(sent(conn))[-1] == close_frame(1001, "away")


@SIDES
def test_nothing_can_be_sent_when_closed(side: Side) -> None:
    conn = make(side)
    conn.receive_eof()
    attempts: list[Callable[[], None]] = [
        lambda: conn.send_text("x"),
        lambda: conn.send_binary(b"x"),
        lambda: conn.send_ping(),
        lambda: conn.send_close(),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidState):
            attempt()
    assert conn.data_to_send() == []


@SIDES
@pytest.mark.parametrize("method", ["send_ping", "send_pong"])
def test_control_payload_limit(side: Side, method: str) -> None:
    conn = make(side)
    getattr(conn, method)(b"x" * 125)
    with pytest.raises(ValueError):
        getattr(conn, method)(b"x" * 126)
    assert [f.payload for f in sent(conn)] == [b"x" * 125]


def test_unsolicited_pong_is_sent_as_is() -> None:
    conn = make(SERVER)
    conn.send_pong(b"beat")
    conn.send_pong()
    assert conn.data_to_send() == [b"\x8a\x04beat", b"\x8a\x00"]


# ------------------------------------------------------------- ping / pong


@SIDES
@pytest.mark.parametrize("payload", [b"", b"Hello", bytes(range(125))])
def test_ping_is_answered_with_the_same_payload(side: Side, payload: bytes) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | PING, payload))
    assert conn.events() == [Ping(payload)]
    assert unkeyed(sent(conn)) == [Frame(True, 0, PONG, None, payload)]


def test_server_pong_bytes() -> None:
    conn = make(SERVER)
    conn.receive_data(raw_frame(FIN | PING, b"Hello", key=KEY))
    assert conn.data_to_send() == [bytes.fromhex("8a0548656c6c6f")]


@SIDES
def test_unsolicited_pong_is_an_event_only(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | PONG, b"beat"))
    assert conn.events() == [Pong(b"beat")]
    assert conn.data_to_send() == []


@pytest.mark.parametrize(("sender", "receiver"), [(CLIENT, SERVER), (SERVER, CLIENT)])
def test_ping_round_trip(sender: Side, receiver: Side) -> None:
    a, b = make(sender), make(receiver)
    a.send_ping(b"42")
    pump(a, b)
    assert b.events() == [Ping(b"42")]
    pump(b, a)
    assert a.events() == [Pong(b"42")]


# ------------------------------------------------------------------ UTF-8


@SIDES
@pytest.mark.parametrize(
    "text", ["", "Hello", "café", "€100", "𝄞", "😀 emoji 😁", "\U0010ffff", "mixed é € 𝄞 a"]
)
def test_valid_text_whole_fragmented_and_bytewise(side: Side, text: str) -> None:
    data = text.encode()
    whole = peer_frame(side, FIN | TEXT, data)
    # One fragment per byte: every character boundary and every split inside one.
    pieces = [data[i : i + 1] for i in range(len(data))] or [b""]
    fragmented = b"".join(
        peer_frame(side, (FIN if i == len(pieces) - 1 else 0) | (CONT if i else TEXT), p)
        for i, p in enumerate(pieces)
    )
    for wire in (whole, fragmented):
        conn = make(side)
        conn.receive_data(wire)
        assert conn.events() == [Message(text)]
        conn = make(side)
        for i in range(len(wire)):
            conn.receive_data(wire[i : i + 1])
        assert conn.events() == [Message(text)]
        assert conn.failure is None


@SIDES
@pytest.mark.parametrize("payload", [b"\xed\xa0\x80", b"\xc0\xaf", b"ok\xff", b"\xf4\x90\x80\x80"])
def test_invalid_text_in_one_read(side: Side, payload: bytes) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | TEXT, payload))
    assert_failed(conn, InvalidUTF8, 1007)
    assert conn.events() == []


@SIDES
def test_invalid_binary_is_fine(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | BINARY, b"\xed\xa0\x80\xff"))
    assert conn.events() == [Message(b"\xed\xa0\x80\xff")]


def fragmented_wire(side: Side, payload: bytes, bounds: list[int]) -> tuple[bytes, list[int]]:
    """Frames of a text message split at ``bounds``; and the wire index of each payload byte."""
    wire = bytearray()
    where: list[int] = []
    pieces = split(payload, bounds)
    for i, piece in enumerate(pieces):
        frame = peer_frame(
            side, (FIN if i == len(pieces) - 1 else 0) | (CONT if i else TEXT), piece
        )
        start = len(wire) + len(frame) - len(piece)  # the payload ends the frame
        where.extend(range(start, start + len(piece)))
        wire += frame
    return bytes(wire), where


def failing_index(conn: Connection, wire: bytes) -> int | None:
    """Feed ``wire`` byte by byte; return the index of the byte that failed ``conn``."""
    for i in range(len(wire)):
        conn.receive_data(wire[i : i + 1])
        if conn.failure is not None:
            return i
    return None


@SIDES
@settings(max_examples=120, deadline=None)
@given(data=st.data())
@example(data=None)
def test_utf8_fails_at_the_first_impossible_byte(side: Side, data: st.DataObject | None) -> None:
    """RFC 6455 §8.1: fail as soon as the bytes cannot be UTF-8, within a frame or across."""
    if data is None:  # the surrogate of the brief, split after its first byte
        payload, bounds = b"ab\xed\xa0\x80cd", [0, 3, 7]
    else:
        payload = data.draw(invalid_utf8() | st.binary(max_size=20) | texts.map(str.encode))
        bounds = split_points(data.draw, len(payload), max_cuts=3)
    wire, where = fragmented_wire(side, payload, bounds)
    bad = first_impossible_byte(payload)
    if bad is not None:
        expected: int | None = where[bad]
    else:
        try:
            payload.decode()
        except UnicodeDecodeError:
            expected = len(wire) - 1  # truncated at the end: the final frame's last byte
        else:
            expected = None
    conn = make(side)
    assert failing_index(conn, wire) == expected
    if expected is None:
        assert conn.events() == [Message(payload.decode())]
    else:
        assert conn.events() == []
        assert_failed(conn, InvalidUTF8, 1007)


@SIDES
@pytest.mark.parametrize("tail", [b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98"])
def test_truncated_sequence_fails_at_the_final_frame(side: Side, tail: bytes) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, TEXT, b"ok" + tail))
    conn.receive_data(peer_frame(side, FIN | PING, b"p"))
    conn.receive_data(peer_frame(side, CONT, b""))
    assert conn.failure is None
    assert conn.events() == [Ping(b"p")]
    conn.data_to_send()
    final = peer_frame(side, FIN | CONT, b"")
    conn.receive_data(final[:-1])
    assert conn.failure is None
    conn.receive_data(final[-1:])
    assert_failed(conn, InvalidUTF8, 1007)


@SIDES
def test_invalid_close_reason(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | CLOSE, b"\x03\xe8\xed\xa0\x80"))
    assert_failed(conn, InvalidUTF8, 1007)
    assert conn.events() == []
    assert conn.close_rcvd is None


# ---------------------------------------------------------------- closing


@SIDES
def test_every_close_code(side: Side) -> None:
    valid = {*range(1000, 1004), *range(1007, 1012), *range(3000, 5000)}
    for code in [*range(5001), 65535]:
        conn = make(side)
        conn.receive_data(peer_frame(side, FIN | CLOSE, code.to_bytes(2, "big") + b"why"))
        if code in valid:
            assert conn.failure is None, code
            assert conn.events() == [CloseReceived(code, "why")]
            assert unkeyed(sent(conn)) == [close_frame(code, "why")], code
            assert conn.state is State.CLOSING
            assert conn.close_code == code and conn.close_reason == "why"
            if side is SERVER:
                assert conn.eof_wanted and not conn.close_expected()
            else:
                assert conn.close_expected() and not conn.eof_wanted
        else:
            assert type(conn.failure) is ProtocolError, code
            assert conn.failure.code == "WS_INVALID_CLOSE_CODE"
            assert conn.events() == []
            assert unkeyed(sent(conn)) == [close_frame(1002, conn.failure.reason)], code


@SIDES
def test_close_with_one_byte_payload(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | CLOSE, b"\x03"))
    assert_failed(conn, ProtocolError, 1002)
    assert conn.failure is not None and conn.failure.code == "WS_CLOSE_PAYLOAD_1_BYTE"


@SIDES
def test_empty_close_is_echoed_empty(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | CLOSE))
    assert conn.events() == [CloseReceived(1005, "")]
    assert unkeyed(sent(conn)) == [close_frame(None)]
    assert conn.close_code == 1005
    assert conn.close_reason == ""
    assert conn.close_sent == (None, "")
    assert conn.state is State.CLOSING


@SIDES
def test_data_after_close_is_discarded(side: Side) -> None:
    conn = make(side)
    conn.receive_data(
        peer_frame(side, FIN | TEXT, b"before")
        + peer_frame(side, FIN | CLOSE, b"\x03\xe8")
        + peer_frame(side, FIN | TEXT, b"same read")
        + peer_frame(side, FIN | PING, b"p")
    )
    conn.receive_data(peer_frame(side, FIN | TEXT, b"later") + b"\xff garbage")
    assert conn.events() == [Message("before"), CloseReceived(1000, "")]
    assert unkeyed(sent(conn)) == [close_frame(1000)]
    assert conn.failure is None


@SIDES
def test_after_send_close_pings_are_not_answered_but_data_arrives(side: Side) -> None:
    conn = make(side)
    conn.send_close(1000)
    sent(conn)
    conn.receive_data(
        peer_frame(side, FIN | PING, b"p")
        + peer_frame(side, FIN | TEXT, b"still")
        + peer_frame(side, FIN | CLOSE, b"\x03\xe8")
    )
    assert conn.events() == [Ping(b"p"), Message("still"), CloseReceived(1000, "")]
    assert conn.data_to_send() == []  # no pong, no second close frame
    assert conn.state is State.CLOSING
    assert conn.eof_wanted if side is SERVER else conn.close_expected()
    conn.receive_eof()
    assert conn.was_clean


@SIDES
def test_receive_eof_without_close(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, TEXT, b"half"))
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.eof_received
    assert conn.close_code == 1006
    assert conn.close_reason == ""
    assert conn.was_clean is False
    assert conn.events() == []
    conn.receive_eof()  # idempotent
    conn.receive_data(peer_frame(side, FIN | TEXT, b"x"))
    assert conn.state is State.CLOSED
    assert conn.events() == [] and conn.data_to_send() == []


@SIDES
def test_close_code_is_none_while_open(side: Side) -> None:
    conn = make(side)
    assert conn.state is State.OPEN
    assert conn.close_code is None and conn.close_reason is None
    assert not conn.was_clean and not conn.close_expected() and not conn.eof_wanted


@pytest.mark.parametrize("initiator", [CLIENT, SERVER])
def test_full_closing_handshake(initiator: Side) -> None:
    client, server = make(CLIENT), make(SERVER)
    first, second = (client, server) if initiator is CLIENT else (server, client)
    first.send_close(1000, "done")
    assert first.state is State.CLOSING
    assert not first.eof_wanted and not first.close_expected()
    pump(first, second)
    assert second.events() == [CloseReceived(1000, "done")]
    assert second.state is State.CLOSING
    pump(second, first)
    assert first.events() == [CloseReceived(1000, "done")]
    # RFC 6455 §7.1.1: the server closes TCP first; the client waits for it.
    assert server.eof_wanted and not server.close_expected()
    assert client.close_expected() and not client.eof_wanted
    server.receive_eof()
    client.receive_eof()
    for conn in (client, server):
        assert conn.state is State.CLOSED
        assert conn.was_clean
        assert conn.close_code == 1000
        assert conn.close_reason == "done"


@SIDES
def test_send_close_after_receiving_close_is_refused(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | CLOSE, b"\x0b\xb8"))
    with pytest.raises(InvalidState):
        conn.send_close()


@SIDES
@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535])
def test_send_close_refuses_codes(side: Side, code: int) -> None:
    conn = make(side)
    with pytest.raises(ValueError):
        conn.send_close(code)
    assert conn.state is State.OPEN and conn.data_to_send() == []


@SIDES
def test_send_close_reason_length(side: Side) -> None:
    conn = make(side)
    with pytest.raises(ValueError):
        conn.send_close(1000, "x" * 124)
    with pytest.raises(ValueError):
        conn.send_close(1000, "é" * 62)
    conn.send_close(1000, "x" * 123)
    assert unkeyed(sent(conn)) == [close_frame(1000, "x" * 123)]


@SIDES
@pytest.mark.parametrize("code", [1000, 1001, 1011, 3000, 4999])
def test_send_close_codes(side: Side, code: int) -> None:
    conn = make(side)
    conn.send_close(code)
    assert unkeyed(sent(conn)) == [close_frame(code)]


@SIDES
@pytest.mark.parametrize("code", [1012, 1013, 1014])
def test_codes_a_strict_peer_refuses_are_never_sent(side: Side, code: int) -> None:
    with pytest.raises(ValueError):
        make(side).send_close(code)


@SIDES
def test_send_close_without_code(side: Side) -> None:
    conn = make(side)
    conn.send_close(None)
    assert unkeyed(sent(conn)) == [close_frame(None)]


def test_fail_on_server() -> None:
    conn = make(SERVER)
    conn.fail(1011, "oops")
    assert conn.eof_wanted
    assert not conn.close_expected()
    assert conn.state is State.CLOSING
    assert sent(conn) == [close_frame(1011, "oops")]
    conn.fail(1002)  # twice: harmless, no second close frame
    assert conn.data_to_send() == []
    conn.receive_data(raw_frame(FIN | TEXT, b"x", key=KEY))
    assert conn.events() == []


def test_fail_on_client() -> None:
    conn = make(CLIENT)
    conn.fail(1008)
    assert conn.close_expected()
    assert not conn.eof_wanted
    assert unkeyed(sent(conn)) == [close_frame(1008)]
    conn.fail()
    assert conn.data_to_send() == []
    assert conn.close_expected()


@SIDES
def test_fail_with_1006_sends_nothing(side: Side) -> None:
    conn = make(side)
    conn.fail(1006)
    assert conn.data_to_send() == []
    assert conn.close_sent is None
    assert conn.eof_wanted


@SIDES
def test_fail_after_send_close_sends_nothing_more(side: Side) -> None:
    conn = make(side)
    conn.send_close(1000)
    sent(conn)
    conn.fail(1002)
    assert conn.data_to_send() == []


@SIDES
def test_fail_after_closed_is_a_no_op(side: Side) -> None:
    conn = make(side)
    conn.receive_eof()
    conn.fail()
    assert conn.state is State.CLOSED
    assert conn.data_to_send() == []


@SIDES
def test_fail_truncates_a_long_reason_at_a_character(side: Side) -> None:
    conn = make(side)
    conn.fail(1011, "é" * 100)
    (frame,) = sent(conn)
    assert frame.payload == b"\x03\xf3" + "é".encode() * 61
    assert len(frame.payload) <= 125


@SIDES
def test_receive_eof_after_fail(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | 0x40 | TEXT))
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.close_code == 1006
    assert not conn.was_clean


# ------------------------------------------------------- large frames
#
# Binary frames from 16 KiB up that are still arriving are assembled piece by piece
# (fullduplex.protocol._accel.Payload), fed straight from the reads once the header
# is parsed; these check that path against the same rules as the rest.

LARGE = 16 * 1024


@SIDES
@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    sizes=st.lists(st.sampled_from([LARGE - 1, LARGE, LARGE + 3, 100_000]), min_size=1, max_size=3),
    fragmented=st.booleans(),
)
def test_large_binary_frames_in_any_split(
    side: Side, data: st.DataObject, sizes: list[int], fragmented: bool
) -> None:
    payloads = [bytes(seeded_random(n)(n)) for n in sizes]
    wire = b""
    expected: list[object] = []
    for payload in payloads:
        if fragmented:
            half = len(payload) // 3
            wire += peer_frame(side, BINARY, payload[:half])
            wire += peer_frame(side, FIN | PING, b"between")
            wire += peer_frame(side, FIN | CONT, payload[half:])
            expected += [Ping(b"between"), Message(payload)]
        else:
            wire += peer_frame(side, FIN | BINARY, payload)
            expected.append(Message(payload))
        wire += peer_frame(side, FIN | TEXT, b"after")
        expected.append(Message("after"))
    conn = make(side, max_size=None)
    events: list[object] = []
    for piece in split(wire, split_points(data.draw, len(wire), max_cuts=12)):
        conn.receive_data(piece)
        events += conn.events()
    assert events == expected
    assert conn.failure is None
    # Buffers are empty again, ready for the next frame.
    assert conn._buf == bytearray() and conn._payload is None


@SIDES
def test_large_frame_byte_by_byte_after_its_header(side: Side) -> None:
    payload = bytes(seeded_random(1)(LARGE + 5))
    wire = peer_frame(side, FIN | BINARY, payload) + peer_frame(side, FIN | BINARY, b"x")
    conn = make(side)
    conn.receive_data(wire[:20])
    for i in range(20, len(wire), 997):
        conn.receive_data(wire[i : i + 997])
    assert conn.events() == [Message(payload), Message(b"x")]


@SIDES
def test_failing_during_a_large_frame_drops_it(side: Side) -> None:
    payload = b"y" * (LARGE * 2)
    wire = peer_frame(side, FIN | BINARY, payload)
    conn = make(side)
    conn.receive_data(wire[:LARGE])
    conn.fail(1001, "going away")
    conn.receive_data(wire[LARGE:])
    assert conn.events() == []
    assert conn._payload is None


@SIDES
def test_close_after_a_large_frame_in_the_same_read(side: Side) -> None:
    payload = b"z" * (LARGE * 3)
    wire = peer_frame(side, FIN | BINARY, payload)
    close = peer_frame(side, FIN | CLOSE, (1000).to_bytes(2, "big"))
    conn = make(side)
    conn.receive_data(wire[:100])
    conn.receive_data(wire[100:] + close + peer_frame(side, FIN | BINARY, b"ignored"))
    assert conn.events() == [Message(payload), CloseReceived(1000, "")]


@SIDES
def test_frames_over_the_payload_limit_take_the_piecewise_path(side: Side) -> None:
    payload = bytes(seeded_random(2)(4 * 1024 * 1024 + 1))
    wire = peer_frame(side, FIN | BINARY, payload)
    conn = make(side, max_size=None)
    conn.receive_data(wire[:1000])
    assert conn._payload is None  # nothing reserved for the announced size
    for i in range(1000, len(wire), 300_000):
        conn.receive_data(wire[i : i + 300_000])
    assert conn.events() == [Message(payload)]


@SIDES
def test_out_of_memory_for_a_message_fails_only_this_connection(
    side: Side, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Starved:
        def __init__(self, size: int, key: bytes | None = None) -> None:
            pass

        def feed(self, data: object, start: int = 0) -> int:
            raise MemoryError

    monkeypatch.setattr(connection_module, "Payload", Starved)
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | BINARY, b"m" * LARGE)[: LARGE // 2])
    assert_failed(conn, MessageTooBig, 1009)
    assert conn._payload is None


def test_server_queues_large_bytes_uncopied_and_copies_mutable_buffers() -> None:
    conn = make(SERVER)
    big = b"b" * LARGE
    conn.send_binary(big)
    out = conn.data_to_send()
    assert len(out) == 2 and out[1] is big
    assert read_frames(b"".join(out)) == [Frame(True, 0, BINARY, None, big)]
    mutable = bytearray(big)
    conn.send_binary(mutable)
    mutable[0] = 0  # changed after send: the queued frame must not see it
    assert read_frames(b"".join(conn.data_to_send())) == [Frame(True, 0, BINARY, None, big)]


# -------------------------------------------------------------- max_size


@SIDES
@pytest.mark.parametrize("limit", [0, 5, 125, 126, 65535, 65536])
def test_message_exactly_at_max_size(side: Side, limit: int) -> None:
    conn = make(side, max_size=limit)
    payload = b"x" * limit
    conn.receive_data(peer_frame(side, FIN | BINARY, payload))
    assert conn.events() == [Message(payload)]
    half = limit // 2
    conn.receive_data(
        peer_frame(side, TEXT, payload[:half]) + peer_frame(side, FIN | CONT, payload[half:])
    )
    assert conn.events() == [Message(payload.decode())]
    assert conn.failure is None


@SIDES
@pytest.mark.parametrize("limit", [0, 5, 125, 126, 65535, 65536])
def test_frame_over_max_size_fails_from_its_header(side: Side, limit: int) -> None:
    conn = make(side, max_size=limit)
    header = peer_frame(side, FIN | BINARY, length=limit + 1)
    if side is SERVER:
        header = header[:-4]  # not even the masking key
    conn.receive_data(header)
    assert_failed(conn, MessageTooBig, 1009)


@SIDES
def test_fragments_over_max_size(side: Side) -> None:
    conn = make(side, max_size=10)
    conn.receive_data(peer_frame(side, TEXT, b"x" * 4) + peer_frame(side, CONT, b"x" * 4))
    conn.receive_data(peer_frame(side, FIN | PING, b"p" * 100))  # control frames don't count
    assert conn.failure is None
    assert conn.events() == [Ping(b"p" * 100)]
    conn.receive_data(peer_frame(side, FIN | CONT, length=3)[:2])
    assert_failed(conn, MessageTooBig, 1009)


@SIDES
def test_max_size_applies_per_message(side: Side) -> None:
    conn = make(side, max_size=10)
    for _ in range(3):
        conn.receive_data(
            peer_frame(side, BINARY, b"x" * 6) + peer_frame(side, FIN | CONT, b"y" * 4)
        )
        conn.receive_data(peer_frame(side, FIN | BINARY, b"z" * 10))
    assert conn.failure is None
    assert len(conn.events()) == 6


@SIDES
def test_max_size_none_is_unlimited(side: Side) -> None:
    conn = make(side, max_size=None)
    payload = b"\x01" * (3 * 2**20)
    conn.receive_data(peer_frame(side, FIN | BINARY, payload))
    assert conn.events() == [Message(payload)]
    conn.receive_data(peer_frame(side, FIN | BINARY, length=2**40)[:14])
    assert conn.failure is None


@SIDES
def test_default_max_size_is_one_mebibyte(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | BINARY, length=2**20)[:14])
    assert conn.failure is None
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | BINARY, length=2**20 + 1)[:14])
    assert type(conn.failure) is MessageTooBig


@SIDES
@pytest.mark.parametrize("limit", [1, 2, 5])
def test_max_fragments(side: Side, limit: int) -> None:
    conn = make(side, max_fragments=limit)

    def message(n: int) -> bytes:
        return b"".join(
            peer_frame(side, (FIN if i == n - 1 else 0) | (CONT if i else BINARY), b"f")
            for i in range(n)
        )

    conn.receive_data(message(limit))
    assert conn.events() == [Message(b"f" * limit)]
    conn.receive_data(message(limit + 1))
    assert_failed(conn, PolicyViolation, 1008)
    assert conn.events() == []


# ------------------------------------------------------ property: chunking


def perform(conn: Connection, actions: list[Send]) -> list[object]:
    """Make ``conn`` send ``actions``; return the events the peer should see."""
    expected: list[object] = []
    for action in actions:
        if action.kind == "ping":
            conn.send_ping(action.data)
            expected.append(Ping(action.data))
        elif action.kind == "pong":
            conn.send_pong(action.data)
            expected.append(Pong(action.data))
        else:
            pieces = split(action.data, list(action.cuts))
            start = conn.send_text if action.kind == "text" else conn.send_binary
            pings_after = [(i, data) for i, data in action.pings if i < len(pieces) - 1]
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                if i == 0:
                    start(piece, fin=last)
                else:
                    conn.send_continuation(piece, fin=last)
                for _, ping in (p for p in pings_after if p[0] == i):
                    conn.send_ping(ping)
                    expected.append(Ping(ping))
            expected.append(Message(action.data.decode() if action.kind == "text" else action.data))
    return expected


def feed(side: Side, chunks: list[bytes]) -> tuple[list[object], bytes, Connection]:
    conn = make(side, random_bytes=seeded_random(1))
    events: list[object] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        events.extend(conn.events())
    return events, b"".join(conn.data_to_send()), conn


@pytest.mark.parametrize(("sender", "receiver"), [(CLIENT, SERVER), (SERVER, CLIENT)])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_chunking_invariance(sender: Side, receiver: Side, data: st.DataObject) -> None:
    """Any TCP segmentation of what one side sends gives the other the same events."""
    actions = data.draw(st.lists(sends(), max_size=6))
    close = data.draw(st.booleans())
    a = make(sender, random_bytes=seeded_random(data.draw(st.integers(0, 9))))
    expected = perform(a, actions)
    if close:
        a.send_close(1000, "end")
        expected.append(CloseReceived(1000, "end"))
    wire = b"".join(a.data_to_send())

    whole_events, whole_out, whole = feed(receiver, [wire])
    chunks = split(wire, split_points(data.draw, len(wire), max_cuts=12))
    split_events, split_out, _ = feed(receiver, chunks)
    bytewise_events, bytewise_out, _ = feed(receiver, [wire[i : i + 1] for i in range(len(wire))])

    assert whole.failure is None
    assert whole_events == expected
    assert split_events == expected
    assert bytewise_events == expected
    assert split_out == whole_out == bytewise_out


# ---------------------------------------------------- property: robustness


@SIDES
@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    max_size=st.none() | st.integers(0, 300),
    max_fragments=st.none() | st.integers(1, 4),
)
def test_arbitrary_bytes_never_raise(
    side: Side, data: st.DataObject, max_size: int | None, max_fragments: int | None
) -> None:
    """Whatever arrives, in whatever pieces: events or a failure, never an exception."""
    soup = data.draw(frame_soup(masked=side is SERVER) | st.binary(max_size=300))
    outcomes = []
    splits = [[soup], split(soup, split_points(data.draw, len(soup), max_cuts=10))]
    for chunks in splits:
        conn = make(side, max_size=max_size, max_fragments=max_fragments)
        events = []
        for chunk in chunks:
            conn.receive_data(chunk)
            events.extend(conn.events())
        out = sent(conn)
        for event in events:
            assert isinstance(event, Message | Ping | Pong | CloseReceived)
        if conn.failure is not None:
            assert isinstance(conn.failure, ProtocolError)
            assert unkeyed(out)[-1].opcode == CLOSE
            assert out[-1].payload[:2] == conn.failure.close_code.to_bytes(2, "big")
            assert conn.state is State.CLOSING
        conn.receive_eof()
        assert conn.state is State.CLOSED
        failure = None if conn.failure is None else (type(conn.failure), conn.failure.code)
        outcomes.append((events, failure, unkeyed(out)))
    # And the outcome does not depend on how the bytes were split.
    assert outcomes[0] == outcomes[1]


@SIDES
def test_receive_returns_events_left_waiting_first(side: Side) -> None:
    conn = make(side)
    conn.receive_data(peer_frame(side, FIN | TEXT, b"a"))
    assert conn.receive(peer_frame(side, FIN | BINARY, b"b")) == ["a", b"b"]
    assert conn.receive(peer_frame(side, FIN | PING, b"p")) == [Ping(b"p")]
    assert conn.receive(b"") == []


@SIDES
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_receive_is_receive_data_then_raw_events(side: Side, data: st.DataObject) -> None:
    """``receive`` returns what ``raw_events`` would, including events left waiting."""
    soup = data.draw(frame_soup(masked=side is SERVER) | st.binary(max_size=300))
    chunks = split(soup, split_points(data.draw, len(soup), max_cuts=10))
    drain = data.draw(st.lists(st.booleans(), min_size=len(chunks), max_size=len(chunks)))
    reference, combined = make(side), make(side)
    got: list[object] = []
    want: list[object] = []
    for chunk, now in zip(chunks, drain, strict=True):
        reference.receive_data(chunk)
        if now:
            want.extend(reference.raw_events())
            got.extend(combined.receive(chunk))
        else:
            # Events kept by receive_data come out with the next receive.
            combined.receive_data(chunk)
    want.extend(reference.raw_events())
    got.extend(combined.receive(b""))
    assert got == want
    assert combined.raw_events() == []
    assert sent(combined) == sent(reference)
    assert type(combined.failure) is type(reference.failure)
