"""The C accelerator and its pure-Python twins: same results, bit for bit.

Example cases run against every implementation in :data:`IMPLS`; the differential
property tests compare the C module with the twins directly, whatever
``FULLDUPLEX_NO_SPEEDUPS`` says (that variable only steers the chooser,
:mod:`fullduplex.protocol._accel`, which has its own tests here).
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from hypothesis import example, given, settings, strategies as st

from fullduplex.protocol import _accel, _accel_py
from fullduplex.protocol.connection import Connection, Side
from fullduplex.protocol.events import Message
from fullduplex.protocol.frames import encode_frame as py_encode_frame
from fullduplex.protocol.mask import apply_mask as py_apply_mask
from fullduplex.protocol.utf8 import Utf8Decoder

from .strategies import BAD_SEQUENCES, C, first_impossible_byte, invalid_utf8, needs_c, raw_frame

REQUIRED = os.environ.get("FULLDUPLEX_REQUIRE_SPEEDUPS", "") not in ("", "0")


class Impl(NamedTuple):
    name: str
    apply_mask: Callable[..., bytes]
    mask_into: Callable[..., None]
    utf8_check: Callable[..., int]
    encode_frame: Callable[..., bytes]
    scan: Callable[..., tuple[int, list[str | bytes]]]


PY = Impl(
    "python",
    py_apply_mask,
    _accel_py.mask_into,
    _accel_py.utf8_check,
    py_encode_frame,
    _accel_py.scan,
)
IMPLS = [PY]
if C is not None:
    IMPLS.append(Impl("c", C.apply_mask, C.mask_into, C.utf8_check, C.encode_frame, C.scan))

impls = pytest.mark.parametrize("impl", IMPLS, ids=lambda impl: impl.name)

KEY = bytes.fromhex("37fa213d")


def reference_mask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    """RFC 6455 §5.3 byte by byte: octet i XOR key octet (i + offset) mod 4."""
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


def random_bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def aligned(data: bytes, align: int) -> memoryview:
    """``data`` as a view starting ``align`` bytes into a fresh buffer (any alignment)."""
    return memoryview(bytes(align) + data)[align:]


# -------------------------------------------------------------- frame soup


def frame_soup() -> st.SearchStrategy[bytes]:
    """Mostly frame-shaped bytes: any first byte, mask or not, lying lengths, garbage."""
    frames = st.builds(
        lambda b0, key, payload, form, lie: raw_frame(
            b0, payload, key=key, length=lie, length_form=form
        ),
        st.integers(0, 255) | st.sampled_from([0x81, 0x82, 0x01, 0x00, 0x80, 0x88, 0x89, 0x8A]),
        st.none() | st.binary(min_size=4, max_size=4),
        st.binary(max_size=200) | invalid_utf8() | st.text(max_size=30).map(str.encode),
        st.none() | st.sampled_from([7, 16, 64]),
        st.none() | st.integers(0, 2**64 - 1) | st.integers(0, 300),
    )
    return st.lists(frames | st.binary(max_size=40), max_size=8).map(b"".join)


# ------------------------------------------------------------------ the chooser


def test_extension_is_loaded_when_required() -> None:
    if not REQUIRED:
        pytest.skip("FULLDUPLEX_REQUIRE_SPEEDUPS is not set")
    assert C is not None, "FULLDUPLEX_REQUIRE_SPEEDUPS is set but the extension is missing"
    assert _accel.SPEEDUPS


def test_chooser_reports_what_it_uses() -> None:
    if _accel.SPEEDUPS:
        assert C is not None
        assert _accel.apply_mask is C.apply_mask
        assert _accel.scan is C.scan
    else:
        assert _accel.apply_mask is py_apply_mask
        assert _accel.utf8_check is _accel_py.utf8_check
        assert _accel.encode_frame is py_encode_frame


def run_chooser(
    env: dict[str, str], block_extension: bool = False
) -> subprocess.CompletedProcess[str]:
    """Import the chooser in a fresh interpreter; print SPEEDUPS."""
    code = ""
    if block_extension:
        code += textwrap.dedent(
            """
            import sys
            class Block:
                def find_spec(self, name, path=None, target=None):
                    if name == "fullduplex._speedups":
                        raise ImportError("blocked for the test")
            sys.meta_path.insert(0, Block())
            """
        )
    code += "from fullduplex.protocol import _accel\nprint(_accel.SPEEDUPS)\n"
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FULLDUPLEX_NO_SPEEDUPS", "FULLDUPLEX_REQUIRE_SPEEDUPS")
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("value", ["1", "yes"])
def test_no_speedups_forces_python(value: str) -> None:
    result = run_chooser({"FULLDUPLEX_NO_SPEEDUPS": value})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@needs_c
@pytest.mark.parametrize("value", ["", "0"])
def test_no_speedups_empty_or_zero_keeps_c(value: str) -> None:
    result = run_chooser({"FULLDUPLEX_NO_SPEEDUPS": value})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_missing_extension_falls_back_quietly() -> None:
    result = run_chooser({}, block_extension=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_require_speedups_fails_loudly_without_extension() -> None:
    result = run_chooser({"FULLDUPLEX_REQUIRE_SPEEDUPS": "1"}, block_extension=True)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "FULLDUPLEX_REQUIRE_SPEEDUPS" in result.stderr


# ---------------------------------------------------------------------- masking


@impls
def test_mask_rfc_vector(impl: Impl) -> None:
    # RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
    assert impl.apply_mask(b"Hello", KEY) == bytes.fromhex("7f9f4d5158")
    assert impl.apply_mask(bytes.fromhex("7f9f4d5158"), KEY) == b"Hello"


@impls
def test_mask_every_length_alignment_and_offset(impl: Impl) -> None:
    data = random_bytes(1, 100)
    for length in range(len(data) + 1):
        for align in range(8):
            view = aligned(data[:length], align)
            for offset in (0, 1, 2, 3, 4, 7, -1, 2**70 + 1):
                expected = reference_mask(data[:length], KEY, offset)
                assert impl.apply_mask(view, KEY, offset) == expected


@impls
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_mask_buffer_types_and_keywords(impl: Impl, kind: Callable[[bytes], Any]) -> None:
    data = bytes(range(41))
    result = impl.apply_mask(data=kind(data), key=KEY, offset=2)
    assert type(result) is bytes
    assert result == reference_mask(data, KEY, 2)
    assert impl.apply_mask(kind(b""), KEY) == b""


@impls
def test_mask_does_not_modify_input(impl: Impl) -> None:
    data = bytearray(b"payload bytes")
    impl.apply_mask(data, KEY)
    assert data == b"payload bytes"


@needs_c
@pytest.mark.parametrize("key", [b"", b"abc", b"abcde"])
def test_c_mask_refuses_bad_keys(key: bytes) -> None:
    assert C is not None
    with pytest.raises(ValueError, match="4 bytes"):
        C.apply_mask(b"data", key)
    with pytest.raises(ValueError, match="4 bytes"):
        C.encode_frame(1, b"data", mask_key=key)


@needs_c
def test_c_argument_errors() -> None:
    assert C is not None
    with pytest.raises(TypeError):
        C.apply_mask(b"x")
    with pytest.raises(TypeError):
        C.apply_mask(b"x", KEY, 0, 1)
    with pytest.raises(TypeError):
        C.apply_mask(b"x", KEY, nonsense=1)
    with pytest.raises(TypeError):
        C.apply_mask(b"x", KEY, data=b"y")
    with pytest.raises(TypeError):
        C.apply_mask("text", KEY)
    with pytest.raises(TypeError):
        C.apply_mask(b"x", KEY, 1.5)
    with pytest.raises(TypeError):
        C.encode_frame(1, b"x", True)  # fin is keyword-only, as in the twin
    with pytest.raises(ValueError):
        C.encode_frame(16, b"x")
    with pytest.raises(TypeError):
        C.scan(bytearray(), 0, 0, True)


@impls
def test_mask_into_region_only(impl: Impl) -> None:
    data = random_bytes(2, 50)
    buf = bytearray(data)
    impl.mask_into(buf, 5, 40, KEY, 3)
    assert buf[:5] == data[:5]
    assert buf[5:40] == reference_mask(data[5:40], KEY, 3)
    assert buf[40:] == data[40:]
    impl.mask_into(buf, 5, 40, KEY, 3)
    assert buf == data
    impl.mask_into(buf, 7, 7, KEY)
    assert buf == data


@impls
@pytest.mark.parametrize(("start", "end"), [(-1, 3), (0, 51), (10, 9), (51, 51)])
def test_mask_into_range_errors(impl: Impl, start: int, end: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        impl.mask_into(bytearray(50), start, end, KEY)


@impls
def test_mask_into_refuses_read_only_buffers_and_bad_keys(impl: Impl) -> None:
    with pytest.raises(BufferError):
        impl.mask_into(b"abcdef", 0, 3, KEY)
    with pytest.raises(ValueError, match="4 bytes"):
        impl.mask_into(bytearray(8), 0, 3, b"abc")


@impls
def test_mask_into_memoryview_of_bytearray(impl: Impl) -> None:
    buf = bytearray(b"\x00" * 12)
    impl.mask_into(memoryview(buf), 0, 12, KEY, 1)
    assert buf == reference_mask(bytes(12), KEY, 1)


@needs_c
@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 70_000) | st.integers(0, 40),
    align=st.integers(0, 7),
    seed=st.integers(0, 2**32),
    key=st.binary(min_size=4, max_size=4),
    offset=st.integers(-(2**70), 2**70) | st.integers(0, 7),
)
def test_c_apply_mask_equals_python(n: int, align: int, seed: int, key: bytes, offset: int) -> None:
    assert C is not None
    data = random_bytes(seed, n)
    assert C.apply_mask(aligned(data, align), key, offset) == py_apply_mask(data, key, offset)


@needs_c
@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 70_000) | st.integers(0, 40),
    seed=st.integers(0, 2**32),
    key=st.binary(min_size=4, max_size=4),
    offset=st.integers(-(2**40), 2**40),
    cut=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_c_mask_into_equals_python(
    n: int, seed: int, key: bytes, offset: int, cut: tuple[float, float]
) -> None:
    assert C is not None
    start, end = sorted(int(c * n) for c in cut)
    data = random_bytes(seed, n)
    a, b = bytearray(data), bytearray(data)
    C.mask_into(a, start, end, key, offset)
    _accel_py.mask_into(b, start, end, key, offset)
    assert a == b
    assert a[start:end] == py_apply_mask(data[start:end], key, offset)


# ------------------------------------------------------------------------ UTF-8


def first_rejected(check: Callable[..., int], data: bytes) -> int | None:
    """Feed ``data`` one byte at a time; the index of the byte that gave -1."""
    state = 0
    for i in range(len(data)):
        state = check(data[i : i + 1], state)
        if state < 0:
            return i
    return None


def decoder_rejects_at(data: bytes) -> int | None:
    """The same index from the reference, :class:`Utf8Decoder`."""
    decoder = Utf8Decoder()
    for i in range(len(data)):
        try:
            decoder.decode(data[i : i + 1])
        except UnicodeDecodeError:
            return i
    return None


def check_pieces(check: Callable[..., int], data: bytes, bounds: list[int]) -> list[int]:
    """States after each piece; stops at the first -1."""
    states = []
    state = 0
    for a, b in itertools.pairwise(bounds):
        state = check(data[a:b], state)
        states.append(state)
        if state < 0:
            break
    return states


@impls
@pytest.mark.parametrize(
    ("data", "state"),
    [
        (b"", 0),
        (b"abc", 0),
        (b"caf\xc3\xa9", 0),
        (b"\xc3", 1),
        (b"\xe2", 2),
        (b"\xe2\x82", 1),
        (b"\xe2\x82\xac", 0),
        (b"\xf1", 3),
        (b"\xf1\x80", 2),
        (b"\xe0", 4),
        (b"\xed", 5),
        (b"\xf0", 6),
        (b"\xf4", 7),
        (b"\xe0\xa0", 1),
        (b"\xed\x9f", 1),
        (b"\xf0\x90", 2),
        (b"\xf4\x8f", 2),
        (b"\xf4\x8f\xbf\xbf", 0),
        (b"\x80", -1),
        (b"\xc0", -1),
        (b"\xc1", -1),
        (b"\xf5", -1),
        (b"\xff", -1),
        (b"\xe0\x9f", -1),
        (b"\xed\xa0", -1),
        (b"\xf0\x8f", -1),
        (b"\xf4\x90", -1),
        (b"\xc2A", -1),
        (b"abc\xed\xa0\x80xyz", -1),
        ("\u07ff\u0800\uffff\U00010000\U0010ffff".encode(), 0),
        (b"x" * 1000 + b"\xf0\x9f\x98", 1),
        (b"x" * 1000 + b"\x80" + b"y" * 1000, -1),
    ],
)
def test_utf8_vectors(impl: Impl, data: bytes, state: int) -> None:
    assert impl.utf8_check(data) == state
    assert impl.utf8_check(bytearray(data)) == state
    assert impl.utf8_check(memoryview(b"#" + data)[1:]) == state


@impls
def test_utf8_state_carries_across_pieces(impl: Impl) -> None:
    check = impl.utf8_check
    assert check(b"\xbf", check(b"\x8f", check(b"\xf4"))) == 1  # F4 8F BF: one more
    assert check(b"\xbf", check(b"\xbf", check(b"\x8f", check(b"\xf4")))) == 0
    assert check(b"\x90", 7) == -1
    assert check(b"\xa9 and more", 1) == 0
    assert check(b"", 5) == 5
    assert check(data=b"\x80", state=1) == 0


@impls
@pytest.mark.parametrize("state", [-1, 8, 2**80])
def test_utf8_refuses_bad_states(impl: Impl, state: int) -> None:
    with pytest.raises(ValueError, match="range"):
        impl.utf8_check(b"x", state)


@impls
@pytest.mark.parametrize("bad", BAD_SEQUENCES)
def test_utf8_first_impossible_byte(impl: Impl, bad: bytes) -> None:
    data = b"ok \xc3\xa9 " + bad + b"."
    index = first_impossible_byte(data)
    assert first_rejected(impl.utf8_check, data) == index == decoder_rejects_at(data)


utf8_inputs = (
    st.binary(max_size=40)
    | invalid_utf8()
    | st.text(max_size=40).map(str.encode)
    | st.lists(
        st.sampled_from([*BAD_SEQUENCES, b"a", "é".encode(), "€".encode(), "😀".encode()])
    ).map(b"".join)
)


@impls
@settings(max_examples=300, deadline=None)
@given(utf8_inputs)
@example(b"\xed\xa0\x80")
@example(b"\xf0\x9f\x98")
def test_utf8_matches_the_reference_and_decode(impl: Impl, data: bytes) -> None:
    # The first impossible byte, fed bytewise, is where the reference fails too.
    index = first_impossible_byte(data)
    assert first_rejected(impl.utf8_check, data) == index == decoder_rejects_at(data)
    # On a complete input: state 0 exactly when bytes.decode accepts it.
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        assert impl.utf8_check(data) != 0
    else:
        assert impl.utf8_check(data) == 0
    # Whole input at once: -1 exactly when some prefix is impossible.
    assert (impl.utf8_check(data) == -1) == (index is not None)


@needs_c
@settings(max_examples=300, deadline=None)
@given(data=utf8_inputs, cuts=st.lists(st.integers(0, 40), max_size=6))
def test_c_utf8_equals_python_in_pieces(data: bytes, cuts: list[int]) -> None:
    assert C is not None
    bounds = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    assert check_pieces(C.utf8_check, data, bounds) == check_pieces(
        _accel_py.utf8_check, data, bounds
    )


def random_text_bytes(seed: int, n: int, ascii_share: float) -> bytes:
    """About ``n`` bytes of valid UTF-8 mixing 1- to 4-byte characters."""
    rng = random.Random(seed)
    out = []
    size = 0
    while size < n:
        if rng.random() < ascii_share:
            cp = rng.randrange(0x80)
        else:
            cp = rng.choice(
                [
                    rng.randrange(0x80, 0x800),
                    rng.randrange(0x800, 0xD800),
                    rng.randrange(0xE000, 0x110000),
                ]
            )
        encoded = chr(cp).encode()
        out.append(encoded)
        size += len(encoded)
    return b"".join(out)


@needs_c
@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 70_000) | st.integers(0, 64),
    seed=st.integers(0, 2**32),
    ascii_share=st.sampled_from([0.0, 0.5, 0.97, 1.0]),
    align=st.integers(0, 7),
    damage=st.none() | st.tuples(st.floats(0, 1), st.sampled_from(BAD_SEQUENCES)),
    cut=st.floats(0, 1),
)
def test_c_utf8_equals_python_long_inputs(
    n: int,
    seed: int,
    ascii_share: float,
    align: int,
    damage: tuple[float, bytes] | None,
    cut: float,
) -> None:
    assert C is not None
    data = random_text_bytes(seed, n, ascii_share)
    if damage is not None:
        where = int(damage[0] * len(data))
        data = data[:where] + damage[1] + data[where:]
    view = aligned(data, align)
    state = C.utf8_check(view)
    assert state == _accel_py.utf8_check(data)
    assert (state == 0) == _decodes(data)
    i = int(cut * len(data))
    c_states = (C.utf8_check(view[:i]), C.utf8_check(view[i:], max(C.utf8_check(view[:i]), 0)))
    py_states = (
        _accel_py.utf8_check(data[:i]),
        _accel_py.utf8_check(data[i:], max(_accel_py.utf8_check(data[:i]), 0)),
    )
    assert c_states == py_states


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@needs_c
def test_c_utf8_every_two_byte_sequence_in_every_state() -> None:
    assert C is not None
    for state in range(8):
        for b1 in range(256):
            for b2 in (0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xF4, 0xFF):
                data = bytes((b1, b2))
                assert C.utf8_check(data, state) == _accel_py.utf8_check(data, state)


# ----------------------------------------------------------------------- frames


@impls
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # RFC 6455 §5.7 examples.
        ({"opcode": 1, "payload": b"Hello"}, "810548656c6c6f"),
        ({"opcode": 1, "payload": b"Hello", "mask_key": KEY}, "818537fa213d7f9f4d5158"),
        ({"opcode": 1, "payload": b"Hel", "fin": False}, "010348656c"),
        ({"opcode": 0, "payload": b"lo"}, "80026c6f"),
        ({"opcode": 9, "payload": b"Hello"}, "890548656c6c6f"),
        ({"opcode": 0xA, "payload": b"Hello", "mask_key": KEY}, "8a8537fa213d7f9f4d5158"),
        ({"opcode": 2, "payload": b"\x00" * 256}, "827e0100" + "00" * 256),
        ({"opcode": 2, "payload": b"\x00" * 65536}, "827f0000000000010000" + "00" * 65536),
        ({"opcode": 1, "payload": b"x", "rsv1": True}, "c10178"),
        ({"opcode": 1, "payload": b"x", "rsv1": True, "fin": False}, "410178"),
        ({"opcode": 8}, "8800"),
        ({"opcode": 8, "mask_key": KEY}, "888037fa213d"),
    ],
)
def test_encode_frame_vectors(impl: Impl, kwargs: dict[str, Any], expected: str) -> None:
    assert impl.encode_frame(**kwargs).hex() == expected


@impls
@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, "8200"),
        (125, "827d"),
        (126, "827e007e"),
        (65535, "827effff"),
        (65536, "827f0000000000010000"),
    ],
)
def test_encode_frame_minimal_lengths(impl: Impl, length: int, header: str) -> None:
    frame = impl.encode_frame(2, bytes(length))
    assert frame[: len(header) // 2].hex() == header
    assert len(frame) == len(header) // 2 + length


@impls
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_encode_frame_buffer_types(impl: Impl, kind: Callable[[bytes], Any]) -> None:
    frame = impl.encode_frame(2, kind(b"abc"), mask_key=KEY)
    assert type(frame) is bytes
    assert frame == bytes.fromhex("8283") + KEY + reference_mask(b"abc", KEY)


@needs_c
@settings(max_examples=300, deadline=None)
@given(
    opcode=st.integers(0, 15),
    n=st.integers(0, 70_000) | st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 65537]),
    seed=st.integers(0, 2**32),
    align=st.integers(0, 7),
    fin=st.booleans() | st.sampled_from([0, 1, None, "", "x"]),
    rsv1=st.booleans() | st.sampled_from([0, 1, None]),
    key=st.none() | st.binary(min_size=4, max_size=4),
)
def test_c_encode_frame_equals_python(
    opcode: int, n: int, seed: int, align: int, fin: object, rsv1: object, key: bytes | None
) -> None:
    assert C is not None
    payload = random_bytes(seed, n)
    expected = py_encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask_key=key)  # type: ignore[arg-type]
    assert (
        C.encode_frame(opcode, aligned(payload, align), fin=fin, rsv1=rsv1, mask_key=key)
        == expected
    )  # type: ignore[arg-type]


# --------------------------------------------------------------------- scanning


def scan_both(buf: bytes, pos: int, end: int, is_client: bool, max_size: int | None) -> list[Any]:
    """Run every implementation on its own copy; check they agree; return one result."""
    results = []
    for impl in IMPLS:
        work = bytearray(buf)
        new_pos, messages = impl.scan(work, pos, end, is_client, max_size)
        # What is not consumed is left as it was.
        assert work[new_pos:] == buf[new_pos:]
        assert work[:pos] == buf[:pos]
        results.append((new_pos, messages))
    for other in results[1:]:
        assert other == results[0]
        for a, b in zip(other[1], results[0][1], strict=True):
            assert type(a) is type(b)
    return results[0]


def frame(b0: int, payload: bytes, is_client: bool, **kwargs: Any) -> bytes:
    """A frame as the peer of ``is_client`` sends it (masked when going to a server)."""
    return raw_frame(b0, payload, key=None if is_client else b"\x01\x02\x03\x04", **kwargs)


@pytest.mark.parametrize("is_client", [True, False], ids=["client", "server"])
def test_scan_takes_whole_data_frames_and_stops_at_anything_else(is_client: bool) -> None:
    good = [
        frame(0x81, "héllo".encode(), is_client),
        frame(0x82, b"\x00\xff" * 100, is_client),
        frame(0x81, b"", is_client),
        frame(0x82, bytes(70_000), is_client),
    ]
    stoppers = [
        frame(0x89, b"ping", is_client),  # control frame
        frame(0x01, b"frag", is_client),  # FIN clear
        frame(0x80, b"cont", is_client),  # continuation
        frame(0xC1, b"rsv1", is_client),  # RSV1
        frame(0x91, b"rsv3", is_client),  # RSV3
        frame(0x83, b"resv", is_client),  # reserved opcode
        frame(0x81, b"\xed\xa0\x80", is_client),  # invalid UTF-8
        frame(0x81, b"ok\xc3", is_client),  # truncated UTF-8
        raw_frame(0x82, b"wrong", key=b"abcd" if is_client else None),  # wrong masking
        frame(0x82, b"", is_client, length=2**63, length_form=64),  # top bit set
    ]
    head = b"".join(good)
    for stopper in stoppers:
        wire = b"--" + head + stopper + b"".join(good)
        new_pos, messages = scan_both(wire, 2, len(wire), is_client, None)
        assert new_pos == 2 + len(head), stopper
        assert messages == ["héllo", b"\x00\xff" * 100, "", bytes(70_000)]
    # Every truncation stops at the last whole frame.
    wire = b"".join(good[:3])
    for end in range(len(wire) + 1):
        new_pos, messages = scan_both(wire, 0, end, is_client, None)
        assert new_pos <= end
        assert len(messages) == sum(1 for i in range(1, 4) if len(b"".join(good[:i])) <= end)


@pytest.mark.parametrize("is_client", [True, False], ids=["client", "server"])
def test_scan_max_size(is_client: bool) -> None:
    wire = frame(0x82, b"12345", is_client) + frame(0x82, b"123456", is_client)
    assert scan_both(wire, 0, len(wire), is_client, 6)[1] == [b"12345", b"123456"]
    assert scan_both(wire, 0, len(wire), is_client, 5)[1] == [b"12345"]
    assert scan_both(wire, 0, len(wire), is_client, 0)[1] == []
    assert scan_both(wire, 0, len(wire), is_client, -1)[1] == []
    assert scan_both(wire, 0, len(wire), is_client, 2**80)[1] == [b"12345", b"123456"]


@pytest.mark.parametrize("is_client", [True, False], ids=["client", "server"])
def test_scan_accepts_non_minimal_lengths(is_client: bool) -> None:
    # The full parser accepts them (RFC 6455 §5.2 says "minimal" for senders).
    wire = frame(0x82, b"ab", is_client, length_form=16) + frame(
        0x81, b"cd", is_client, length_form=64
    )
    assert scan_both(wire, 0, len(wire), is_client, None) == (len(wire), [b"ab", "cd"])


@impls
def test_scan_argument_errors(impl: Impl) -> None:
    with pytest.raises(ValueError, match="out of range"):
        impl.scan(bytearray(4), 3, 2, True, None)
    with pytest.raises(ValueError, match="out of range"):
        impl.scan(bytearray(4), 0, 5, True, None)
    with pytest.raises(ValueError, match="out of range"):
        impl.scan(bytearray(4), -1, 2, True, None)
    with pytest.raises(BufferError):
        impl.scan(b"\x82\x00", 0, 2, True, None)


def parse_with_connection(wire: bytes, is_client: bool) -> list[object]:
    conn = Connection(Side.CLIENT if is_client else Side.SERVER, max_size=None)
    conn.receive_data(wire)
    return conn.events()


@settings(max_examples=400, deadline=None)
@given(
    soup=frame_soup(),
    good=st.lists(
        st.tuples(st.booleans(), st.binary(max_size=300) | st.text(max_size=50).map(str.encode)),
        max_size=5,
    ),
    is_client=st.booleans(),
    max_size=st.none() | st.integers(0, 400),
    pos=st.integers(0, 3),
)
def test_scan_implementations_agree_and_match_the_connection(
    soup: bytes,
    good: list[tuple[bool, bytes]],
    is_client: bool,
    max_size: int | None,
    pos: int,
) -> None:
    lead = b"".join(frame(0x81 if text else 0x82, data, is_client) for text, data in good)
    wire = b"\x00" * pos + lead + soup
    new_pos, messages = scan_both(wire, pos, len(wire), is_client, max_size)
    # Whatever scan takes, the full parser takes the same way.
    events = parse_with_connection(wire[pos:new_pos], is_client)
    assert events == [Message(m) for m in messages]
    if max_size is None:
        assert new_pos >= pos + len(lead) or any(text and not _decodes(data) for text, data in good)


# -------------------------------------------------------------------- Payload

PAYLOADS = [_accel_py.Payload] + ([C.Payload] if C is not None else [])
payload_impls = pytest.mark.parametrize(
    "payload_cls", PAYLOADS, ids=lambda cls: "c" if cls is not _accel_py.Payload else "python"
)


@payload_impls
@pytest.mark.parametrize("key", [None, KEY])
def test_payload_assembles_and_unmasks_pieces(payload_cls: Any, key: bytes | None) -> None:
    data = random_bytes(7, 200_003)
    wire = data if key is None else reference_mask(data, key)
    payload = payload_cls(len(wire), key)
    assert payload.remaining == len(wire)
    # Uneven pieces: key offsets 1, 2, 3 and pieces bigger than the growth step.
    pos = 0
    for size in itertools.cycle([1, 3, 70_001, 2, 130_000]):
        taken = payload.feed(wire[pos : pos + size])
        assert taken == min(size, len(wire) - pos)
        pos += taken
        if not payload.remaining:
            break
    assert payload.take() == data
    assert payload.remaining == 0


@payload_impls
def test_payload_takes_only_what_is_missing_from_start(payload_cls: Any) -> None:
    payload = payload_cls(5, KEY)
    wire = b"head" + reference_mask(b"hello", KEY) + b"next frame"
    assert payload.feed(bytearray(wire), 4) == 5
    assert payload.feed(wire, 9) == 0
    assert payload.take() == b"hello"


@payload_impls
def test_payload_errors(payload_cls: Any) -> None:
    with pytest.raises(ValueError):
        payload_cls(-1)
    with pytest.raises(ValueError):
        payload_cls(4, b"abc")
    payload = payload_cls(4)
    with pytest.raises(ValueError):
        payload.feed(b"ab", 3)
    with pytest.raises(ValueError):
        payload.feed(b"ab", -1)
    assert payload.feed(b"ab") == 2
    with pytest.raises(ValueError, match="not complete"):
        payload.take()
    assert payload.feed(memoryview(b"cdef")) == 2
    assert payload.take() == b"abcd"
    with pytest.raises(ValueError, match="already taken"):
        payload.take()
    with pytest.raises(ValueError, match="already taken"):
        payload.feed(b"x")
    assert payload_cls(0).take() == b""
    with pytest.raises(TypeError):
        payload_cls(4, 4)  # a key is a buffer, never an int


@needs_c
@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=300_000).map(lambda b: b * (1 + 70_000 // (len(b) + 1))),
    key=st.none() | st.binary(min_size=4, max_size=4),
    cuts=st.lists(st.integers(0, 2**20), max_size=8),
    extra=st.integers(0, 5),
)
def test_c_payload_equals_python(
    data: bytes, key: bytes | None, cuts: list[int], extra: int
) -> None:
    # Pieces may run past the payload's end (the next frame's bytes): both must
    # take exactly what is missing and leave the rest.
    wire = data + b"\xff" * extra
    results = []
    for cls in (_accel_py.Payload, C.Payload):
        payload = cls(len(data), key)
        takes = []
        pos = 0
        for bound in sorted({min(c, len(wire)) for c in cuts} | {len(wire)}):
            takes.append(payload.feed(wire[:bound], pos) if bound >= pos else 0)
            pos += takes[-1]
        results.append((takes, payload.remaining, payload.take()))
    assert results[0] == results[1]
    assert results[0][2] == (data if key is None else reference_mask(data, key))
