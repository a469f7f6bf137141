"""Framing (RFC 6455 §5): byte-exact vectors, length encodings, close payloads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from fullduplex.errors import InvalidUTF8, ProtocolError
from fullduplex.protocol.connection import Connection, Side
from fullduplex.protocol.events import Message, Ping, Pong
from fullduplex.protocol.frames import (
    CloseCode,
    Opcode,
    close_code_receivable,
    close_code_sendable,
    decode_close,
    encode_close,
    encode_frame,
    encode_header,
)

from .strategies import raw_frame

KEY = bytes.fromhex("37fa213d")


def parse(side: Side, wire: bytes) -> list[object]:
    """Feed ``wire`` to a fresh connection of ``side``; return its events."""
    conn = Connection(side, max_size=None)
    conn.receive_data(wire)
    assert conn.failure is None
    return list(conn.events())


# ------------------------------------------------------ RFC 6455 §5.7 vectors


def test_rfc_single_frame_unmasked_text() -> None:
    wire = bytes.fromhex("810548656c6c6f")
    assert encode_frame(Opcode.TEXT, b"Hello") == wire
    assert encode_header(Opcode.TEXT, 5) + b"Hello" == wire
    assert parse(Side.CLIENT, wire) == [Message("Hello")]


def test_rfc_single_frame_masked_text() -> None:
    wire = bytes.fromhex("818537fa213d7f9f4d5158")
    assert encode_frame(Opcode.TEXT, b"Hello", mask_key=KEY) == wire
    assert encode_header(Opcode.TEXT, 5, mask=True) == wire[:2]
    assert parse(Side.SERVER, wire) == [Message("Hello")]


def test_rfc_fragmented_unmasked_text() -> None:
    first = bytes.fromhex("010348656c")
    last = bytes.fromhex("80026c6f")
    assert encode_frame(Opcode.TEXT, b"Hel", fin=False) == first
    assert encode_frame(Opcode.CONT, b"lo") == last
    assert parse(Side.CLIENT, first + last) == [Message("Hello")]


def test_rfc_unmasked_ping() -> None:
    wire = bytes.fromhex("890548656c6c6f")
    assert encode_frame(Opcode.PING, b"Hello") == wire
    conn = Connection(Side.CLIENT, random_bytes=lambda n: KEY * (n // 4))
    conn.receive_data(wire)
    assert conn.events() == [Ping(b"Hello")]
    # The client answers with the masked pong of the RFC's next example.
    assert conn.data_to_send() == [bytes.fromhex("8a8537fa213d7f9f4d5158")]


def test_rfc_masked_pong() -> None:
    wire = bytes.fromhex("8a8537fa213d7f9f4d5158")
    assert encode_frame(Opcode.PONG, b"Hello", mask_key=KEY) == wire
    assert parse(Side.SERVER, wire) == [Pong(b"Hello")]


def test_rfc_256_bytes_binary_unmasked() -> None:
    payload = bytes(range(256))
    header = bytes.fromhex("827e0100")
    assert encode_header(Opcode.BINARY, 256) == header
    assert encode_frame(Opcode.BINARY, payload) == header + payload
    assert parse(Side.CLIENT, header + payload) == [Message(payload)]


def test_rfc_64k_binary_unmasked() -> None:
    payload = bytes(range(256)) * 256
    header = bytes.fromhex("827f0000000000010000")
    assert encode_header(Opcode.BINARY, 65536) == header
    assert encode_frame(Opcode.BINARY, payload) == header + payload
    assert parse(Side.CLIENT, header + payload) == [Message(payload)]


# ---------------------------------------------------------- length encoding


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, "8200"),
        (1, "8201"),
        (125, "827d"),
        (126, "827e007e"),
        (127, "827e007f"),
        (65535, "827effff"),
        (65536, "827f0000000000010000"),
        (2**32, "827f0000000100000000"),
        (2**63 - 1, "827f7fffffffffffffff"),
    ],
)
def test_minimal_length_encoding(length: int, header: str) -> None:
    assert encode_header(Opcode.BINARY, length) == bytes.fromhex(header)
    masked = bytearray(bytes.fromhex(header))
    masked[1] |= 0x80
    assert encode_header(Opcode.BINARY, length, mask=True) == masked


@pytest.mark.parametrize(
    ("kwargs", "b0"),
    [
        ({}, 0x81),
        ({"fin": False}, 0x01),
        ({"rsv1": True}, 0xC1),
        ({"fin": False, "rsv1": True}, 0x41),
    ],
)
def test_first_byte_bits(kwargs: dict[str, bool], b0: int) -> None:
    fin, rsv1 = kwargs.get("fin", True), kwargs.get("rsv1", False)
    assert encode_header(Opcode.TEXT, 0, fin=fin, rsv1=rsv1)[0] == b0
    assert encode_frame(Opcode.TEXT, b"", fin=fin, rsv1=rsv1)[0] == b0


@pytest.mark.parametrize("opcode", list(Opcode))
def test_every_opcode_in_the_header(opcode: Opcode) -> None:
    assert encode_header(opcode, 3) == bytes((0x80 | opcode, 3))


def test_opcode_and_close_code_values() -> None:
    assert [int(op) for op in Opcode] == [0, 1, 2, 8, 9, 10]
    assert {c.name: int(c) for c in CloseCode} == {
        "NORMAL_CLOSURE": 1000,
        "GOING_AWAY": 1001,
        "PROTOCOL_ERROR": 1002,
        "UNSUPPORTED_DATA": 1003,
        "NO_STATUS_RCVD": 1005,
        "ABNORMAL_CLOSURE": 1006,
        "INVALID_DATA": 1007,
        "POLICY_VIOLATION": 1008,
        "MESSAGE_TOO_BIG": 1009,
        "MANDATORY_EXTENSION": 1010,
        "INTERNAL_ERROR": 1011,
        "SERVICE_RESTART": 1012,
        "TRY_AGAIN_LATER": 1013,
        "BAD_GATEWAY": 1014,
        "TLS_HANDSHAKE": 1015,
    }


def test_encode_frame_accepts_buffer_types() -> None:
    for kind in (bytes, bytearray, memoryview):
        assert encode_frame(Opcode.BINARY, kind(b"abc")) == b"\x82\x03abc"
        assert encode_frame(Opcode.BINARY, kind(b"abc"), mask_key=KEY) == raw_frame(
            0x82, b"abc", key=KEY
        )


# ------------------------------------------------------------- round trips


LENGTH_BOUNDARIES = [0, 1, 124, 125, 126, 127, 128, 65534, 65535, 65536, 65537, 70000]


@pytest.mark.parametrize("length", LENGTH_BOUNDARIES)
@pytest.mark.parametrize("side", [Side.CLIENT, Side.SERVER])
def test_round_trip_at_length_boundaries(length: int, side: Side) -> None:
    payload = bytes((i * 7) & 0xFF for i in range(length))
    # The side receiving: a client gets unmasked frames, a server masked ones.
    key = KEY if side is Side.SERVER else None
    wire = encode_frame(Opcode.BINARY, payload, mask_key=key)
    assert wire == raw_frame(0x82, payload, key=key)
    assert parse(side, wire) == [Message(payload)]


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=70000) | st.integers(0, 70000).map(lambda n: b"\xa5" * n),
    key=st.binary(min_size=4, max_size=4),
    text=st.booleans(),
)
def test_round_trip_random_payloads(payload: bytes, key: bytes, text: bool) -> None:
    if text:
        payload = payload.decode("latin-1").encode()  # any bytes, made valid UTF-8
    opcode = Opcode.TEXT if text else Opcode.BINARY
    expected = Message(payload.decode() if text else payload)
    assert parse(Side.CLIENT, encode_frame(opcode, payload)) == [expected]
    assert parse(Side.SERVER, encode_frame(opcode, payload, mask_key=key)) == [expected]


# ---------------------------------------------------------- close payloads


def test_encode_close() -> None:
    assert encode_close() == b""
    assert encode_close(None) == b""
    assert encode_close(1000) == b"\x03\xe8"
    assert encode_close(1001, "bye") == b"\x03\xe9bye"
    assert encode_close(4999, "é") == b"\x13\x87\xc3\xa9"
    assert encode_close(1000, "x" * 123) == b"\x03\xe8" + b"x" * 123


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_encode_close_refuses_codes(code: int) -> None:
    with pytest.raises(ValueError):
        encode_close(code)


def test_encode_close_refuses_long_reasons_and_reason_without_code() -> None:
    with pytest.raises(ValueError):
        encode_close(1000, "x" * 124)
    with pytest.raises(ValueError):
        encode_close(1000, "é" * 62)  # 124 bytes
    with pytest.raises(ValueError):
        encode_close(None, "why")


def test_decode_close() -> None:
    assert decode_close(b"") == (1005, "")
    assert decode_close(b"\x03\xe8") == (1000, "")
    assert decode_close(b"\x0f\xa0caf\xc3\xa9") == (4000, "café")


def test_decode_close_errors() -> None:
    with pytest.raises(ProtocolError) as exc:
        decode_close(b"\x03")
    assert exc.value.close_code == 1002
    with pytest.raises(ProtocolError) as exc:
        decode_close(b"\x03\xed")  # 1005 may not go on the wire
    assert exc.value.close_code == 1002
    with pytest.raises(InvalidUTF8) as utf8_exc:
        decode_close(b"\x03\xe8\xed\xa0\x80")
    assert utf8_exc.value.close_code == 1007


def test_close_code_sets() -> None:
    receivable = {c for c in range(65536) if close_code_receivable(c)}
    assert receivable == {*range(1000, 1004), *range(1007, 1012), *range(3000, 5000)}
    sendable = {c for c in range(65536) if close_code_sendable(c)}
    assert sendable == receivable
