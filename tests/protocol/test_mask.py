"""Masking (RFC 6455 §5.3).

Every case takes ``impl`` from :data:`IMPLS`, so a compiled twin of
:func:`apply_mask` is tested by appending it to that list.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings, strategies as st

from fullduplex.protocol.mask import apply_mask

MaskFunc = Callable[..., bytes]

IMPLS: list[MaskFunc] = [apply_mask]

KEY = bytes.fromhex("37fa213d")

impls = pytest.mark.parametrize("impl", IMPLS, ids=lambda f: f"{f.__module__}.{f.__name__}")


def reference_mask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    """The RFC's definition, byte by byte: octet i XOR key octet (i + offset) mod 4."""
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


@impls
def test_rfc_hello_vector(impl: MaskFunc) -> None:
    # RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
    assert impl(b"Hello", KEY) == bytes.fromhex("7f9f4d5158")
    assert impl(bytes.fromhex("7f9f4d5158"), KEY) == b"Hello"


@impls
@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        (b"\x00\x00\x00\x00", b"\x01\x02\x03\x04", b"\x01\x02\x03\x04"),
        (b"\xff" * 6, b"\x0f\xf0\x00\xff", b"\xf0\x0f\xff\x00\xf0\x0f"),
        (b"a", b"\x00\x00\x00\x00", b"a"),
        (b"abcdefghi", b"\x20\x20\x20\x20", b"ABCDEFGHI"),
    ],
)
def test_known_vectors(impl: MaskFunc, data: bytes, key: bytes, expected: bytes) -> None:
    assert impl(data, key) == expected


@impls
def test_empty_input(impl: MaskFunc) -> None:
    assert impl(b"", KEY) == b""
    assert impl(b"", KEY, 3) == b""
    assert impl(bytearray(), KEY) == b""
    assert impl(memoryview(b""), KEY) == b""


@impls
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_buffer_types(impl: MaskFunc, kind: Callable[[bytes], object]) -> None:
    data = bytes(range(37))
    result = impl(kind(data), KEY)
    assert isinstance(result, bytes)
    assert result == reference_mask(data, KEY)


@impls
def test_accepts_memoryview_slice(impl: MaskFunc) -> None:
    data = bytes(range(100))
    view = memoryview(data)[13:61]
    assert impl(view, KEY) == reference_mask(data[13:61], KEY)


@impls
def test_does_not_modify_input(impl: MaskFunc) -> None:
    data = bytearray(b"payload")
    impl(data, KEY)
    assert data == b"payload"


@impls
@pytest.mark.parametrize("length", [*range(0, 18), 63, 64, 65, 1000, 4097])
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4, 5, 7, 1001])
def test_matches_reference_at_every_length_and_offset(
    impl: MaskFunc, length: int, offset: int
) -> None:
    data = bytes((i * 31 + 7) & 0xFF for i in range(length))
    assert impl(data, KEY, offset) == reference_mask(data, KEY, offset)


@impls
@settings(max_examples=150)
@given(data=st.binary(max_size=3000), key=st.binary(min_size=4, max_size=4))
def test_involution(impl: MaskFunc, data: bytes, key: bytes) -> None:
    assert impl(impl(data, key), key) == data


@impls
@settings(max_examples=150)
@given(
    data=st.binary(max_size=3000),
    key=st.binary(min_size=4, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=5),
)
def test_masking_in_pieces_equals_masking_whole(
    impl: MaskFunc, data: bytes, key: bytes, cuts: list[int]
) -> None:
    bounds = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    pieces = [impl(data[start:stop], key, start) for start, stop in itertools.pairwise(bounds)]
    assert b"".join(pieces) == impl(data, key)


@impls
@settings(max_examples=100)
@given(
    data=st.binary(max_size=500), key=st.binary(min_size=4, max_size=4), offset=st.integers(0, 99)
)
def test_matches_reference(impl: MaskFunc, data: bytes, key: bytes, offset: int) -> None:
    assert impl(data, key, offset) == reference_mask(data, key, offset)
