"""The handshake's C accelerator functions and their pure-Python twins, bit for bit.

``parse_request_head`` reads a request head that arrived whole (behind
``handshake.parse_request``, whose own tests check it against ``HTTPReader``);
``websocket_accept`` checks a ``Sec-WebSocket-Key`` and computes the answer to it.
Example cases run against every implementation in :data:`IMPLS`; the differential
property tests compare the C module with the twins directly, whatever
``FULLDUPLEX_NO_SPEEDUPS`` says.
"""

from __future__ import annotations

import base64
import binascii
import gc
import hashlib
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from hypothesis import example, given, settings, strategies as st

from fullduplex.protocol import _accel, _accel_py, handshake
from fullduplex.protocol.handshake import GUID, accept_key, build_response, parse_request

from .strategies import C, mutated_request_heads, needs_c, raw_frame, request_heads

try:
    import _testcapi
except ImportError:
    _testcapi = None


class Impl(NamedTuple):
    name: str
    parse_request_head: Callable[..., Any]
    websocket_accept: Callable[..., Any]


PY = Impl("python", _accel_py.parse_request_head, _accel_py.websocket_accept)
IMPLS = [PY]
if C is not None:
    IMPLS.append(Impl("c", C.parse_request_head, C.websocket_accept))

impls = pytest.mark.parametrize("impl", IMPLS, ids=lambda impl: impl.name)

LIMITS = (8192, 8192, 128)

# benchmarks/loadgen.py request("/", 8765)
BENCH = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8765\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3


def outcome(func: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """("ok", result) or ("error", exception type name)."""
    try:
        return "ok", func(*args)
    except (TypeError, ValueError, OverflowError) as exc:
        return "error", type(exc).__name__


def assert_exact_types(head: Any) -> None:
    """The shape of a parse_request_head result, down to exact types (no subclasses)."""
    assert type(head) is tuple and len(head) == 5
    method, target, items, index, rest = head
    assert type(method) is str and type(target) is str and type(rest) is int
    assert type(items) is list and type(index) is dict
    for pair in items:
        assert type(pair) is tuple and len(pair) == 2
        assert type(pair[0]) is str and type(pair[1]) is str
    for key, values in index.items():
        assert type(key) is str and type(values) is list
        assert all(type(value) is str for value in values)


def both_parse(data: Any, *limits: Any) -> tuple[str, Any]:
    """The C and Python outcomes, which must be equal; returns that outcome."""
    assert C is not None
    got = outcome(C.parse_request_head, data, *limits)
    want = outcome(_accel_py.parse_request_head, data, *limits)
    assert got == want, (data, limits, got, want)
    if got[0] == "ok" and got[1] is not None:
        assert_exact_types(got[1])
        assert_exact_types(want[1])
        # The index lists its names in the order they first appear, like the twin.
        assert list(got[1][3]) == list(want[1][3])
    return got


# --------------------------------------------------------------- the chooser


def test_chooser_exports_both() -> None:
    if _accel.SPEEDUPS:
        assert C is not None
        assert _accel.parse_request_head is C.parse_request_head
        assert _accel.websocket_accept is C.websocket_accept
    else:
        assert _accel.parse_request_head is _accel_py.parse_request_head
        assert _accel.websocket_accept is _accel_py.websocket_accept
    assert handshake.parse_request_head is _accel.parse_request_head
    assert handshake.websocket_accept is _accel.websocket_accept


def test_twin_guid_is_the_rfc_one() -> None:
    assert _accel_py._GUID == GUID.encode()


# ------------------------------------------------------- parse_request_head


@impls
def test_benchmark_request(impl: Impl) -> None:
    head = impl.parse_request_head(BENCH + b"\x81\x00", *LIMITS)
    assert head == (
        "GET",
        "/",
        [
            ("Host", "127.0.0.1:8765"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", RFC_KEY),
            ("Sec-WebSocket-Version", "13"),
        ],
        {
            "host": ["127.0.0.1:8765"],
            "upgrade": ["websocket"],
            "connection": ["Upgrade"],
            "sec-websocket-key": [RFC_KEY],
            "sec-websocket-version": ["13"],
        },
        len(BENCH),
    )
    assert_exact_types(head)


@impls
@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Host", "host"),
        ("host", "host"),
        ("HOST", "host"),
        ("hOsT", "host"),
        ("Sec-Websocket-Key", "sec-websocket-key"),
        ("X-Real-IP", "x-real-ip"),
        ("x-custom", "x-custom"),
        ("X-Custom", "x-custom"),
        ("Hosts", "hosts"),  # a common name's prefix or extension is not it
        ("Hos", "hos"),
        ("!#$%&'*+-.^_`|~09azAZ", "!#$%&'*+-.^_`|~09azaz"),
    ],
)
def test_names_keep_their_spelling_and_index_in_lower_case(impl: Impl, name: str, key: str) -> None:
    data = f"GET / HTTP/1.1\r\n{name}: v\r\n\r\n".encode()
    assert impl.parse_request_head(data, *LIMITS) == (
        "GET",
        "/",
        [(name, "v")],
        {key: ["v"]},
        len(data),
    )


@needs_c
def test_c_shares_strings_for_the_common_names() -> None:
    # The C table and _COMMON_NAMES list the same names; both spellings of each, their
    # keys and "GET" come back as the interned strings handshake.py's literals are.
    for spelling, key in _accel_py._COMMON_NAMES.items():
        data = f"GET / HTTP/1.1\r\n{spelling}: v\r\n\r\n".encode()
        head = C.parse_request_head(data, *LIMITS)
        assert head is not None
        assert head[0] is sys.intern("GET")
        assert head[2][0][0] is sys.intern(spelling)
        assert next(iter(head[3])) is sys.intern(key)


@impls
def test_values_are_stripped_latin1_and_repeats_kept_in_order(impl: Impl) -> None:
    data = (
        b"POST /a?b=c:d HTTP/1.1\r\nX-A: \t one two \t\r\nx-a:\xe9\xff\r\nX-B:\r\n"
        b"X-A:  \r\nX-C: a:b\r\n\r\nrest"
    )
    assert impl.parse_request_head(data, *LIMITS) == (
        "POST",
        "/a?b=c:d",
        [("X-A", "one two"), ("x-a", "\xe9\xff"), ("X-B", ""), ("X-A", ""), ("X-C", "a:b")],
        {"x-a": ["one two", "\xe9\xff", ""], "x-b": [""], "x-c": ["a:b"]},
        len(data) - 4,
    )


@impls
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        BENCH[:-1],  # no final CRLFCRLF
        BENCH[:-2] + b"\n",  # ... a bare LF instead
        b"\r\n" + BENCH,  # an empty line first
        BENCH.replace(b"Host: ", b"Host : "),  # space before the colon
        BENCH.replace(b"\r\nUpgrade", b"\r\n Upgrade"),  # obs-fold
        BENCH.replace(b"\r\nUpgrade", b"\r\n\tUpgrade"),
        BENCH.replace(b"\r\nUpgrade", b"\nUpgrade"),  # bare LF
        BENCH.replace(b"websocket\r", b"websocket"),
        BENCH.replace(b"websocket", b"web\rsocket"),  # bare CR
        BENCH.replace(b"websocket", b"web\x00socket"),
        BENCH.replace(b"websocket", b"web\x1fsocket"),
        BENCH.replace(b"websocket", b"web\x7fsocket"),
        BENCH.replace(b"Upgrade: websocket", b"Upgrade websocket"),  # no colon
        BENCH.replace(b"Upgrade:", b":"),  # empty name
        BENCH.replace(b"Upgrade:", b"Up\xe9grade:"),
        BENCH.replace(b"HTTP/1.1", b"HTTP/1.0"),
        BENCH.replace(b"HTTP/1.1", b"HTTP/1.10"),
        BENCH.replace(b"HTTP/1.1", b"http/1.1"),
        BENCH.replace(b"GET / ", b"GET  / "),
        BENCH.replace(b"GET / ", b"GET /  "),
        BENCH.replace(b"GET / ", b"GET\t/ "),
        BENCH.replace(b"GET / ", b" GET / "),
        BENCH.replace(b"GET / ", b"G(T / "),
        BENCH.replace(b"GET / ", b"GET /\x80 "),
        BENCH.replace(b"GET / ", b"/ "),
        BENCH.replace(b"GET / ", b"GET "),
        b"GET / HTTP/1.1",
        b"GET / HTTP/1.1\r\n",
        b"GET / HTTP/1.1\r\n\r",
        b"GET / HTTP/1.1\r\nA: b\r\n\r",
    ],
)
def test_irregular_heads_are_declined(impl: Impl, data: bytes) -> None:
    assert impl.parse_request_head(data, *LIMITS) is None
    if C is not None:
        both_parse(data, *LIMITS)


@impls
def test_limits_at_their_boundaries(impl: Impl) -> None:
    end = len(BENCH) - 4  # the head's length: a bound on every line's
    for max_line, max_header_size in [(end, end), (end, 2**80), (2**80, end)]:
        assert impl.parse_request_head(BENCH, max_line, max_header_size, 5) is not None
    for max_line, max_header_size in [(end - 1, 8192), (8192, end - 1), (-1, 8192), (-(2**80), 9)]:
        assert impl.parse_request_head(BENCH, max_line, max_header_size, 5) is None
    assert impl.parse_request_head(BENCH, 8192, 8192, 4) is None
    assert impl.parse_request_head(BENCH, 8192, 8192, -(2**80)) is None
    assert impl.parse_request_head(BENCH, 8192, 8192, 2**80) is not None
    no_fields = b"GET / HTTP/1.1\r\n\r\n"
    assert impl.parse_request_head(no_fields, 14, 14, 0) == ("GET", "/", [], {}, 18)
    assert impl.parse_request_head(no_fields, 14, 14, -1) is None
    assert impl.parse_request_head(no_fields, 13, 14, 0) is None


@impls
def test_keywords_and_int_like_limits(impl: Impl) -> None:
    class Limit:
        def __index__(self) -> int:
            return 8192

    want = impl.parse_request_head(BENCH, *LIMITS)
    assert want is not None
    assert impl.parse_request_head(BENCH, Limit(), True + 8191, Limit()) == want
    assert (
        impl.parse_request_head(data=BENCH, max_line=8192, max_header_size=8192, max_headers=5)
        == want
    )


@impls
@pytest.mark.parametrize(
    "args",
    [
        (bytearray(BENCH), *LIMITS),
        (memoryview(BENCH), *LIMITS),
        (BENCH.decode(), *LIMITS),
        (None, *LIMITS),
        (b"", 1.0, 1, 1),
        (BENCH, 8192, None, 1),
        (BENCH, 8192, 8192, "128"),
        (BENCH, 8192, 8192),
        (BENCH, 8192, 8192, 128, 0),
    ],
)
def test_type_errors(impl: Impl, args: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError):
        impl.parse_request_head(*args)


@impls
def test_bytes_subclass_is_bytes(impl: Impl) -> None:
    class Data(bytes):
        pass

    assert impl.parse_request_head(Data(BENCH), *LIMITS) == impl.parse_request_head(BENCH, *LIMITS)


def test_parse_request_is_the_thin_wrapper() -> None:
    parsed = parse_request(BENCH + b"\x81\x00")
    assert parsed is not None
    request, rest = parsed
    assert (request.method, request.path, request.version) == ("GET", "/", "HTTP/1.1")
    assert request.headers.items() == _accel_py.parse_request_head(BENCH, *LIMITS)[2]  # type: ignore[index]
    assert request.headers.get_all("HOST") == ["127.0.0.1:8765"]
    assert rest == b"\x81\x00"
    assert parse_request(BENCH, max_headers=4) is None
    with pytest.raises(TypeError):
        parse_request(bytearray(BENCH))  # type: ignore[arg-type]


limits = st.integers(-2, 300) | st.sampled_from([8192, 2**63 - 1, 2**63, 2**80, -(2**80)])


@needs_c
@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300), limits, limits, limits)
@example(BENCH, *LIMITS)
@example(b"GET / HTTP/1.1\r\n\r\n", 0, 0, 0)
def test_c_equals_python_on_any_bytes(
    data: bytes, max_line: int, max_header_size: int, max_headers: int
) -> None:
    both_parse(data, *LIMITS)
    both_parse(data, max_line, max_header_size, max_headers)
    both_parse(b"GET / HTTP/1.1\r\n" + data, *LIMITS)


@st.composite
def near_limits(draw: st.DrawFn, data: bytes) -> tuple[int, int, int]:
    """Limits around the head's length and field count, where the decision changes."""
    end = data.find(b"\r\n\r\n")
    size = end if end >= 0 else len(data)
    count = data[: max(size, 0)].count(b"\r\n")
    near_size = st.integers(size - 2, size + 2) | st.sampled_from([8192, 0, -1])
    near_count = st.integers(count - 1, count + 1) | st.sampled_from([128, 0, -1])
    return draw(near_size), draw(near_size), draw(near_count)


@needs_c
@settings(max_examples=1000, deadline=None)
@given(request_heads(), st.binary(max_size=12), st.data())
def test_c_equals_python_on_well_formed_heads(
    head: bytes, tail: bytes, data: st.DataObject
) -> None:
    # The strategy's heads are all accepted, and the rest starts right after them.
    got = both_parse(head + tail, *LIMITS)
    assert got[1] is not None and got[1][4] == len(head)
    both_parse(head + tail, *data.draw(near_limits(head)))


@needs_c
@settings(max_examples=1000, deadline=None)
@given(mutated_request_heads(), st.data())
def test_c_equals_python_on_mutated_heads(head: bytes, data: st.DataObject) -> None:
    both_parse(head, *LIMITS)
    both_parse(head, *data.draw(near_limits(head)))


@needs_c
@pytest.mark.skipif(
    _testcapi is None or not hasattr(_testcapi, "set_nomemory"),
    reason="needs _testcapi.set_nomemory",
)
def test_c_memory_errors_at_every_allocation_leak_nothing() -> None:
    """Fail the n-th allocation for every n: MemoryError or the full answer, no leak."""
    heads = [
        b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: \xe9\xe9\r\nHOST: 2\r\nX-B:\r\n\r\n",
        b"POST /y HTTP/1.1\r\nX-Up: v\r\nHoST: w\r\nx-low: \r\n\r\n",
    ]
    wants = [C.parse_request_head(head, *LIMITS) for head in heads]
    names = [sys.intern(s) for s in ("Host", "host", "HOST", "x-a", "GET")]

    def sweep() -> set[str]:
        seen = set()
        for head, want in zip(heads, wants, strict=True):
            for n in range(60):
                _testcapi.set_nomemory(n, n + 1)
                try:
                    got = C.parse_request_head(head, *LIMITS)
                    accepted = C.websocket_accept(RFC_KEY)
                except MemoryError:
                    seen.add("MemoryError")
                    continue
                finally:
                    _testcapi.remove_mem_hooks()
                assert got == want
                assert accepted == RFC_ACCEPT
                seen.add("ok")
        return seen

    assert sweep() == {"MemoryError", "ok"}
    gc.collect()
    refs = [sys.getrefcount(name) for name in names]
    blocks = sys.getallocatedblocks()
    for _ in range(5):
        sweep()
    gc.collect()
    assert [sys.getrefcount(name) for name in names] == refs
    assert sys.getallocatedblocks() - blocks < 10


# --------------------------------------------------------- websocket_accept


def key_is_valid_oracle(key: str) -> bool:
    """What handshake._key_is_valid decided before websocket_accept existed."""
    try:
        return len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (UnicodeEncodeError, binascii.Error):
        return False


def accept_oracle(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode()


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@impls
def test_accept_rfc_vector(impl: Impl) -> None:
    accept = impl.websocket_accept(RFC_KEY)
    assert accept == RFC_ACCEPT and type(accept) is str


@impls
@pytest.mark.parametrize(
    "key",
    [
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",  # one "=" short
        "dGhlIHNhbXBsZSBub25jZQ",  # no padding
        "dGhlIHNhbXBsZSBub25jZQ===",
        "dGhlIHNhbXBsZSBub25jZQ==\n",
        " dGhlIHNhbXBsZSBub25jZQ==",
        "dGhlIHNhbXBsZSBub25jZ===",  # padding one digit early
        "dGhlIHNhbXBsZSBub25jZ=Q=",
        "=GhlIHNhbXBsZSBub25jZQ==",
        "dGhlIHNhbXBsZSBub25jZQAA",  # 18 bytes, no padding
        "dGhlIHNhbXBsZSBub25j",  # 15 bytes
        "dGhlIHNhbXBsZSBub25jZQ-=",
        "dGhlIHNhbXBsZSBub25jZ-_=",  # the URL-safe alphabet
        "dGhlIHNhbXBsZSBub25jZé==",
        "dGhlIHNhbXBsZSBub25jZ\x00==",
        "dGhlIHNhbXBsZSBub25jZ😀=",
        "x" * 24,
        "=" * 24,
    ],
)
def test_accept_refuses_what_is_not_16_bytes_of_base64(impl: Impl, key: str) -> None:
    assert not key_is_valid_oracle(key)
    assert impl.websocket_accept(key) is None


@impls
@pytest.mark.parametrize("key", [None, 16, RFC_KEY.encode(), bytearray(RFC_KEY.encode())])
def test_accept_of_a_non_str_is_none(impl: Impl, key: Any) -> None:
    assert impl.websocket_accept(key) is None


@impls
def test_accept_ignores_the_unused_bits_like_b64decode(impl: Impl) -> None:
    # The last digit before "==" carries 2 bits; b64decode(validate=True) does not
    # insist that the other 4 are zero, so neither do we.
    for last in B64:
        key = "A" * 21 + last + "=="
        assert key_is_valid_oracle(key)
        assert impl.websocket_accept(key) == accept_oracle(key)


@impls
def test_accept_of_a_str_subclass(impl: Impl) -> None:
    class Key(str):
        def __add__(self, other: object) -> str:
            raise AssertionError("not used")

    assert impl.websocket_accept(Key(RFC_KEY)) == RFC_ACCEPT
    assert type(impl.websocket_accept(Key(RFC_KEY))) is str


@impls
def test_accept_argument_errors(impl: Impl) -> None:
    with pytest.raises(TypeError):
        impl.websocket_accept()
    with pytest.raises(TypeError):
        impl.websocket_accept(RFC_KEY, RFC_KEY)
    assert impl.websocket_accept(key=RFC_KEY) == RFC_ACCEPT


@st.composite
def keys(draw: st.DrawFn) -> str:
    """Valid keys, near misses of every kind, and any text."""
    kind = draw(st.sampled_from(["valid", "bits", "length", "edit", "text"]))
    if kind == "valid":
        return base64.b64encode(draw(st.binary(min_size=16, max_size=16))).decode()
    if kind == "bits":
        return draw(st.text(B64, min_size=22, max_size=22)) + "=="
    if kind == "length":
        return base64.b64encode(draw(st.binary(max_size=40))).decode()
    if kind == "edit":
        key = base64.b64encode(draw(st.binary(min_size=16, max_size=16))).decode()
        pos = draw(st.integers(0, len(key)))
        char = draw(st.sampled_from([*"A/+=-_ \n\x00\x7f", "é", "€", "😀", "=="]))
        cut = draw(st.integers(0, 1))
        return key[:pos] + char + key[pos + cut :]
    return draw(st.text(max_size=30))


@needs_c
@settings(max_examples=2000, deadline=None)
@given(keys())
@example(RFC_KEY)
def test_c_equals_python_and_the_oracle_on_keys(key: str) -> None:
    got = outcome(C.websocket_accept, key)
    want = outcome(_accel_py.websocket_accept, key)
    assert got == want
    assert got == ("ok", accept_oracle(key) if key_is_valid_oracle(key) else None)
    if got[1] is not None:
        assert type(got[1]) is str and type(want[1]) is str


@settings(max_examples=500, deadline=None)
@given(keys())
def test_handshake_key_functions_keep_their_behaviour(key: str) -> None:
    # Whichever implementation the chooser picked.
    assert handshake._key_is_valid(key) == key_is_valid_oracle(key)
    if key.isascii():
        assert accept_key(key) == accept_oracle(key)
        assert build_response(key).endswith(
            b"Sec-WebSocket-Accept: %s\r\n\r\n" % accept_oracle(key).encode()
        )
    else:
        with pytest.raises(ValueError):
            accept_key(key)


def test_accept_key_of_anything_ascii_and_not_of_the_rest() -> None:
    assert accept_key(RFC_KEY) == RFC_ACCEPT
    assert accept_key("x" * 24) == accept_oracle("x" * 24)  # not a valid key: still answered
    assert accept_key("") == accept_oracle("")
    with pytest.raises(ValueError):
        accept_key("caf\xe9")
    with pytest.raises(TypeError):
        accept_key(RFC_KEY.encode())  # type: ignore[arg-type]


def test_frames_after_the_head_are_left_alone() -> None:
    frame = raw_frame(0x81, b"Hello", key=b"\x01\x02\x03\x04")
    for impl in IMPLS:
        head = impl.parse_request_head(BENCH + frame, *LIMITS)
        assert head is not None and (BENCH + frame)[head[4] :] == frame
