"""Incremental UTF-8 validation: fail at the first impossible byte (RFC 6455 §8.1)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings, strategies as st

from fullduplex.protocol.utf8 import Utf8Decoder

from .strategies import (
    BAD_SEQUENCES,
    first_impossible_byte,
    invalid_utf8,
    split,
    split_points,
    texts,
)


def feed_bytewise(data: bytes) -> int | None:
    """Feed ``data`` one byte at a time; return the index of the byte that raised."""
    decoder = Utf8Decoder()
    out = []
    for i in range(len(data)):
        try:
            out.append(decoder.decode(data[i : i + 1]))
        except UnicodeDecodeError:
            return i
    return None


# ------------------------------------------------------------------- the oracle


@pytest.mark.parametrize(
    ("data", "index"),
    [
        (b"abc", None),
        (b"\xe2\x82", None),  # truncated, but could still be completed
        (b"\xe2\x82\xac", None),
        (b"a\x80", 1),
        (b"\xc0", 0),
        (b"\xc1\xbf", 0),
        (b"\xc2\x41", 1),
        (b"\xe0\x80", 1),
        (b"\xe0\xa0\x80", None),
        (b"\xed\x9f\xbf", None),
        (b"\xed\xa0", 1),
        (b"\xf0\x8f", 1),
        (b"\xf4\x8f\xbf\xbf", None),
        (b"\xf4\x90", 1),
        (b"\xf5", 0),
        (b"\xff", 0),
        (b"\xf0\x9f\x98A", 3),
    ],
)
def test_oracle(data: bytes, index: int | None) -> None:
    assert first_impossible_byte(data) == index


# ---------------------------------------------------------------- valid input


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello",
        "café",
        "€",
        "\U0001d11e",
        "😀😁",
        "\x00",
        "\u07ff\u0800\uffff\U00010000\U0010ffff",
    ],
)
def test_valid_text_bytewise(text: str) -> None:
    data = text.encode()
    decoder = Utf8Decoder()
    out = "".join(decoder.decode(data[i : i + 1]) for i in range(len(data)))
    out += decoder.decode(b"", True)
    assert out == text


def test_accepts_buffer_types() -> None:
    decoder = Utf8Decoder()
    assert decoder.decode(bytearray(b"caf\xc3")) == "caf"
    assert decoder.decode(memoryview(b"\xa9!"), True) == "é!"


def test_boundary_code_points() -> None:
    for cp in (0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF):
        data = chr(cp).encode()
        assert feed_bytewise(data) is None
        assert Utf8Decoder().decode(data, True) == chr(cp)


# -------------------------------------------------------------- invalid input


@pytest.mark.parametrize("bad", BAD_SEQUENCES)
def test_each_bad_sequence_fails_at_first_impossible_byte(bad: bytes) -> None:
    data = b"ok " + bad + b"."
    index = first_impossible_byte(data)
    assert index is not None
    assert feed_bytewise(data) == index


@pytest.mark.parametrize(
    ("data", "index"),
    [
        (b"\xed\xa0\x80", 1),  # the surrogate is known at its second byte
        (b"\xed\xbf", 1),
        (b"\xf4\x90\x80\x80", 1),  # above U+10FFFF, known at the second byte
        (b"\xe0\x80\xaf", 1),  # overlong, known at the second byte
        (b"\xc0\xaf", 0),
        (b"\xf5", 0),
    ],
)
def test_fails_early_not_at_end(data: bytes, index: int) -> None:
    assert feed_bytewise(data) == index


def test_error_in_one_piece_after_valid_text() -> None:
    decoder = Utf8Decoder()
    assert decoder.decode(b"abc") == "abc"
    with pytest.raises(UnicodeDecodeError):
        decoder.decode(b"d\xed\xa0")


def test_truncated_at_end_fails_only_when_final() -> None:
    decoder = Utf8Decoder()
    assert decoder.decode(b"x\xf0\x9f\x98") == "x"
    with pytest.raises(UnicodeDecodeError):
        decoder.decode(b"", True)


@settings(max_examples=200)
@given(invalid_utf8())
@example(b"\xed\xa0\x80")
@example(b"\xe2\x82A")
def test_inserted_invalid_sequence_fails_at_first_impossible_byte(data: bytes) -> None:
    index = first_impossible_byte(data)
    assert feed_bytewise(data) == index
    if index is None:
        # A truncated sequence at the very end: only the end of the message tells.
        decoder = Utf8Decoder()
        decoder.decode(data)
        with pytest.raises(UnicodeDecodeError):
            decoder.decode(b"", True)


@settings(max_examples=200)
@given(st.binary(max_size=24))
def test_arbitrary_bytes_fail_at_first_impossible_byte(data: bytes) -> None:
    assert feed_bytewise(data) == first_impossible_byte(data)


# ------------------------------------------------------ agreement with decode


@settings(max_examples=200)
@given(st.data())
def test_agrees_with_bytes_decode_on_valid_text(data: st.DataObject) -> None:
    text = data.draw(texts)
    encoded = text.encode()
    decoder = Utf8Decoder()
    pieces = split(encoded, split_points(data.draw, len(encoded)))
    out = "".join(decoder.decode(p) for p in pieces[:-1])
    out += decoder.decode(pieces[-1] if pieces else b"", True)
    assert out == text


@settings(max_examples=200)
@given(st.data())
def test_agrees_with_bytes_decode_on_any_bytes(data: st.DataObject) -> None:
    raw = data.draw(st.binary(max_size=30) | invalid_utf8())
    try:
        expected: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        expected = None
    pieces = split(raw, split_points(data.draw, len(raw)))
    decoder = Utf8Decoder()
    try:
        out = "".join(decoder.decode(p) for p in pieces[:-1])
        out += decoder.decode(pieces[-1] if pieces else b"", True)
    except UnicodeDecodeError:
        assert expected is None
    else:
        assert out == expected
