"""``parse_request`` (a request head that arrived whole) against ``HTTPReader``, and the
header index that makes lookups cheap.

The one-pass parser is an optimisation of the incremental reader, so the reader is its
oracle: whenever it returns a request, the reader must return an equal one with the
same leftover bytes; when it declines (``None``), the server falls back to the reader.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from fullduplex.errors import InvalidRequest
from fullduplex.protocol.handshake import (
    Headers,
    HTTPReader,
    Request,
    accept_key,
    build_response,
    check_request,
    parse_request,
)

PLAIN = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"X-Custom:  spaced \t\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

LIMITS = {"max_line": 8192, "max_header_size": 8192, "max_headers": 128}


def reader_result(data: bytes, **limits: int) -> tuple[Request, bytes] | Exception | None:
    reader = HTTPReader("request", **limits)
    try:
        message = reader.feed(data)
    except InvalidRequest as exc:
        return exc
    if message is None:
        return None
    assert isinstance(message, Request)
    return message, reader.leftover


def assert_agrees(data: bytes, **limits: int) -> tuple[Request, bytes] | None:
    """``parse_request`` gives what the reader gives, or declines."""
    fast = parse_request(data, **limits)
    if fast is None:
        return None
    slow = reader_result(data, **limits)
    assert isinstance(slow, tuple), (data, slow)
    request, leftover = fast
    assert (request.method, request.path, request.version) == (
        slow[0].method,
        slow[0].path,
        slow[0].version,
    )
    assert request.headers.items() == slow[0].headers.items()
    assert leftover == slow[1]
    for name, _ in slow[0].headers.items():
        assert request.headers.get_all(name) == slow[0].headers.get_all(name)
    return fast


def test_plain_request_is_read_in_one_pass() -> None:
    parsed = assert_agrees(PLAIN + b"\x81\x05Hello", **LIMITS)
    assert parsed is not None
    request, leftover = parsed
    assert request.path == "/chat?room=1"
    assert request.headers["x-custom"] == "spaced"
    assert request.headers.get_all("HOST") == ["server.example.com"]
    assert leftover == b"\x81\x05Hello"
    assert check_request(request) == "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.mark.parametrize(
    "data",
    [
        PLAIN[:-2],  # incomplete
        PLAIN.replace(b"Host: server", b"Host : server"),  # space before the colon
        PLAIN.replace(b"\r\nUpgrade", b"\r\n Upgrade"),  # obs-fold
        PLAIN.replace(b"\r\nUpgrade", b"\nUpgrade"),  # bare LF
        PLAIN.replace(b"Upgrade: websocket\r", b"Upgrade: websocket"),  # bare LF
        PLAIN.replace(b"websocket\r\n", b"web\rsocket\r\n"),  # bare CR
        PLAIN.replace(b"websocket", b"web\x00socket"),
        PLAIN.replace(b"websocket", b"web\x7fsocket"),
        PLAIN.replace(b"HTTP/1.1", b"HTTP/1.0"),
        PLAIN.replace(b"HTTP/1.1", b"HTTP/2.0"),
        PLAIN.replace(b"GET /chat", b"GET  /chat"),
        PLAIN.replace(b"GET", b"G(T"),
        PLAIN.replace(b"/chat", b"/ch\x80t"),
        PLAIN.replace(b"Origin: http://example.com\r\n", b"Origin\r\n"),
        PLAIN.replace(b"Origin:", b":"),
        PLAIN.replace(b"Origin:", b"Ori\xe9gin:"),
        b"\r\n" + PLAIN,  # an empty line first
    ],
)
def test_irregular_heads_go_to_the_reader(data: bytes) -> None:
    assert parse_request(data, **LIMITS) is None


def test_limits_send_the_head_to_the_reader() -> None:
    assert parse_request(PLAIN, **{**LIMITS, "max_headers": 6}) is None
    assert_agrees(PLAIN, **{**LIMITS, "max_headers": 7})
    assert parse_request(PLAIN, **{**LIMITS, "max_line": 20}) is None
    assert parse_request(PLAIN, **{**LIMITS, "max_header_size": 30}) is None
    # The reader decides: here it refuses, with the precise status.
    slow = reader_result(PLAIN, **{**LIMITS, "max_headers": 6})
    assert isinstance(slow, InvalidRequest) and slow.status == 431


def test_any_other_method_and_repeated_fields_are_kept() -> None:
    data = PLAIN.replace(b"GET", b"POST").replace(b"Origin:", b"Upgrade:")
    parsed = assert_agrees(data, **LIMITS)
    assert parsed is not None
    assert parsed[0].method == "POST"
    assert parsed[0].headers.get_all("upgrade") == ["websocket", "http://example.com"]


# Pieces to build heads from, mostly regular so that both outcomes are common.
def mostly(regular: list[str], irregular: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(regular * (12 * len(irregular)) + irregular)


_NAMES = mostly(
    ["Host", "host", "Upgrade", "Connection", "Sec-WebSocket-Key", "X-A", "x_b!~"],
    ["", "A B", "Bad(", "Ünï", " Host", "\tX"],
)
_GOOD_VALUES = st.text(alphabet=st.sampled_from(list('aZ09 \t:,;=/"é\x80')), max_size=12)
_BAD_VALUES = st.text(alphabet=st.sampled_from(list("a \x00\x01\x7f\r\n")), max_size=6)
_VALUES = st.one_of(*[_GOOD_VALUES] * 9, _BAD_VALUES)
_SEPARATORS = mostly([":", ": "], [" :", "", "::"])
_EOLS = mostly(["\r\n"], ["\n", "\r"])


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    method = draw(mostly(["GET"], ["POST", "G@T", ""]))
    target = draw(mostly(["/", "/a?b=c"], ["", "/a b", "/\x7f", "*"]))
    version = draw(mostly(["HTTP/1.1"], ["HTTP/1.0", "HTTP/2.0", "HTTP/11"]))
    space = draw(mostly([" "], ["  ", "\t"]))
    lines = [f"{method}{space}{target} {version}"]
    for _ in range(draw(st.integers(0, 6))):
        name, sep, value = draw(_NAMES), draw(_SEPARATORS), draw(_VALUES)
        lines.append(f"{name}{sep}{value}")
    eols = [draw(_EOLS) for _ in lines]
    text = "".join(line + eol for line, eol in zip(lines, eols, strict=True))
    end = draw(mostly(["\r\n"], ["\n", ""]))
    tail = draw(st.binary(max_size=8))
    return text.encode("latin-1", "replace") + end.encode() + tail


@settings(max_examples=600, deadline=None)
@given(
    heads(),
    st.integers(0, 80),
    st.integers(0, 80),
    st.integers(0, 8),
)
def test_one_pass_agrees_with_the_reader(
    data: bytes, max_line: int, max_header_size: int, max_headers: int
) -> None:
    assert_agrees(data, **LIMITS)
    assert_agrees(data, max_line=max_line, max_header_size=max_header_size, max_headers=max_headers)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_one_pass_agrees_with_the_reader_on_any_bytes(data: bytes) -> None:
    assert_agrees(data, **LIMITS)
    assert_agrees(b"GET / HTTP/1.1\r\n" + data, **LIMITS)


# --------------------------------------------------------------------- the index


def test_lookups_follow_every_change() -> None:
    headers = Headers([("Host", "a"), ("X", "1")])
    assert headers.get_all("x") == ["1"]
    headers.add("x", "2")
    assert headers.get_all("X") == ["1", "2"]
    headers["X"] = "3"
    assert headers.get_all("x") == ["3"] and headers["x"] == "3"
    del headers["x"]
    assert "x" not in headers and headers.get("x") is None
    with pytest.raises(KeyError):
        headers["x"]
    headers["New"] = "v"
    assert headers["new"] == "v" and len(headers) == 2


def test_get_all_returns_a_copy() -> None:
    request, _ = parse_request(PLAIN) or pytest.fail("not parsed")
    request.headers.get_all("Host").append("evil")
    assert request.headers.get_all("host") == ["server.example.com"]


def test_headers_from_the_one_pass_parser_change_like_any_other() -> None:
    request, _ = parse_request(PLAIN) or pytest.fail("not parsed")
    headers = request.headers
    headers.add("Host", "b")
    assert headers.get_all("host") == ["server.example.com", "b"]
    assert headers == Headers(headers.items())


# ------------------------------------------------------------------- the response


def test_the_plain_101_is_the_general_one() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert build_response(key) == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
    )
    assert build_response(key) == build_response(key, extra_headers=iter(()))
    with pytest.raises(ValueError):
        build_response("clé")
