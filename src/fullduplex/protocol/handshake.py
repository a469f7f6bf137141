"""The opening handshake of RFC 6455, sans I/O, for both roles.

Theory of operation
-------------------

A client builds its upgrade request with :func:`build_request`, writes it, and feeds
what the server answers into ``HTTPReader("response")`` until a :class:`Response`
comes out; :func:`check_response` then decides whether the connection is open. Bytes
that followed the 101 response (the server may send frames straight after it) wait in
:attr:`HTTPReader.leftover` for the frame parser.

A server feeds what it receives into ``HTTPReader("request")`` until a
:class:`Request` comes out, calls :func:`check_request` (which returns the client's
key or raises :class:`~fullduplex.errors.InvalidRequest` carrying the HTTP status to
answer with), picks a subprotocol with :func:`select_subprotocol` and writes
:func:`build_response`, or :func:`build_error_response` for a refusal.

Nothing here reads a socket, a clock or a random source: the sixteen random bytes of
the key are passed in by the caller (:func:`generate_key`).

The HTTP/1.1 reader is incremental and linear: it remembers where it stopped looking
for the end of a line, enforces every limit as soon as it is exceeded (not once the
whole head has arrived), and raises nothing but :class:`~fullduplex.errors.InvalidRequest`
or :class:`~fullduplex.errors.InvalidResponse` on any input. Line endings are CRLF; a
bare LF is tolerated as a line ending (RFC 9112 §2.2: "a recipient MAY recognize a
single LF as a line terminator and ignore any preceding CR"), a bare CR never is.
"""

from __future__ import annotations

import base64
import hashlib
import http
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from fullduplex.errors import InvalidRequest, InvalidResponse, InvalidStatus

from ._accel import SPEEDUPS, parse_request_head, websocket_accept
from ._accel_py import _KEY, _TARGET, _TCHARS, _TOKEN

__all__ = [
    "GUID",
    "HTTPReader",
    "Headers",
    "Request",
    "Response",
    "accept_key",
    "build_error_response",
    "build_extensions",
    "build_http_response",
    "build_request",
    "build_response",
    "check_request",
    "check_response",
    "generate_key",
    "parse_extensions",
    "parse_request",
    "parse_subprotocols",
    "parse_token_list",
    "select_subprotocol",
]

#: RFC 6455 §1.3: the globally unique identifier appended to the client's key.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# _TCHARS, _TOKEN (RFC 9110 §5.6.2 token) and _TARGET (RFC 9112 §3.2 request-target)
# come from _accel_py, which reads one-piece request heads with them.
_TOKEN_B = re.compile(f"[{_TCHARS}]+".encode())
# RFC 9110 §5.5: field-value may hold VCHAR, obs-text, SP and HTAB; every other
# control character (NUL, CR, LF, DEL, ...) is invalid.
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_VALUE_CHAR_B = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9112 §2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
_VERSION_B = re.compile(rb"HTTP/([0-9])\.([0-9])")
# RFC 9112 §3.2: the request-target is visible ASCII; no whitespace, no controls.
_TARGET_B = re.compile(rb"[\x21-\x7e]+")
_STATUS_B = re.compile(rb"[0-9]{3}")
# RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
_REASON_B = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_DIGITS = re.compile(r"[0-9]+")
# RFC 9110 §5.6.4: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE;
# qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text;
# quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
_QUOTED = re.compile(r'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_OWS = re.compile(r"[ \t]*")

# Responses that never have a body (RFC 9112 §6.3, rule 1).
_NO_BODY_STATUSES = frozenset({204, 304})


def _is_token(value: str) -> bool:
    return _TOKEN.fullmatch(value) is not None


def _check_name(name: str) -> None:
    # RFC 9110 §5.1: field-name = token. Anything else could smuggle a header.
    if not isinstance(name, str) or not _is_token(name):
        raise ValueError(f"invalid header name: {name!r}")


def _check_value(name: str, value: str) -> None:
    # RFC 9110 §5.5: no CR, LF or NUL (no header injection), no other controls, and
    # no leading or trailing whitespace, which a recipient would strip anyway.
    if not isinstance(value, str):
        raise ValueError(f"invalid value for header {name}: {value!r}")
    if _BAD_VALUE_CHAR.search(value) or value != value.strip(" \t"):
        raise ValueError(f"invalid value for header {name}: {value!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"header {name} is not ISO-8859-1: {value!r}") from None


class Headers:
    """Case-insensitive multi-dict of HTTP headers; keeps order and original spelling.

    Iterating yields the name of every field in order, repeats included, and
    :func:`len` counts fields, as a multi-dict does.
    """

    # ``_index`` maps each lower-cased name to its values, built on the first lookup
    # (or by :func:`parse_request` while it reads the head) and dropped on any change:
    # a handshake looks up a dozen names, which would otherwise each scan every field.
    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(name, value) for name, value in items]
        self._index: dict[str, list[str]] | None = None

    @classmethod
    def _indexed(cls, items: list[tuple[str, str]], index: dict[str, list[str]]) -> Headers:
        # For parse_request: takes ownership of both, no copy.
        headers = cls.__new__(cls)
        headers._items = items
        headers._index = index
        return headers

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._items:
                key = name.lower()
                values = index.get(key)
                if values is None:
                    index[key] = [value]
                else:
                    values.append(value)
            self._index = index
        return index

    def __getitem__(self, name: str) -> str:
        """Return the first value of ``name``; raise :class:`KeyError` if absent."""
        values = self._lookup().get(name.lower())
        if values is None:
            raise KeyError(name)
        return values[0]

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of ``name``, or ``default`` if absent."""
        values = self._lookup().get(name.lower())
        return default if values is None else values[0]

    def get_all(self, name: str) -> list[str]:
        """Return every value of ``name`` in order (empty if absent)."""
        values = self._lookup().get(name.lower())
        return [] if values is None else list(values)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name.lower() in self._lookup()

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any existing values of ``name``."""
        self._items.append((name, value))
        self._index = None

    def __setitem__(self, name: str, value: str) -> None:
        # Replace every value of ``name``; the new field takes the place of the first.
        self._index = None
        key = name.lower()
        for index, (item_name, _) in enumerate(self._items):
            if item_name.lower() == key:
                self._items[index] = (name, value)
                self._items[index + 1 :] = [
                    item for item in self._items[index + 1 :] if item[0].lower() != key
                ]
                return
        self._items.append((name, value))

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        kept = [item for item in self._items if item[0].lower() != key]
        if len(kept) == len(self._items):
            raise KeyError(name)
        self._items = kept
        self._index = None

    def items(self) -> list[tuple[str, str]]:
        """Return the raw ``(name, value)`` pairs in order."""
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, _ in self._items])

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        """Return an independent copy."""
        return Headers(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self._items] == [(n.lower(), v) for n, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def serialize(self) -> bytes:
        """Return the fields as ``Name: value\\r\\n`` lines, without the final blank line.

        Raises:
            ValueError: a name is not a token or a value holds CR, LF, NUL or another
                control character (so no header can be injected).
        """
        lines = []
        for name, value in self._items:
            _check_name(name)
            _check_value(name, value)
            lines.append(f"{name}: {value}\r\n")
        return "".join(lines).encode("latin-1")


@dataclass
class Request:
    """An HTTP request head, as parsed by :class:`HTTPReader`."""

    method: str
    path: str
    headers: Headers
    version: str = "HTTP/1.1"


@dataclass
class Response:
    """An HTTP response, as parsed by :class:`HTTPReader`."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = "HTTP/1.1"


# HTTPReader states.
_START_LINE = 0
_HEADERS = 1
_BODY = 2
_DONE = 3


class HTTPReader:
    """Incremental parser of one HTTP/1.1 request head (server) or response (client).

    Feed it bytes as they arrive; :meth:`feed` returns ``None`` until the message is
    complete, then the message. Bytes after the message are kept in :attr:`leftover`
    (and bytes fed after completion are appended to it). Errors are sticky: once the
    input is refused, every later call raises the same error.

    A request is complete at the end of its head, even if it declares a body. A
    response is complete at the end of its head for 101, 204 and 304; otherwise its
    body is read: ``Content-Length`` bytes if given, else until EOF (see
    :meth:`feed_eof`); ``Transfer-Encoding`` is not decoded (the raw body is read until
    EOF). Either way at most ``max_body`` bytes are kept: a longer body is truncated
    and the response completes there.

    Args:
        kind: ``"request"`` to read a request head, ``"response"`` a response.
        max_line: longest request line or status line, without its line ending.
        max_header_size: longest header line, without its line ending.
        max_headers: most header fields.
        max_body: most body bytes kept for a response.

    Raises:
        InvalidRequest: (from :meth:`feed`) a malformed request, with status 400, 414
            (request line too long), 431 (header too long or too many) or 505 (HTTP
            version other than 1.x).
        InvalidResponse: (from :meth:`feed`) a malformed or oversized response.
    """

    def __init__(
        self,
        kind: Literal["request", "response"],
        *,
        max_line: int = 8192,
        max_header_size: int = 8192,
        max_headers: int = 128,
        max_body: int = 65536,
    ) -> None:
        if kind not in ("request", "response"):
            raise ValueError(f"kind must be 'request' or 'response', not {kind!r}")
        for label, limit in (
            ("max_line", max_line),
            ("max_header_size", max_header_size),
            ("max_headers", max_headers),
            ("max_body", max_body),
        ):
            if limit < 0:
                raise ValueError(f"{label} must be >= 0")
        self.kind = kind
        self.max_line = max_line
        self.max_header_size = max_header_size
        self.max_headers = max_headers
        self.max_body = max_body
        #: Bytes received after the end of the message.
        self.leftover = b""
        self._buf = bytearray()
        self._line_start = 0  # where the current, unfinished line begins
        self._scan = 0  # where to resume looking for its LF: never rescan
        self._state = _START_LINE
        self._error: InvalidRequest | InvalidResponse | None = None
        self._start: tuple[str, str, str] = ("", "", "")
        self._headers = Headers()
        self._body = bytearray()
        self._body_limit = 0  # body bytes to keep
        self._body_until_eof = False
        self._message: Request | Response | None = None

    @property
    def message(self) -> Request | Response | None:
        """The parsed message once complete, else ``None``."""
        return self._message

    def feed(self, data: bytes) -> Request | Response | None:
        """Parse more bytes; return the message once complete, else ``None``.

        Raises:
            InvalidRequest: the request is malformed or exceeds a limit.
            InvalidResponse: the response is malformed or exceeds a limit.
        """
        if self._error is not None:
            raise self._error
        if self._state == _DONE:
            self.leftover += data
            return self._message
        try:
            if self._state == _BODY:
                self._feed_body(bytes(data))
            else:
                self._buf += data
                self._parse_head()
        except (InvalidRequest, InvalidResponse) as exc:
            self._error = exc
            raise
        return self._message

    def feed_eof(self) -> Response | None:
        """Signal that the peer closed the connection.

        Returns:
            The response if it is complete (a body without a length ends at EOF), or
            ``None`` for a request reader whose request was complete.

        Raises:
            InvalidRequest: the connection closed before the end of the request head.
            InvalidResponse: the connection closed before the end of the response head,
                or before ``Content-Length`` body bytes arrived.
        """
        if self._error is not None:
            raise self._error
        if self._state in (_START_LINE, _HEADERS):
            self._error = self._fail("connection closed before the end of the HTTP head")
            raise self._error
        if self._state == _BODY:
            if not self._body_until_eof:
                self._error = self._fail("connection closed before the end of the body")
                raise self._error
            self._complete_response()
        message = self._message
        return message if isinstance(message, Response) else None

    # -- parsing -------------------------------------------------------------------

    def _fail(self, message: str, status: int = 400) -> InvalidRequest | InvalidResponse:
        if self.kind == "request":
            return InvalidRequest(message, status)
        return InvalidResponse(message)

    def _parse_head(self) -> None:
        buf = self._buf
        while self._state != _DONE and self._state != _BODY:
            newline = buf.find(b"\n", self._scan)
            if newline < 0:
                self._scan = len(buf)
                self._check_pending(len(buf) - self._line_start)
                return
            line = bytes(buf[self._line_start : newline])
            self._line_start = self._scan = newline + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._state == _START_LINE:
                self._start_line(line)
            elif line:
                self._header_line(line)
            else:
                self._end_of_head()

    def _check_pending(self, pending: int) -> None:
        # Refuse an overlong line as soon as it is certain, without waiting for its
        # end: ``pending`` may still include the CR of the CRLF, hence the ``+ 1``.
        if self._state == _START_LINE:
            if pending > self.max_line + 1:
                raise self._too_long_start_line()
        elif pending > self.max_header_size + 1:
            raise self._too_long_header()

    def _too_long_start_line(self) -> InvalidRequest | InvalidResponse:
        # RFC 9112 §3: "A server that receives a request-target longer than any URI
        # it wishes to parse MUST respond with a 414 (URI Too Long) status code."
        return self._fail(f"start line longer than {self.max_line} bytes", 414)

    def _too_long_header(self) -> InvalidRequest | InvalidResponse:
        # RFC 6585 §5: 431 Request Header Fields Too Large.
        return self._fail(f"header line longer than {self.max_header_size} bytes", 431)

    def _start_line(self, line: bytes) -> None:
        if len(line) > self.max_line:
            raise self._too_long_start_line()
        if self.kind == "request":
            self._request_line(line)
        else:
            self._status_line(line)
        self._state = _HEADERS

    def _request_line(self, line: bytes) -> None:
        # RFC 9112 §3: request-line = method SP request-target SP HTTP-version
        parts = line.split(b" ")
        if len(parts) != 3:
            raise InvalidRequest(f"malformed request line: {line[:80]!r}", 400)
        method, target, version = parts
        match = _VERSION_B.fullmatch(version)
        if match is None:
            raise InvalidRequest(f"malformed HTTP version: {version[:20]!r}", 400)
        if match.group(1) != b"1":
            # RFC 9110 §15.6.6: 505 (HTTP Version Not Supported).
            raise InvalidRequest(f"unsupported HTTP version: {version.decode()}", 505)
        if _TOKEN_B.fullmatch(method) is None:
            raise InvalidRequest(f"malformed method: {method[:20]!r}", 400)
        if _TARGET_B.fullmatch(target) is None:
            raise InvalidRequest(f"malformed request target: {target[:80]!r}", 400)
        self._start = (method.decode(), target.decode(), version.decode())

    def _status_line(self, line: bytes) -> None:
        # RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
        # A missing SP after the status code is tolerated, as most clients do.
        version, sp1, rest = line.partition(b" ")
        status, _, reason = rest.partition(b" ")
        match = _VERSION_B.fullmatch(version)
        if not sp1 or match is None:
            raise InvalidResponse(f"malformed status line: {line[:80]!r}")
        if match.group(1) != b"1":
            raise InvalidResponse(f"unsupported HTTP version: {version.decode()}")
        if _STATUS_B.fullmatch(status) is None:
            raise InvalidResponse(f"malformed status code: {status[:20]!r}")
        if _REASON_B.fullmatch(reason) is None:
            raise InvalidResponse(f"malformed reason phrase: {reason[:80]!r}")
        self._start = (status.decode(), reason.decode("latin-1"), version.decode())

    def _header_line(self, line: bytes) -> None:
        if len(line) > self.max_header_size:
            raise self._too_long_header()
        if len(self._headers) >= self.max_headers:
            raise self._fail(f"more than {self.max_headers} headers", 431)
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 §5.2: "A server that receives an obs-fold in a request message
            # [...] MUST either reject the message by sending a 400 (Bad Request)
            # [...] or replace each received obs-fold with one or more SP octets".
            raise self._fail("obsolete line folding in headers")
        name, colon, value = line.partition(b":")
        if not colon:
            raise self._fail(f"malformed header line: {line[:80]!r}")
        if _TOKEN_B.fullmatch(name) is None:
            # RFC 9112 §5.1: "No whitespace is allowed between the field name and
            # colon. [...] A server MUST reject [...] with a response status code of
            # 400 (Bad Request)." A name is a token: ASCII, no separators.
            raise self._fail(f"malformed header name: {name[:80]!r}")
        value = value.strip(b" \t")
        if _BAD_VALUE_CHAR_B.search(value):
            # RFC 9110 §5.5: "Field values containing CR, LF, or NUL characters are
            # invalid and dangerous".
            raise self._fail(f"invalid character in header {name.decode()}")
        self._headers.add(name.decode(), value.decode("latin-1"))

    def _end_of_head(self) -> None:
        rest = bytes(self._buf[self._line_start :])
        self._buf = bytearray()
        if self.kind == "request":
            method, path, version = self._start
            self._message = Request(method, path, self._headers, version)
            self.leftover = rest
            self._state = _DONE
            return
        status = int(self._start[0])
        if status == 101 or status in _NO_BODY_STATUSES:
            self._complete_response(rest)
            return
        if 100 <= status < 200:
            # We never send "Expect: 100-continue"; any other interim answer to an
            # upgrade request is an error.
            raise InvalidResponse(f"unexpected informational response: {status}")
        self._body_limit = self.max_body
        self._body_until_eof = True
        lengths = self._headers.get_all("Content-Length")
        if lengths and "Transfer-Encoding" not in self._headers:
            self._body_limit = min(self._content_length(lengths), self.max_body)
            self._body_until_eof = False
        self._state = _BODY
        self._feed_body(rest)

    def _content_length(self, values: list[str]) -> int:
        # RFC 9112 §6.3: a list of identical lengths ("42, 42") may be accepted as
        # that length; different or invalid lengths are an unrecoverable error.
        lengths = set()
        for value in values:
            for element in value.split(","):
                element = element.strip(" \t")
                if _DIGITS.fullmatch(element) is None:
                    raise InvalidResponse(f"invalid Content-Length: {value[:40]!r}")
                lengths.add(int(element))
        if len(lengths) != 1:
            raise InvalidResponse("conflicting Content-Length values")
        return lengths.pop()

    def _feed_body(self, data: bytes) -> None:
        need = self._body_limit - len(self._body)
        self._body += data[:need]
        if len(self._body) >= self._body_limit:
            self._complete_response(data[need:])

    def _complete_response(self, rest: bytes = b"") -> None:
        status, reason, version = self._start
        self._message = Response(int(status), reason, self._headers, bytes(self._body), version)
        self._body = bytearray()
        self.leftover = rest
        self._state = _DONE


# -- one-piece request heads -------------------------------------------------------


def parse_request(
    data: bytes,
    *,
    max_line: int = 8192,
    max_header_size: int = 8192,
    max_headers: int = 128,
) -> tuple[Request, bytes] | None:
    """Parse a request head that arrived whole, in one pass; the common case.

    Clients send their upgrade request in one segment, so the server tries this
    before creating an :class:`HTTPReader`. Only a plainly well-formed head is read
    here: CRLF line endings only, ``HTTP/1.1``, every line within the limits.
    Anything else (an incomplete head, a bare LF, obs-fold, a bad character, a limit
    exceeded) gives ``None``, and the caller feeds the same bytes to
    ``HTTPReader("request")``, which returns the same request or raises the precise
    error. Whenever this returns a request, the reader would have returned an equal
    one with the same leftover bytes.

    Args:
        data: the first bytes received on the connection.
        max_line, max_header_size, max_headers: the limits of :class:`HTTPReader`.

    Returns:
        The request and the bytes that followed its head, or ``None``.

    Raises:
        TypeError: ``data`` is not bytes, or a limit is not an integer.
    """
    head = parse_request_head(data, max_line, max_header_size, max_headers)
    if head is None:
        return None
    method, target, items, index, rest = head
    return Request(method, target, Headers._indexed(items, index), "HTTP/1.1"), data[rest:]


# -- keys ----------------------------------------------------------------------------


def generate_key(random16: bytes) -> str:
    """Return a ``Sec-WebSocket-Key`` made of 16 caller-supplied random bytes.

    RFC 6455 §4.1: "a nonce consisting of a randomly selected 16-byte value that has
    been base64-encoded". Pass ``os.urandom(16)`` or ``secrets.token_bytes(16)``.

    Raises:
        ValueError: ``random16`` is not 16 bytes long.
    """
    if len(random16) != 16:
        raise ValueError(f"the key needs 16 random bytes, got {len(random16)}")
    return base64.b64encode(bytes(random16)).decode("ascii")


def accept_key(key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` value answering ``key``.

    RFC 6455 §1.3: base64 of the SHA-1 of the key concatenated with :data:`GUID`.

    Raises:
        ValueError: ``key`` is not ASCII.
    """
    if SPEEDUPS:
        accept = websocket_accept(key)
        if accept is not None:
            return accept
    # Any other ASCII key gets an answer too (a client checks the server's with this).
    # Pure Python comes straight here: its websocket_accept adds a regex match to this.
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def _key_is_valid(key: str) -> bool:
    # RFC 6455 §4.2.1: "a base64-encoded value that, when decoded, is 16 bytes in
    # length": the keys websocket_accept answers. Matched, not hashed: cheaper than
    # even the C websocket_accept, whose SHA-1 would be thrown away here.
    return isinstance(key, str) and _KEY.fullmatch(key) is not None


# -- header value grammars -----------------------------------------------------------


def _list_elements(values: Iterable[str]) -> Iterator[str]:
    # RFC 9110 §5.6.1: "a recipient MUST accept empty list elements", and several
    # header lines of one name are one comma-separated list (§5.3).
    for value in values:
        for element in value.split(","):
            element = element.strip(" \t")
            if element:
                yield element


def parse_token_list(values: Iterable[str]) -> list[str]:
    """Parse header values with the RFC 9110 ``#token`` list syntax.

    Elements are separated by commas with optional whitespace; empty elements are
    ignored; several values (header lines) make one list.

    Raises:
        ValueError: an element is not a token.
    """
    tokens = []
    for element in _list_elements(values):
        if not _is_token(element):
            raise ValueError(f"not a token: {element!r}")
        tokens.append(element)
    return tokens


def parse_subprotocols(values: Iterable[str]) -> list[str]:
    """Parse ``Sec-WebSocket-Protocol`` values into subprotocol names, in order.

    RFC 6455 §4.1: "The |Sec-WebSocket-Protocol| request-header field [...] consists of
    one or more comma-separated subprotocol names" (``1#token``, §11.3.4).

    Raises:
        ValueError: a name is not a token.
    """
    return parse_token_list(values)


class _Cursor:
    """Position in one header value, for the extension grammar."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def ows(self) -> None:
        match = _OWS.match(self.text, self.pos)
        assert match is not None  # [ \t]* always matches
        self.pos = match.end()

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def token(self, what: str) -> str:
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            raise ValueError(f"expected {what} at {self.pos} in {self.text!r}")
        self.pos = match.end()
        return match.group()

    def value(self) -> str:
        if self.peek() != '"':
            return self.token("parameter value")
        match = _QUOTED.match(self.text, self.pos)
        if match is None:
            raise ValueError(f"malformed quoted string at {self.pos} in {self.text!r}")
        self.pos = match.end()
        value = _QUOTED_PAIR.sub(r"\1", match.group(1))
        # RFC 6455 §9.1: "When using the quoted-string syntax variant, the value after
        # quoted-string unescaping MUST conform to the 'token' ABNF."
        if not _is_token(value):
            raise ValueError(f"quoted parameter value is not a token: {value!r}")
        return value


def parse_extensions(
    values: Iterable[str],
) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Parse ``Sec-WebSocket-Extensions`` values into ``(name, params)`` offers.

    RFC 6455 §9.1: ``extension-list = 1#extension``, ``extension = token *( ";"
    param )``, ``param = token [ "=" ( token | quoted-string ) ]``. Quoted values are
    unquoted; a parameter without a value has the value ``None``. Offers across
    several header lines are concatenated in order.

    Raises:
        ValueError: the syntax is wrong.
    """
    extensions: list[tuple[str, list[tuple[str, str | None]]]] = []
    for value in values:
        cursor = _Cursor(value)
        while True:
            cursor.ows()
            if cursor.peek() == ",":  # an empty list element
                cursor.pos += 1
                continue
            if not cursor.peek():
                break
            name = cursor.token("extension name")
            params: list[tuple[str, str | None]] = []
            cursor.ows()
            while cursor.peek() == ";":
                cursor.pos += 1
                cursor.ows()
                param = cursor.token("parameter name")
                cursor.ows()
                param_value: str | None = None
                if cursor.peek() == "=":
                    cursor.pos += 1
                    cursor.ows()
                    param_value = cursor.value()
                    cursor.ows()
                params.append((param, param_value))
            extensions.append((name, params))
            if cursor.peek() not in ("", ","):
                raise ValueError(f"unexpected {cursor.peek()!r} at {cursor.pos} in {value!r}")
    return extensions


def build_extensions(
    extensions: Sequence[tuple[str, Sequence[tuple[str, str | None]]]],
) -> str:
    """Return a ``Sec-WebSocket-Extensions`` value for ``(name, params)`` offers.

    ``[("permessage-deflate", [("client_max_window_bits", None)])]`` gives
    ``"permessage-deflate; client_max_window_bits"``.

    Raises:
        ValueError: a name or a value is not a token (RFC 6455 §9.1 allows no other).
    """
    offers = []
    for name, params in extensions:
        if not _is_token(name):
            raise ValueError(f"invalid extension name: {name!r}")
        parts = [name]
        for param, value in params:
            if not _is_token(param):
                raise ValueError(f"invalid extension parameter name: {param!r}")
            if value is None:
                parts.append(param)
            elif _is_token(value):
                parts.append(f"{param}={value}")
            else:
                raise ValueError(f"invalid extension parameter value: {value!r}")
        offers.append("; ".join(parts))
    return ", ".join(offers)


# -- client side ---------------------------------------------------------------------


def build_request(
    *,
    host: str,
    path: str,
    key: str,
    subprotocols: Sequence[str] = (),
    extensions: str | None = None,
    origin: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """Return the bytes of a client's upgrade request (RFC 6455 §4.1).

    Args:
        host: the ``Host`` value (``host`` or ``host:port``).
        path: the request target, e.g. ``"/chat?room=1"``.
        key: the ``Sec-WebSocket-Key`` (see :func:`generate_key`).
        subprotocols: names offered in ``Sec-WebSocket-Protocol``, by preference.
        extensions: a ``Sec-WebSocket-Extensions`` value (see :func:`build_extensions`).
        origin: an ``Origin`` value, as browsers send.
        extra_headers: more fields, appended after the handshake ones.

    Raises:
        ValueError: the path is not visible ASCII, a subprotocol is not a token, a
            header name is not a token or a value holds CR, LF, NUL or another control
            character.
    """
    if not isinstance(path, str) or _TARGET.fullmatch(path) is None:
        raise ValueError(f"invalid request path: {path!r}")
    headers = Headers(
        [
            ("Host", host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13"),
        ]
    )
    if origin is not None:
        headers.add("Origin", origin)
    if subprotocols:
        for subprotocol in subprotocols:
            if not isinstance(subprotocol, str) or not _is_token(subprotocol):
                raise ValueError(f"invalid subprotocol: {subprotocol!r}")
        headers.add("Sec-WebSocket-Protocol", ", ".join(subprotocols))
    if extensions is not None:
        headers.add("Sec-WebSocket-Extensions", extensions)
    for name, value in extra_headers:
        headers.add(name, value)
    return f"GET {path} HTTP/1.1\r\n".encode() + headers.serialize() + b"\r\n"


def check_response(
    response: Response,
    key: str,
    *,
    subprotocols: Sequence[str] = (),
) -> tuple[str | None, list[tuple[str, list[tuple[str, str | None]]]]]:
    """Check the server's answer to our upgrade request (RFC 6455 §4.1, client side).

    Args:
        response: the parsed response.
        key: the ``Sec-WebSocket-Key`` we sent.
        subprotocols: the subprotocols we offered.

    Returns:
        The subprotocol the server selected (or ``None``) and the parsed
        ``Sec-WebSocket-Extensions``; whether to accept those is the caller's call.

    Raises:
        InvalidStatus: the status is not 101.
        InvalidResponse: a required header is missing or wrong.
    """
    # "If the status code received from the server is not 101, the client handles
    # the response per HTTP [RFC2616] procedures."
    if response.status != 101:
        raise InvalidStatus(response, response.status)
    headers = response.headers

    # "If the response lacks an |Upgrade| header field or the |Upgrade| header field
    # contains a value that is not an ASCII case-insensitive match for the value
    # "websocket", the client MUST _Fail the WebSocket Connection_."
    upgrade = [element.lower() for element in _list_elements(headers.get_all("Upgrade"))]
    if upgrade != ["websocket"]:
        if not upgrade:
            raise InvalidResponse("missing Upgrade header in the server's response")
        raise InvalidResponse(f"Upgrade is not websocket: {', '.join(upgrade)!r}")

    # "If the response lacks a |Connection| header field or the |Connection| header
    # field doesn't contain a token that is an ASCII case-insensitive match for the
    # value "Upgrade", the client MUST _Fail the WebSocket Connection_."
    try:
        connection = parse_token_list(headers.get_all("Connection"))
    except ValueError as exc:
        raise InvalidResponse(f"malformed Connection header: {exc}") from None
    if "upgrade" not in (token.lower() for token in connection):
        raise InvalidResponse("Connection header does not contain 'upgrade'")

    # "If the response lacks a |Sec-WebSocket-Accept| header field or the
    # |Sec-WebSocket-Accept| contains a value other than the base64-encoded SHA-1 of
    # the concatenation of the |Sec-WebSocket-Key| (as a string, not base64-decoded)
    # with the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" [...] the client MUST
    # _Fail the WebSocket Connection_."
    accept = headers.get_all("Sec-WebSocket-Accept")
    if not accept:
        raise InvalidResponse("missing Sec-WebSocket-Accept header")
    if len(accept) > 1:
        raise InvalidResponse("more than one Sec-WebSocket-Accept header")
    if accept[0] != accept_key(key):
        raise InvalidResponse(f"wrong Sec-WebSocket-Accept: {accept[0]!r}")

    # "If the response includes a |Sec-WebSocket-Protocol| header field and this
    # header field indicates the use of a subprotocol that was not present in the
    # client's handshake [...], the client MUST _Fail the WebSocket Connection_."
    subprotocol: str | None = None
    protocol_values = headers.get_all("Sec-WebSocket-Protocol")
    if protocol_values:
        try:
            selected = parse_subprotocols(protocol_values)
        except ValueError as exc:
            raise InvalidResponse(f"malformed Sec-WebSocket-Protocol: {exc}") from None
        if len(selected) != 1:
            raise InvalidResponse(
                f"the server must select exactly one subprotocol, got {selected!r}"
            )
        if not subprotocols:
            raise InvalidResponse(f"the server selected {selected[0]!r}; none was offered")
        if selected[0] not in subprotocols:
            raise InvalidResponse(f"the server selected {selected[0]!r}, which was not offered")
        subprotocol = selected[0]

    try:
        extensions = parse_extensions(headers.get_all("Sec-WebSocket-Extensions"))
    except ValueError as exc:
        raise InvalidResponse(f"malformed Sec-WebSocket-Extensions: {exc}") from None
    return subprotocol, extensions


# -- server side ---------------------------------------------------------------------

_UPGRADE_HEADERS = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
_ABSENT: list[str] = []


def check_request(request: Request) -> str:
    """Check a client's upgrade request (RFC 6455 §4.2.1) and return its key.

    Returns:
        The ``Sec-WebSocket-Key``, to pass to :func:`build_response`.

    Raises:
        InvalidRequest: with the status and headers to answer with: 405 (+ ``Allow``)
            for a method other than GET; 505 for HTTP/2 or later; 400 for HTTP/1.0,
            a missing or repeated ``Host``, a ``Connection`` without ``upgrade`` or
            a bad ``Sec-WebSocket-Key``; 426 (+ ``Upgrade``, ``Connection``) for an
            ``Upgrade`` without ``websocket``, and 426 (+ ``Sec-WebSocket-Version:
            13`` as well) for a missing, repeated or other ``Sec-WebSocket-Version``.
    """
    # Looked up in the index directly: read-only, no copy of each list.
    fields = request.headers._lookup()
    # §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    if request.method != "GET":
        # RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field in
        # a 405 response".
        raise InvalidRequest(
            f"method {request.method} not allowed; use GET", 405, [("Allow", "GET")]
        )
    if request.version != "HTTP/1.1":
        match = _VERSION.fullmatch(request.version)
        if match is None:
            raise InvalidRequest(f"malformed HTTP version: {request.version!r}", 400)
        if match.group(1) != "1":
            raise InvalidRequest(f"unsupported HTTP version: {request.version}", 505)
        if match.group(2) == "0":
            raise InvalidRequest("the WebSocket handshake needs HTTP/1.1", 400)

    # §4.2.1 item 2: "A |Host| header field containing the server's authority."
    # RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to
    # any HTTP/1.1 request message that lacks a Host header field and to any request
    # message that contains more than one Host header field line or a Host header
    # field with an invalid field value."
    hosts = fields.get("host", _ABSENT)
    if len(hosts) != 1 or not hosts[0]:
        raise InvalidRequest("missing or repeated Host header", 400)

    # §4.2.1 item 3: "An |Upgrade| header field containing the value "websocket",
    # treated as an ASCII case-insensitive value." RFC 9110 §15.5.22: a 426 response
    # "MUST send an Upgrade header field" naming the required protocol.
    # The usual request has one plain value per field: checked without splitting lists.
    values = fields.get("upgrade", _ABSENT)
    if not (len(values) == 1 and values[0].lower() == "websocket") and "websocket" not in [
        element.lower() for element in _list_elements(values)
    ]:
        raise InvalidRequest(
            "this resource needs a WebSocket upgrade (Upgrade: websocket)",
            426,
            list(_UPGRADE_HEADERS),
        )

    # §4.2.1 item 4: "A |Connection| header field that includes the token "Upgrade",
    # treated as an ASCII case-insensitive value."
    values = fields.get("connection", _ABSENT)
    if not (len(values) == 1 and values[0].lower() == "upgrade"):
        try:
            connection = parse_token_list(values)
        except ValueError as exc:
            raise InvalidRequest(f"malformed Connection header: {exc}", 400) from None
        if "upgrade" not in (token.lower() for token in connection):
            raise InvalidRequest("Connection header does not contain 'upgrade'", 400)

    # §4.2.1 item 6: "A |Sec-WebSocket-Version| header field, with a value of 13."
    # §4.2.2: if the version is not understood, "send an appropriate HTTP error code
    # (such as 426 Upgrade Required) and a |Sec-WebSocket-Version| header field
    # indicating the version(s) the server is capable of understanding." A missing
    # header gets the same answer: it is what pre-RFC draft clients send.
    values = fields.get("sec-websocket-version", _ABSENT)
    versions = values if values == ["13"] else list(_list_elements(values))
    if versions != ["13"]:
        raise InvalidRequest(
            f"unsupported Sec-WebSocket-Version {', '.join(versions) or '(none)'}; use 13",
            426,
            [*_UPGRADE_HEADERS, ("Sec-WebSocket-Version", "13")],
        )

    # §4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a base64-encoded value
    # that, when decoded, is 16 bytes in length." §11.3.1: it "MUST NOT appear more
    # than once in an HTTP request."
    keys = fields.get("sec-websocket-key", _ABSENT)
    if not keys:
        raise InvalidRequest("missing Sec-WebSocket-Key header", 400)
    if len(keys) > 1:
        raise InvalidRequest("more than one Sec-WebSocket-Key header", 400)
    if not _key_is_valid(keys[0]):
        raise InvalidRequest(f"invalid Sec-WebSocket-Key: {keys[0][:40]!r}", 400)
    return keys[0]


def select_subprotocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """Return the first of ``supported`` (server preference) that the client offered.

    Subprotocol names compare exactly (case-sensitively). ``None`` if none matches.
    """
    for subprotocol in supported:
        if subprotocol in offered:
            return subprotocol
    return None


def build_response(
    key: str,
    *,
    subprotocol: str | None = None,
    extensions: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """Return the bytes of the 101 Switching Protocols answer to ``key`` (§4.2.2).

    Args:
        key: the client's ``Sec-WebSocket-Key`` (see :func:`check_request`).
        subprotocol: the selected subprotocol, sent in ``Sec-WebSocket-Protocol``.
        extensions: a ``Sec-WebSocket-Extensions`` value for the accepted extensions.
        extra_headers: more fields, appended after the handshake ones.

    Raises:
        ValueError: the key is not ASCII, the subprotocol is not a token, a header
            name is not a token or a value holds a control character.
    """
    accept = accept_key(key)
    if subprotocol is None and extensions is None and not extra_headers:
        # The usual answer: a fixed text around a base64 value, nothing to check.
        return b"%s%s\r\n\r\n" % (_SWITCHING_HEAD, accept.encode("ascii"))
    headers = Headers(
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept),
        ]
    )
    if subprotocol is not None:
        if not isinstance(subprotocol, str) or not _is_token(subprotocol):
            raise ValueError(f"invalid subprotocol: {subprotocol!r}")
        headers.add("Sec-WebSocket-Protocol", subprotocol)
    if extensions is not None:
        headers.add("Sec-WebSocket-Extensions", extensions)
    for name, value in extra_headers:
        headers.add(name, value)
    return b"HTTP/1.1 101 Switching Protocols\r\n" + headers.serialize() + b"\r\n"


_SWITCHING_HEAD = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
)


# -- plain HTTP answers --------------------------------------------------------------

# Framing fields are ours to set: a caller's copy would contradict them.
_FRAMING = frozenset({"content-length", "transfer-encoding"})


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _response_bytes(
    status: int,
    body: bytes,
    headers: Iterable[tuple[str, str]],
    first: Sequence[tuple[str, str]],
    keep_alive: bool,
) -> bytes:
    if not isinstance(status, int) or not 100 <= status <= 999:
        raise ValueError(f"invalid HTTP status: {status!r}")
    fields = Headers(first)
    options: list[str] = []
    for name, value in headers:
        lowered = name.lower() if isinstance(name, str) else ""
        if lowered in _FRAMING:
            raise ValueError(f"header {name} is set by the response builder")
        if lowered == "connection":
            # Merged into one field with our "close": a 426 carries "Connection:
            # Upgrade" (RFC 9110 §7.8: a sender of Upgrade "MUST also send an
            # 'Upgrade' connection option") and still closes the connection.
            _check_value(name, value)
            options.append(value)
        else:
            fields.add(name, value)
    # RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in any
    # response with a status code of 1xx (Informational) or 204 (No Content)"; such
    # responses and 304 have no content (RFC 9112 §6.3).
    if status < 200 or status in _NO_BODY_STATUSES:
        if body:
            raise ValueError(f"a {status} response cannot have a body")
    else:
        fields.add("Content-Length", str(len(body)))
    if not keep_alive and "close" not in (
        option.strip(" \t").lower() for value in options for option in value.split(",")
    ):
        options.append("close")
    if options:
        fields.add("Connection", ", ".join(options))
    head = f"HTTP/1.1 {status} {_reason(status)}\r\n".encode()
    return head + fields.serialize() + b"\r\n" + bytes(body)


def build_error_response(
    status: int,
    message: str = "",
    headers: Iterable[tuple[str, str]] = (),
    *,
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    """Return a complete HTTP/1.1 response refusing a request, then closing.

    The body is ``message`` and a newline in UTF-8, or empty if ``message`` is.
    ``Connection`` options in ``headers`` (a 426's ``Upgrade``) are merged with
    ``close`` into one field.
    Pass an :class:`~fullduplex.errors.InvalidRequest`'s ``status``, ``message`` and
    ``headers`` to answer it.

    Raises:
        ValueError: the status is not a three-digit number, or a header is invalid
            or sets ``Content-Length`` or ``Transfer-Encoding``.
    """
    body = (message + "\n").encode() if message else b""
    return _response_bytes(
        status, body, headers, [("Content-Type", content_type)], keep_alive=False
    )


def build_http_response(
    status: int,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    keep_alive: bool = False,
) -> bytes:
    """Return a complete HTTP/1.1 response for a plain HTTP answer (a page, a probe).

    ``Content-Length`` is set from ``body``; ``Connection: close`` is added unless
    ``keep_alive`` (HTTP/1.1 connections persist by default), merged with any
    ``Connection`` options in ``headers``. Give ``Content-Type`` in ``headers``.

    Raises:
        ValueError: the status is not a three-digit number, a 1xx, 204 or 304 has a
            body, or a header is invalid or sets ``Content-Length`` or
            ``Transfer-Encoding``.
    """
    return _response_bytes(status, body, headers, (), keep_alive=keep_alive)
