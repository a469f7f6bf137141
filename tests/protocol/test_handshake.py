"""Tests of the sans-I/O opening handshake (RFC 6455 §1.3, §4; RFC 9110/9112)."""

from __future__ import annotations

import ast
import base64
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from fullduplex.errors import InvalidRequest, InvalidResponse, InvalidStatus
from fullduplex.protocol import handshake
from fullduplex.protocol.handshake import (
    GUID,
    Headers,
    HTTPReader,
    Request,
    Response,
    accept_key,
    build_error_response,
    build_extensions,
    build_http_response,
    build_request,
    build_response,
    check_request,
    check_response,
    generate_key,
    parse_extensions,
    parse_subprotocols,
    parse_token_list,
    select_subprotocol,
)

# RFC 6455 §1.2, the client's handshake, byte for byte.
RFC_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
# RFC 6455 §1.2, the server's handshake, byte for byte.
RFC_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n"
    b"\r\n"
)
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
# An unmasked "Hello" text frame (RFC 6455 §5.7), as a server may send right after 101.
HELLO_FRAME = b"\x81\x05Hello"


def parse_request(data: bytes, **limits: int) -> Request:
    message = HTTPReader("request", **limits).feed(data)
    assert isinstance(message, Request)
    return message


def parse_response(data: bytes, **limits: int) -> Response:
    reader = HTTPReader("response", **limits)
    message = reader.feed(data)
    if message is None:
        message = reader.feed_eof()
    assert isinstance(message, Response)
    return message


def request_status(data: bytes, **limits: int) -> int:
    with pytest.raises(InvalidRequest) as info:
        HTTPReader("request", **limits).feed(data)
    return info.value.status


# -- Headers -------------------------------------------------------------------------


def test_headers_lookup_is_case_insensitive_and_keeps_spelling() -> None:
    headers = Headers([("Set-Cookie", "a=1"), ("X-Thing", "x"), ("set-cookie", "b=2")])
    assert headers["SET-COOKIE"] == "a=1"
    assert headers.get("x-thing") == "x"
    assert headers.get("missing") is None
    assert headers.get("missing", "d") == "d"
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert headers.get_all("missing") == []
    assert "x-THING" in headers
    assert "missing" not in headers
    assert 42 not in headers
    assert list(headers) == ["Set-Cookie", "X-Thing", "set-cookie"]
    assert len(headers) == 3
    assert headers.items() == [("Set-Cookie", "a=1"), ("X-Thing", "x"), ("set-cookie", "b=2")]
    with pytest.raises(KeyError):
        headers["missing"]


def test_headers_mutation() -> None:
    headers = Headers([("A", "1"), ("B", "2"), ("a", "3")])
    headers.add("C", "4")
    assert headers.items() == [("A", "1"), ("B", "2"), ("a", "3"), ("C", "4")]
    headers["a"] = "5"  # replaces every A, in the place of the first
    assert headers.items() == [("a", "5"), ("B", "2"), ("C", "4")]
    headers["D"] = "6"
    assert headers.items() == [("a", "5"), ("B", "2"), ("C", "4"), ("D", "6")]
    del headers["b"]
    assert headers.items() == [("a", "5"), ("C", "4"), ("D", "6")]
    with pytest.raises(KeyError):
        del headers["b"]


def test_headers_copy_eq_repr() -> None:
    headers = Headers([("Host", "example.com")])
    copy = headers.copy()
    assert copy == headers
    assert copy == Headers([("HOST", "example.com")])
    assert copy != Headers([("Host", "EXAMPLE.COM")])
    assert copy != Headers([("Host", "example.com"), ("Host", "example.com")])
    assert headers != [("Host", "example.com")]
    copy.add("X", "y")
    assert len(headers) == 1
    assert repr(headers) == "Headers([('Host', 'example.com')])"


def test_headers_serialize() -> None:
    headers = Headers([("Host", "example.com"), ("X-Empty", ""), ("X-Latin", "caf\xe9")])
    assert headers.serialize() == b"Host: example.com\r\nX-Empty: \r\nX-Latin: caf\xe9\r\n"
    assert Headers().serialize() == b""


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Evil", "a\r\nSet-Cookie: pwned=1"),
        ("X-Evil", "a\nb"),
        ("X-Evil", "a\rb"),
        ("X-Evil", "a\x00b"),
        ("X-Evil", "a\x7fb"),
        ("X-Evil", " padded"),
        ("X-Evil", "padded\t"),
        ("X-Evil", "snowman \u2603"),
        ("X-Evil", 42),
        ("X Evil", "v"),
        ("X-Evil:", "v"),
        ("", "v"),
        ("X-\xe9", "v"),
        ("X-Evil\r\nSet-Cookie", "v"),
        (b"X-Bytes", "v"),
    ],
)
def test_header_injection_is_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Headers([(name, value)]).serialize()
    with pytest.raises(ValueError):
        build_request(host="h", path="/", key=RFC_KEY, extra_headers=[(name, value)])
    with pytest.raises(ValueError):
        build_response(RFC_KEY, extra_headers=[(name, value)])
    with pytest.raises(ValueError):
        build_http_response(200, b"", [(name, value)])


def test_build_request_refuses_bad_fields() -> None:
    with pytest.raises(ValueError):
        build_request(host="h\r\nX: y", path="/", key=RFC_KEY)
    with pytest.raises(ValueError):
        build_request(host="h", path="/", key=RFC_KEY, origin="http://o\n")
    with pytest.raises(ValueError):
        build_request(host="h", path="/", key=RFC_KEY + "\r\n")
    with pytest.raises(ValueError):
        build_request(host="h", path="/", key=RFC_KEY, extensions="a\x00")
    for path in ("/a b", "/a\r\nX: y", "", "/caf\xe9", None):
        with pytest.raises(ValueError):
            build_request(host="h", path=path, key=RFC_KEY)  # type: ignore[arg-type]
    for subprotocol in ("a b", "a,b", "", "caf\xe9", None):
        with pytest.raises(ValueError):
            build_request(host="h", path="/", key=RFC_KEY, subprotocols=[subprotocol])  # type: ignore[list-item]
        with pytest.raises(ValueError):
            build_response(RFC_KEY, subprotocol=subprotocol or "")


# -- keys ----------------------------------------------------------------------------


def test_accept_key_rfc_vector() -> None:
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert accept_key(RFC_KEY) == RFC_ACCEPT
    with pytest.raises(ValueError):
        accept_key("caf\xe9")


def test_generate_key() -> None:
    assert generate_key(bytes(range(16))) == "AAECAwQFBgcICQoLDA0ODw=="
    assert generate_key(b"the sample nonce") == RFC_KEY
    assert generate_key(bytes(16)) == "AAAAAAAAAAAAAAAAAAAAAA=="
    for size in (0, 15, 17):
        with pytest.raises(ValueError):
            generate_key(bytes(size))


# -- reading requests ----------------------------------------------------------------


def test_rfc_request_parses_and_round_trips() -> None:
    reader = HTTPReader("request")
    request = reader.feed(RFC_REQUEST)
    assert request == Request(
        "GET",
        "/chat",
        Headers(
            [
                ("Host", "server.example.com"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", RFC_KEY),
                ("Origin", "http://example.com"),
                ("Sec-WebSocket-Protocol", "chat, superchat"),
                ("Sec-WebSocket-Version", "13"),
            ]
        ),
    )
    assert reader.message is request
    assert reader.leftover == b""
    assert isinstance(request, Request)
    head = f"{request.method} {request.path} {request.version}\r\n".encode()
    assert head + request.headers.serialize() + b"\r\n" == RFC_REQUEST
    assert check_request(request) == RFC_KEY
    protocols = parse_subprotocols(request.headers.get_all("Sec-WebSocket-Protocol"))
    assert protocols == ["chat", "superchat"]
    assert select_subprotocol(protocols, ["chat"]) == "chat"
    assert build_response(RFC_KEY, subprotocol="chat") == RFC_RESPONSE


def test_request_is_incremental_and_keeps_leftover() -> None:
    reader = HTTPReader("request")
    for byte in RFC_REQUEST[:-1]:
        assert reader.feed(bytes([byte])) is None
    assert reader.message is None
    request = reader.feed(b"\n" + HELLO_FRAME)
    assert isinstance(request, Request)
    assert reader.leftover == HELLO_FRAME
    # Bytes fed after completion join the leftover; the message is returned again.
    assert reader.feed(b"more") is request
    assert reader.leftover == HELLO_FRAME + b"more"
    assert reader.feed_eof() is None


def test_request_with_body_is_returned_at_end_of_head() -> None:
    data = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    reader = HTTPReader("request")
    request = reader.feed(data)
    assert isinstance(request, Request)
    assert request.method == "POST"
    assert reader.leftover == b"hello"
    chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    reader = HTTPReader("request")
    assert isinstance(reader.feed(chunked), Request)
    assert reader.leftover == b"5\r\nhello\r\n0\r\n\r\n"


def test_bare_lf_is_tolerated_consistently() -> None:
    crlf = parse_request(RFC_REQUEST)
    lf = parse_request(RFC_REQUEST.replace(b"\r\n", b"\n"))
    assert lf == crlf
    mixed = parse_request(b"GET / HTTP/1.1\nHost: h\r\n\n")
    assert mixed.headers.items() == [("Host", "h")]


def test_header_values_are_stripped_and_latin1() -> None:
    request = parse_request(
        b"GET / HTTP/1.1\r\nHost:h\r\nX-A: \t spaced  out \t\r\nX-B:\r\nX-C: caf\xe9\r\n\r\n"
    )
    assert request.headers.items() == [
        ("Host", "h"),
        ("X-A", "spaced  out"),
        ("X-B", ""),
        ("X-C", "caf\xe9"),
    ]


def test_http_10_is_parsed_and_later_refused() -> None:
    request = parse_request(b"GET / HTTP/1.0\r\nHost: h\r\n\r\n")
    assert request.version == "HTTP/1.0"
    assert parse_request(b"GET / HTTP/1.9\r\n\r\n").version == "HTTP/1.9"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"\r\n", 400),  # empty request line
        (b"GET /\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1 \r\n\r\n", 400),
        (b"GET\t/ HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1.1\r\n\r\n", 400),
        (b"GET / http/1.1\r\n\r\n", 400),
        (b"GET / HTTP/11\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\n\r\n", 505),
        (b"G(T / HTTP/1.1\r\n\r\n", 400),
        (b"G\xc3\xa9T / HTTP/1.1\r\n\r\n", 400),
        (b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400),
        (b"GET /\x00 HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\rHost: h\r\n\r\n", 400),  # bare CR
        (b"GET / HTTP/1.1\r\nHost h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n: h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nH(st: h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nH\xc3\xa9st: h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\n\tfolded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\x7fb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\x1bb\r\n\r\n", 400),
    ],
)
def test_malformed_requests(data: bytes, status: int) -> None:
    assert request_status(data) == status


def test_request_line_limit() -> None:
    line = b"GET /" + b"a" * 9 + b" HTTP/1.1"  # 23 bytes
    assert len(line) == 23
    assert parse_request(line + b"\r\n\r\n", max_line=23).path == "/aaaaaaaaa"
    assert parse_request(line + b"\n\n", max_line=23).path == "/aaaaaaaaa"
    assert request_status(line + b"\r\n\r\n", max_line=22) == 414
    assert request_status(line + b"\n\n", max_line=22) == 414
    # An overlong line is refused before its end arrives, as soon as it is certain:
    # 24 pending bytes may still be a 23-byte line and its CR; 25 cannot.
    reader = HTTPReader("request", max_line=23)
    assert reader.feed(line + b"\r") is None
    reader = HTTPReader("request", max_line=23)
    assert reader.feed(line + b"x") is None
    with pytest.raises(InvalidRequest) as info:
        reader.feed(b"y")
    assert info.value.status == 414


def test_header_line_limit() -> None:
    head = b"GET / HTTP/1.1\r\n"
    field = b"X-Long: " + b"v" * 12  # 20 bytes
    assert parse_request(head + field + b"\r\n\r\n", max_header_size=20).headers["x-long"]
    assert request_status(head + field + b"\r\n\r\n", max_header_size=19) == 431
    reader = HTTPReader("request", max_header_size=20)
    assert reader.feed(head + field + b"\r") is None
    with pytest.raises(InvalidRequest) as info:
        reader.feed(b"x")
    assert info.value.status == 431


def test_header_count_limit() -> None:
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(4))
    assert len(parse_request(head + b"\r\n", max_headers=4).headers) == 4
    assert request_status(head + b"\r\n", max_headers=3) == 431
    assert request_status(head + b"\r\n", max_headers=0) == 431


def test_errors_are_sticky_and_eof_needs_a_head() -> None:
    reader = HTTPReader("request")
    with pytest.raises(InvalidRequest) as first:
        reader.feed(b"GET / HTTP/3.0\r\n")
    with pytest.raises(InvalidRequest) as again:
        reader.feed(b"\r\n")
    assert again.value is first.value
    with pytest.raises(InvalidRequest):
        reader.feed_eof()
    for partial in (b"", b"GET / HTTP/1.1\r\nHost: h\r\n"):
        reader = HTTPReader("request")
        reader.feed(partial)
        with pytest.raises(InvalidRequest) as info:
            reader.feed_eof()
        assert info.value.status == 400
        with pytest.raises(InvalidRequest):
            reader.feed(b"\r\n")


def test_reader_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        HTTPReader("trailer")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HTTPReader("request", max_body=-1)


# -- reading responses ---------------------------------------------------------------


def test_rfc_response_parses_with_frames_after_it() -> None:
    reader = HTTPReader("response")
    response = reader.feed(RFC_RESPONSE + HELLO_FRAME)
    assert response == Response(
        101,
        "Switching Protocols",
        Headers(
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", RFC_ACCEPT),
                ("Sec-WebSocket-Protocol", "chat"),
            ]
        ),
    )
    assert reader.leftover == HELLO_FRAME
    assert reader.feed_eof() is response
    assert isinstance(response, Response)
    assert check_response(response, RFC_KEY, subprotocols=["chat", "superchat"]) == ("chat", [])
    head = f"{response.version} {response.status} {response.reason}\r\n".encode()
    assert head + response.headers.serialize() + b"\r\n" == RFC_RESPONSE


def test_status_line_variants() -> None:
    response = parse_response(b"HTTP/1.1 101\r\nUpgrade: websocket\r\n\r\n")
    assert (response.status, response.reason) == (101, "")
    response = parse_response(b"HTTP/1.0 200 All \tgood \xe9\r\nContent-Length: 0\r\n\r\n")
    assert (response.status, response.reason, response.version) == (
        200,
        "All \tgood \xe9",
        "HTTP/1.0",
    )


def test_response_body_by_content_length() -> None:
    reader = HTTPReader("response")
    assert reader.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nnot") is None
    response = reader.feed(b" found!extra")
    assert isinstance(response, Response)
    assert response.body == b"not found!"
    assert reader.leftover == b"extra"
    assert parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").body == b""
    same = b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc"
    assert parse_response(same).body == b"abc"


def test_response_body_is_truncated_at_max_body() -> None:
    head = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 8\r\n\r\n"
    reader = HTTPReader("response", max_body=8)
    assert reader.feed(head + b"12345678") == parse_response(head + b"12345678")
    reader = HTTPReader("response", max_body=5)
    response = reader.feed(head + b"12345678")
    assert isinstance(response, Response)
    assert response.body == b"12345"
    assert reader.leftover == b"678"


def test_response_body_until_eof() -> None:
    reader = HTTPReader("response")
    assert reader.feed(b"HTTP/1.1 500 Oops\r\n\r\nsomething") is None
    assert reader.feed(b" broke") is None
    response = reader.feed_eof()
    assert response is not None
    assert response.body == b"something broke"
    assert reader.feed_eof() is response
    # Transfer-Encoding is not decoded: the raw body is read until EOF.
    chunked = b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n"
    assert parse_response(chunked + b"3\r\nabc\r\n0\r\n\r\n").body == b"3\r\nabc\r\n0\r\n\r\n"
    # A body without a length still stops at max_body.
    reader = HTTPReader("response", max_body=4)
    message = reader.feed(b"HTTP/1.1 500 Oops\r\n\r\n1234567")
    assert isinstance(message, Response)
    response = message
    assert (response.body, reader.leftover) == (b"1234", b"567")


def test_responses_without_body() -> None:
    for status in (204, 304):
        reader = HTTPReader("response")
        response = reader.feed(b"HTTP/1.1 %d X\r\nContent-Length: 9\r\n\r\nrest" % status)
        assert isinstance(response, Response)
        assert (response.status, response.body, reader.leftover) == (status, b"", b"rest")


@pytest.mark.parametrize(
    "data",
    [
        b"\r\n",
        b"HTTP/1.1\r\n\r\n",
        b"HTTP/2 101 Switching Protocols\r\n\r\n",
        b"HTTP/2.0 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 10 Short\r\n\r\n",
        b"HTTP/1.1 1010 Long\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 O\x00K\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 199 Odd\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    ],
)
def test_malformed_responses(data: bytes) -> None:
    reader = HTTPReader("response")
    with pytest.raises(InvalidResponse) as info:
        reader.feed(data)
    assert not isinstance(info.value, InvalidStatus)
    with pytest.raises(InvalidResponse):
        reader.feed_eof()


def test_response_limits() -> None:
    status_line = b"HTTP/1.1 101 Switching Protocols"  # 32 bytes
    assert parse_response(status_line + b"\r\n\r\n", max_line=32).status == 101
    with pytest.raises(InvalidResponse):
        HTTPReader("response", max_line=31).feed(status_line + b"\r\n\r\n")
    with pytest.raises(InvalidResponse):
        HTTPReader("response", max_line=31).feed(status_line + b"xx")
    header = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n\r\n"  # a 18-byte field
    assert parse_response(header, max_header_size=18).headers["upgrade"] == "websocket"
    with pytest.raises(InvalidResponse):
        HTTPReader("response", max_header_size=17).feed(header)
    with pytest.raises(InvalidResponse):
        HTTPReader("response", max_headers=0).feed(header)


def test_response_eof_errors() -> None:
    reader = HTTPReader("response")
    reader.feed(b"HTTP/1.1 101 Switching")
    with pytest.raises(InvalidResponse):
        reader.feed_eof()
    reader = HTTPReader("response")
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc")
    with pytest.raises(InvalidResponse) as first:
        reader.feed_eof()
    with pytest.raises(InvalidResponse) as again:
        reader.feed(b"de")
    assert again.value is first.value


# -- checking requests (server side) -------------------------------------------------

GOOD_FIELDS = [
    ("Host", "example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", RFC_KEY),
    ("Sec-WebSocket-Version", "13"),
]
UPGRADE_426 = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
VERSION_426 = [*UPGRADE_426, ("Sec-WebSocket-Version", "13")]


def make_request(
    replace: dict[str, list[str]] | None = None,
    *,
    method: str = "GET",
    version: str = "HTTP/1.1",
) -> Request:
    """A valid upgrade request, with the named headers replaced by the given values."""
    replace = replace or {}
    headers = Headers()
    for name, value in GOOD_FIELDS:
        if name not in replace:
            headers.add(name, value)
    for name, values in replace.items():
        for value in values:
            headers.add(name, value)
    return Request(method, "/", headers, version)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, RFC_KEY),
        ({"Upgrade": ["WebSocket"]}, RFC_KEY),
        ({"Upgrade": ["h2c, websocket"]}, RFC_KEY),
        ({"Upgrade": ["h2c", "WEBSOCKET"]}, RFC_KEY),
        ({"Connection": ["keep-alive, Upgrade"]}, RFC_KEY),
        ({"Connection": ["keep-alive", "upgrade"]}, RFC_KEY),
        ({"Connection": [",UPGRADE,"]}, RFC_KEY),
    ],
)
def test_check_request_accepts(fields: dict[str, list[str]], expected: str) -> None:
    assert check_request(make_request(fields)) == expected


def test_check_request_accepts_later_http_1x() -> None:
    assert check_request(make_request(version="HTTP/1.2")) == RFC_KEY


@pytest.mark.parametrize(
    ("fields", "status", "headers"),
    [
        ({"Host": []}, 400, []),
        ({"Host": ["a", "b"]}, 400, []),
        ({"Host": [""]}, 400, []),
        ({"Upgrade": []}, 426, UPGRADE_426),
        ({"Upgrade": ["h2c"]}, 426, UPGRADE_426),
        ({"Upgrade": ["websocket/13"]}, 426, UPGRADE_426),
        ({"Upgrade": [""]}, 426, UPGRADE_426),
        ({"Upgrade": [], "Connection": []}, 426, UPGRADE_426),
        ({"Connection": []}, 400, []),
        ({"Connection": ["keep-alive"]}, 400, []),
        ({"Connection": ["upgrade-ish"]}, 400, []),
        ({"Connection": ["upgrade;q=1"]}, 400, []),
        ({"Sec-WebSocket-Version": []}, 426, VERSION_426),
        ({"Sec-WebSocket-Version": ["8"]}, 426, VERSION_426),
        ({"Sec-WebSocket-Version": ["13, 8"]}, 426, VERSION_426),
        ({"Sec-WebSocket-Version": ["13", "13"]}, 426, VERSION_426),
        ({"Sec-WebSocket-Version": ["013"]}, 426, VERSION_426),
        ({"Sec-WebSocket-Key": []}, 400, []),
        ({"Sec-WebSocket-Key": [RFC_KEY, RFC_KEY]}, 400, []),
        ({"Sec-WebSocket-Key": [f"{RFC_KEY}, {RFC_KEY}"]}, 400, []),
        ({"Sec-WebSocket-Key": ["dGhlIHNhbXBsZSBub25jZQ"]}, 400, []),  # no padding
        ({"Sec-WebSocket-Key": ["dGhlIHNhbXBsZSBub25jZQ=!"]}, 400, []),
        ({"Sec-WebSocket-Key": [base64.b64encode(bytes(15)).decode()]}, 400, []),
        ({"Sec-WebSocket-Key": [base64.b64encode(bytes(17)).decode()]}, 400, []),
        ({"Sec-WebSocket-Key": ["caf\xe9" * 6]}, 400, []),
        ({"Sec-WebSocket-Key": [""]}, 400, []),
    ],
)
def test_check_request_refuses(
    fields: dict[str, list[str]], status: int, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_request(make_request(fields))
    assert info.value.status == status
    assert info.value.headers == headers
    assert info.value.message


@pytest.mark.parametrize(
    ("method", "version", "status"),
    [
        ("POST", "HTTP/1.1", 405),
        ("get", "HTTP/1.1", 405),
        ("HEAD", "HTTP/1.0", 405),
        ("GET", "HTTP/1.0", 400),
        ("GET", "HTTP/0.9", 505),
        ("GET", "HTTP/2.0", 505),
        ("GET", "HTTP/3.0", 505),
        ("GET", "HTTP/1", 400),
        ("GET", "garbage", 400),
    ],
)
def test_check_request_method_and_version(method: str, version: str, status: int) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_request(make_request(method=method, version=version))
    assert info.value.status == status
    if status == 405:
        assert info.value.headers == [("Allow", "GET")]


def test_refusal_answers_round_trip() -> None:
    with pytest.raises(InvalidRequest) as info:
        check_request(make_request({"Sec-WebSocket-Version": ["8"]}))
    error = info.value
    wire = build_error_response(error.status, error.message, error.headers)
    response = parse_response(wire)
    assert response.status == 426
    assert response.reason == "Upgrade Required"
    assert response.headers["Sec-WebSocket-Version"] == "13"
    assert response.headers["Connection"] == "Upgrade, close"
    assert response.body == (error.message + "\n").encode()


# -- checking responses (client side) ------------------------------------------------


def make_response(replace: dict[str, list[str]] | None = None, status: int = 101) -> Response:
    replace = replace or {}
    headers = Headers()
    for name, value in [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", RFC_ACCEPT),
    ]:
        if name not in replace:
            headers.add(name, value)
    for name, values in replace.items():
        for value in values:
            headers.add(name, value)
    return Response(status, "Switching Protocols", headers)


def test_check_response_accepts() -> None:
    assert check_response(make_response(), RFC_KEY) == (None, [])
    lenient = make_response({"Upgrade": ["WebSocket"], "Connection": ["keep-alive, UPGRADE"]})
    assert check_response(lenient, RFC_KEY) == (None, [])
    chosen = make_response({"Sec-WebSocket-Protocol": ["superchat"]})
    assert check_response(chosen, RFC_KEY, subprotocols=["chat", "superchat"]) == (
        "superchat",
        [],
    )
    deflate = make_response(
        {"Sec-WebSocket-Extensions": ["permessage-deflate; server_no_context_takeover"]}
    )
    assert check_response(deflate, RFC_KEY) == (
        None,
        [("permessage-deflate", [("server_no_context_takeover", None)])],
    )


def test_check_response_refuses_other_statuses() -> None:
    response = make_response(status=403)
    with pytest.raises(InvalidStatus) as info:
        check_response(response, RFC_KEY)
    assert info.value.status == 403
    assert info.value.response is response


@pytest.mark.parametrize(
    ("fields", "offered", "match"),
    [
        ({"Upgrade": []}, (), "missing Upgrade"),
        ({"Upgrade": ["h2c"]}, (), "Upgrade"),
        ({"Upgrade": ["websocket, h2c"]}, (), "Upgrade"),
        ({"Connection": []}, (), "Connection"),
        ({"Connection": ["keep-alive"]}, (), "Connection"),
        ({"Connection": ["up grade"]}, (), "Connection"),
        ({"Sec-WebSocket-Accept": []}, (), "missing Sec-WebSocket-Accept"),
        ({"Sec-WebSocket-Accept": [RFC_ACCEPT, RFC_ACCEPT]}, (), "more than one"),
        ({"Sec-WebSocket-Accept": [accept_key("x" * 24)]}, (), "wrong Sec-WebSocket-Accept"),
        ({"Sec-WebSocket-Protocol": ["chat"]}, (), "none was offered"),
        ({"Sec-WebSocket-Protocol": ["other"]}, ("chat",), "not offered"),
        ({"Sec-WebSocket-Protocol": ["chat, superchat"]}, ("chat", "superchat"), "exactly one"),
        ({"Sec-WebSocket-Protocol": ["chat", "chat"]}, ("chat",), "exactly one"),
        ({"Sec-WebSocket-Protocol": [""]}, ("chat",), "exactly one"),
        ({"Sec-WebSocket-Protocol": ["ch at"]}, ("chat",), "malformed"),
        ({"Sec-WebSocket-Extensions": ["deflate;"]}, (), "malformed"),
    ],
)
def test_check_response_refuses(
    fields: dict[str, list[str]], offered: tuple[str, ...], match: str
) -> None:
    with pytest.raises(InvalidResponse, match=match) as info:
        check_response(make_response(fields), RFC_KEY, subprotocols=offered)
    assert not isinstance(info.value, InvalidStatus)


# -- list grammars -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "tokens"),
    [
        ([], []),
        ([""], []),
        (["a"], ["a"]),
        (["a,b"], ["a", "b"]),
        ([" a ,\tb\t, c "], ["a", "b", "c"]),
        ([",,a,,", " , ", "b"], ["a", "b"]),
        (["keep-alive, Upgrade", "x~y.z!"], ["keep-alive", "Upgrade", "x~y.z!"]),
    ],
)
def test_parse_token_list(values: list[str], tokens: list[str]) -> None:
    assert parse_token_list(values) == tokens
    assert parse_subprotocols(values) == tokens


@pytest.mark.parametrize("value", ["a b", "a;b", '"a"', "a/b", "caf\xe9", "a=b", "(a)"])
def test_parse_token_list_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_token_list(["ok", value])
    with pytest.raises(ValueError):
        parse_subprotocols([value])


@pytest.mark.parametrize(
    ("values", "extensions"),
    [
        ([], []),
        ([""], []),
        ([" , ,"], []),
        (["permessage-deflate"], [("permessage-deflate", [])]),
        (
            ["permessage-deflate; client_max_window_bits"],
            [("permessage-deflate", [("client_max_window_bits", None)])],
        ),
        (
            ["permessage-deflate;client_max_window_bits=10;server_no_context_takeover"],
            [
                (
                    "permessage-deflate",
                    [("client_max_window_bits", "10"), ("server_no_context_takeover", None)],
                )
            ],
        ),
        (
            ['foo; bar="baz"; q = "1" ;r= s'],
            [("foo", [("bar", "baz"), ("q", "1"), ("r", "s")])],
        ),
        (['foo; bar="b\\az"'], [("foo", [("bar", "baz")])]),
        (
            ["a; x=1, b, a; y", "c;z"],
            [("a", [("x", "1")]), ("b", []), ("a", [("y", None)]), ("c", [("z", None)])],
        ),
        (["\t,a ,, b\t,"], [("a", []), ("b", [])]),
    ],
)
def test_parse_extensions(
    values: list[str], extensions: list[tuple[str, list[tuple[str, str | None]]]]
) -> None:
    assert parse_extensions(values) == extensions


@pytest.mark.parametrize(
    "value",
    [
        "a b",
        "a;",
        "a; ",
        ";x",
        "a;=1",
        "a; x=",
        "a; x=1 2",
        'a; x="1',
        'a; x=""',
        'a; x="1 2"',
        'a; x="1,2"',
        'a; x="\\"',
        'a; x="1"2',
        "a; x=1=2",
        "a; x=(1)",
        "a/b",
        "caf\xe9",
        'a; x="\x00"',
    ],
)
def test_parse_extensions_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_extensions(["ok", value])


def test_build_extensions() -> None:
    offers: list[tuple[str, list[tuple[str, str | None]]]] = [
        (
            "permessage-deflate",
            [("client_max_window_bits", None), ("server_max_window_bits", "10")],
        ),
        ("x-other", []),
    ]
    value = build_extensions(offers)
    assert value == (
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10, x-other"
    )
    assert parse_extensions([value]) == offers
    assert build_extensions([]) == ""
    bad_offers: list[list[tuple[str, list[tuple[str, str | None]]]]] = [
        [("a b", [])],
        [("a", [("b c", None)])],
        [("a", [("b", "c d")])],
        [("a", [("b", "")])],
    ]
    for bad in bad_offers:
        with pytest.raises(ValueError):
            build_extensions(bad)


def test_select_subprotocol_follows_server_preference() -> None:
    assert select_subprotocol(["a", "b", "c"], ["c", "b"]) == "c"
    assert select_subprotocol(["a", "b"], ["x", "b", "a"]) == "b"
    assert select_subprotocol(["a"], ["A"]) is None
    assert select_subprotocol([], ["a"]) is None
    assert select_subprotocol(["a"], []) is None


# -- building --------------------------------------------------------------------------


def test_build_request_exact_bytes() -> None:
    wire = build_request(
        host="server.example.com",
        path="/chat?room=1",
        key=RFC_KEY,
        subprotocols=["chat", "superchat"],
        extensions="permessage-deflate; client_max_window_bits",
        origin="http://example.com",
        extra_headers=[("User-Agent", "fullduplex"), ("X-Trace", "1")],
    )
    assert wire == (
        b"GET /chat?room=1 HTTP/1.1\r\n"
        b"Host: server.example.com\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: http://example.com\r\n"
        b"Sec-WebSocket-Protocol: chat, superchat\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        b"User-Agent: fullduplex\r\n"
        b"X-Trace: 1\r\n"
        b"\r\n"
    )
    minimal = build_request(host="h:8080", path="/", key=RFC_KEY)
    assert b"Origin" not in minimal
    assert b"Sec-WebSocket-Protocol" not in minimal
    assert b"Sec-WebSocket-Extensions" not in minimal


def test_build_response_exact_bytes() -> None:
    wire = build_response(
        RFC_KEY,
        extensions="permessage-deflate",
        extra_headers=[("Server", "fullduplex")],
    )
    assert wire == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
        b"Server: fullduplex\r\n"
        b"\r\n"
    )


def test_build_error_response() -> None:
    assert build_error_response(400, "bad key", [("X-Why", "key")]) == (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"X-Why: key\r\n"
        b"Content-Length: 8\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"bad key\n"
    )
    assert build_error_response(404) == (
        b"HTTP/1.1 404 Not Found\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 0\r\n"
        b"Connection: close\r\n"
        b"\r\n"
    )
    unknown = build_error_response(599, "caf\xe9", content_type="text/html")
    assert unknown.startswith(b"HTTP/1.1 599 Unknown\r\nContent-Type: text/html\r\n")
    assert unknown.endswith(b"Content-Length: 6\r\nConnection: close\r\n\r\ncaf\xc3\xa9\n")
    for name in ("Content-Length", "transfer-encoding"):
        with pytest.raises(ValueError):
            build_error_response(400, "x", [(name, "1")])
    with pytest.raises(ValueError):
        build_error_response(400, "x", [("Connection", "a\r\nb")])
    with pytest.raises(ValueError):
        build_error_response(400, "x", [("Connection", 1)])  # type: ignore[list-item]
    for status in (99, 1000, -1):
        with pytest.raises(ValueError):
            build_error_response(status)
    with pytest.raises(ValueError):
        build_error_response(400, content_type="text/plain\r\nX: y")


def test_connection_options_are_merged_with_close() -> None:
    wire = build_error_response(426, "", [("Upgrade", "websocket"), ("CONNECTION", "Upgrade")])
    assert wire == (
        b"HTTP/1.1 426 Upgrade Required\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Upgrade: websocket\r\n"
        b"Content-Length: 0\r\n"
        b"Connection: Upgrade, close\r\n"
        b"\r\n"
    )
    wire = build_http_response(200, b"", [("Connection", "Keep-Alive, Close")])
    assert wire.endswith(b"Content-Length: 0\r\nConnection: Keep-Alive, Close\r\n\r\n")
    wire = build_http_response(200, b"", [("Connection", "Upgrade")], keep_alive=True)
    assert wire.endswith(b"Content-Length: 0\r\nConnection: Upgrade\r\n\r\n")


def test_build_http_response() -> None:
    assert build_http_response(200, b"ok\n", [("Content-Type", "text/plain")]) == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: 3\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"ok\n"
    )
    assert build_http_response(200, b"ok", keep_alive=True) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    assert build_http_response(204, keep_alive=True) == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert build_http_response(304) == b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n"
    assert build_http_response(101, keep_alive=True) == b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    for status in (100, 204, 304):
        with pytest.raises(ValueError):
            build_http_response(status, b"body")
    with pytest.raises(ValueError):
        build_http_response("200", b"")  # type: ignore[arg-type]
    # What we build, we read back.
    response = parse_response(build_http_response(200, b"x" * 10, [("X-A", "b")]))
    assert (response.status, response.body, response.headers["x-a"]) == (200, b"x" * 10, "b")


def test_module_is_sans_io() -> None:
    tree = ast.parse(Path(handshake.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "socket", "ssl", "time", "random", "secrets", "os"}
    assert sorted(handshake.__all__) == handshake.__all__
    assert all(hasattr(handshake, name) for name in handshake.__all__)


# -- properties ----------------------------------------------------------------------

Outcome = tuple[object, ...]


def run_reader(kind: str, chunks: list[bytes], eof: bool, **limits: int) -> Outcome:
    """Feed ``chunks`` (then EOF) and describe what happened, error or message."""
    reader = HTTPReader(kind, **limits)  # type: ignore[arg-type]
    message: Request | Response | None = None
    try:
        for chunk in chunks:
            message = reader.feed(chunk)
        if eof:
            eof_message = reader.feed_eof()
            if kind == "response":
                message = eof_message
    except InvalidRequest as exc:
        return ("error", InvalidRequest, exc.status)
    except InvalidResponse as exc:
        assert not isinstance(exc, InvalidStatus)
        return ("error", InvalidResponse)
    if message is None:
        return ("incomplete",)
    return ("ok", message, reader.leftover)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


VALID_MESSAGES = [
    ("request", RFC_REQUEST + HELLO_FRAME),
    ("request", RFC_REQUEST.replace(b"\r\n", b"\n")),
    ("request", b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"),
    ("response", RFC_RESPONSE + HELLO_FRAME),
    ("response", b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here\nextra"),
    ("response", b"HTTP/1.1 500 Oops\r\nX: y\r\n\r\nuntil the end"),
    ("response", b"HTTP/1.1 204 No Content\r\n\r\n"),
]


@settings(max_examples=60, deadline=None)
@given(
    index=st.integers(0, len(VALID_MESSAGES) - 1),
    cuts=st.lists(st.integers(0, 1000), max_size=12),
    eof=st.booleans(),
)
def test_any_split_of_a_valid_message_parses_the_same(
    index: int, cuts: list[int], eof: bool
) -> None:
    kind, data = VALID_MESSAGES[index]
    whole = run_reader(kind, [data], eof)
    assert whole[0] == "ok" or (whole == ("incomplete",) and not eof)
    assert run_reader(kind, split(data, cuts), eof) == whole


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, delete, insert in edits:
        position %= len(data) + 1
        data = data[:position] + insert + data[position + delete :]
    return data


SEEDS = [data for _, data in VALID_MESSAGES]
noisy_bytes = st.one_of(
    st.binary(max_size=200),
    st.builds(
        mutate,
        st.sampled_from(SEEDS),
        st.lists(
            st.tuples(
                st.integers(0, 400),
                st.integers(0, 3),
                st.sampled_from([b"", b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b"\x00", b"\xff"])
                | st.binary(max_size=3),
            ),
            max_size=4,
        ),
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["request", "response"]),
    data=noisy_bytes,
    cuts=st.lists(st.integers(0, 1000), max_size=8),
    eof=st.booleans(),
    small=st.booleans(),
)
def test_arbitrary_bytes_raise_only_documented_errors_in_any_split(
    kind: str, data: bytes, cuts: list[int], eof: bool, small: bool
) -> None:
    limits = {"max_line": 24, "max_header_size": 20, "max_headers": 3, "max_body": 5}
    chosen = limits if small else {}
    whole = run_reader(kind, [data], eof, **chosen)
    assert run_reader(kind, split(data, cuts), eof, **chosen) == whole


tokens = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=10,
)
field_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=20,
).map(lambda value: value.strip(" \t"))
HANDSHAKE_NAMES = {
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-accept",
}


@settings(max_examples=60, deadline=None)
@given(
    random16=st.binary(min_size=16, max_size=16),
    host=st.from_regex(r"[a-z0-9.-]{1,20}(:[0-9]{1,5})?", fullmatch=True),
    path=st.from_regex(r"/[\x21-\x7e]{0,30}", fullmatch=True),
    offered=st.lists(tokens, max_size=4),
    supported=st.lists(tokens, max_size=4),
    extra=st.lists(
        st.tuples(tokens.filter(lambda name: name.lower() not in HANDSHAKE_NAMES), field_values),
        max_size=5,
    ),
    cuts=st.lists(st.integers(0, 2000), max_size=5),
)
def test_handshake_round_trip(
    random16: bytes,
    host: str,
    path: str,
    offered: list[str],
    supported: list[str],
    extra: list[tuple[str, str]],
    cuts: list[int],
) -> None:
    key = generate_key(random16)
    wire = build_request(host=host, path=path, key=key, subprotocols=offered, extra_headers=extra)
    chunks = split(wire + HELLO_FRAME, cuts)
    outcome = run_reader("request", chunks, eof=False)
    assert outcome[0] == "ok"
    request, leftover = outcome[1], outcome[2]
    assert isinstance(request, Request)
    assert leftover == HELLO_FRAME
    assert (request.method, request.path, request.version) == ("GET", path, "HTTP/1.1")
    assert request.headers["Host"] == host
    if extra:
        assert request.headers.items()[-len(extra) :] == extra
    # The server's side.
    assert check_request(request) == key
    protocols = parse_subprotocols(request.headers.get_all("Sec-WebSocket-Protocol"))
    assert protocols == offered
    chosen = select_subprotocol(protocols, supported)
    assert chosen is None or (chosen in offered and chosen in supported)
    answer = build_response(key, subprotocol=chosen)
    # And back to the client.
    outcome = run_reader("response", split(answer + HELLO_FRAME, cuts), eof=False)
    assert outcome[0] == "ok"
    response = outcome[1]
    assert isinstance(response, Response)
    assert outcome[2] == HELLO_FRAME
    assert check_response(response, key, subprotocols=offered) == (chosen, [])
