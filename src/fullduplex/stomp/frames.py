"""Sans-I/O STOMP 1.0, 1.1 and 1.2 frame codec.

Wire format (STOMP 1.2, "Augmented BNF")::

    frame   = command EOL *( header EOL ) EOL *OCTET NULL *( EOL )
    header  = header-name ":" header-value
    EOL     = [CR] LF

Header escaping depends on the negotiated version:

=======  =====================================================
1.2      ``\\r`` ``\\n`` ``\\c`` ``\\\\`` (any other ``\\x`` is a fatal error)
1.1      ``\\n`` ``\\c`` ``\\\\``
1.0      none
=======  =====================================================

CONNECT and CONNECTED frames are never escaped, "in order to remain backward compatible
with STOMP 1.0" (spec, Value Encoding). The STOMP frame, which only 1.1+ clients send, is
escaped like any other frame.

:class:`FrameParser` is fed bytes in any split. It parses lazily, one frame per
:meth:`~FrameParser.next_frame` call, so that the session can switch
:attr:`~FrameParser.version` right after CONNECTED and have the next frame, possibly
already buffered, unescaped with the negotiated rules. End-of-line octets between frames
are heart-beats and come out as :data:`HEARTBEAT` so that the session can count them as
traffic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from .errors import FrameError, FrameTooLarge

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEADER_LENGTH",
    "HEARTBEAT",
    "HEARTBEAT_EOL",
    "VERSIONS",
    "Frame",
    "FrameParser",
    "Heartbeat",
    "encode",
    "encode_headers",
    "escape",
    "unescape",
]

#: The protocol versions this codec speaks, oldest first.
VERSIONS: Final = ("1.0", "1.1", "1.2")

#: What a heart-beat looks like on the wire (an EOL between frames).
HEARTBEAT_EOL: Final = b"\n"

DEFAULT_MAX_FRAME_SIZE: Final = 4 * 1024 * 1024
DEFAULT_MAX_HEADERS: Final = 128
DEFAULT_MAX_HEADER_LENGTH: Final = 8 * 1024

# Frames whose headers are written and read verbatim, whatever the version.
_RAW_COMMANDS: Final = frozenset({"CONNECT", "CONNECTED"})

_ESCAPE_TABLES: Final = {
    "1.2": str.maketrans({"\\": "\\\\", "\r": "\\r", "\n": "\\n", ":": "\\c"}),
    "1.1": str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c"}),
}
_UNESCAPE_TABLES: Final = {
    "1.2": {"\\\\": "\\", "\\r": "\r", "\\n": "\n", "\\c": ":"},
    "1.1": {"\\\\": "\\", "\\n": "\n", "\\c": ":"},
}
# A backslash and whatever follows it, possibly nothing (a trailing backslash).
_ESCAPE_SEQUENCE: Final = re.compile(r"\\.?", re.DOTALL)
_BAD_COMMAND: Final = re.compile(r"[\r\n\x00]")

_HEAD, _BODY = 0, 1


class Heartbeat:
    """The type of :data:`HEARTBEAT`, the marker for an EOL received between frames."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HEARTBEAT"


#: Returned by :class:`FrameParser` for each heart-beat EOL it consumes.
HEARTBEAT: Final = Heartbeat()


@dataclass(slots=True)
class Frame:
    """One STOMP frame.

    Attributes:
        command: the command line, e.g. ``"SEND"``.
        headers: every header in wire order, repeated ones included; per the spec
            only the first occurrence of a name counts, which is what :meth:`get`
            returns.
        body: the body octets.
    """

    command: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the value of the first header called ``name``, or ``default``."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Return the values of every header called ``name``, in wire order."""
        return [value for key, value in self.headers if key == name]


def _check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f"unsupported STOMP version: {version!r}")


def escape(value: str, version: str = "1.2") -> str:
    """Escape a header name or value for ``version`` (1.0 leaves it unchanged)."""
    _check_version(version)
    table = _ESCAPE_TABLES.get(version)
    return value if table is None else value.translate(table)


def unescape(value: str, version: str = "1.2") -> str:
    """Undo :func:`escape`.

    Raises:
        FrameError: ``value`` holds an escape sequence ``version`` does not define.
    """
    _check_version(version)
    table = _UNESCAPE_TABLES.get(version)
    if table is None or "\\" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        try:
            return table[match.group()]
        except KeyError:
            # Spec 1.2: "Undefined escape sequences such as \t MUST be treated as
            # a fatal protocol error."
            raise FrameError(
                "invalid header escape",
                f"undefined escape sequence {match.group()!r} in a STOMP {version} header",
            ) from None

    return _ESCAPE_SEQUENCE.sub(replace, value)


def _header_lines(
    headers: Iterable[tuple[str, str]], version: str, raw: bool, skip_invalid: bool
) -> list[str]:
    """Return ``name:value`` lines, escaped unless ``raw``, for ``version``."""
    table = None if raw else _ESCAPE_TABLES.get(version)
    lines = []
    for name, value in headers:
        if table is not None:
            name, value = name.translate(table), value.translate(table)
            # 1.1 leaves CR alone; a trailing one would be read back as part of CRLF.
            bad = not name or value.endswith("\r")
        else:
            bad = not name or ":" in name or "\n" in name or "\n" in value or value.endswith("\r")
        if bad:
            if skip_invalid:
                continue
            mode = "unescaped" if table is None else f"STOMP {version}"
            raise ValueError(f"header {name!r}: {value!r} cannot be written in {mode} form")
        lines.append(f"{name}:{value}\n")
    return lines


def encode_headers(
    headers: Iterable[tuple[str, str]],
    version: str = "1.2",
    *,
    raw: bool = False,
    skip_invalid: bool = False,
) -> bytes:
    """Encode header lines (each ending with LF) for a frame of ``version``.

    This is the building block :func:`encode` uses; the broker engine uses it to
    encode the part of a MESSAGE shared by every subscriber only once.

    Args:
        headers: ``(name, value)`` pairs in order.
        version: the negotiated protocol version; decides the escaping.
        raw: write names and values verbatim (CONNECT and CONNECTED frames).
        skip_invalid: leave out headers that cannot be represented (a newline in an
            unescaped value...) instead of raising.

    Raises:
        ValueError: a header cannot be represented and ``skip_invalid`` is false.
    """
    _check_version(version)
    return "".join(_header_lines(headers, version, raw, skip_invalid)).encode()


def encode(frame: Frame, version: str = "1.2") -> bytes:
    """Serialize ``frame`` for a connection speaking ``version``.

    Headers are escaped per version (never for CONNECT and CONNECTED). A
    ``content-length`` header is added when the body is not empty; one already
    present is rewritten to the body's real length and later duplicates dropped.

    Raises:
        ValueError: the command or a header cannot be written in this version.
    """
    _check_version(version)
    command = frame.command
    if not command or _BAD_COMMAND.search(command):
        raise ValueError(f"invalid STOMP command: {command!r}")
    body = bytes(frame.body)
    length = str(len(body))
    headers: list[tuple[str, str]] = []
    has_length = False
    for name, value in frame.headers:
        if name == "content-length":
            if has_length:
                continue
            has_length = True
            value = length
        headers.append((name, value))
    if body and not has_length:
        headers.append(("content-length", length))
    lines = _header_lines(headers, version, command in _RAW_COMMANDS, False)
    head = "".join([command, "\n", *lines, "\n"]).encode()
    return b"".join((head, body, b"\x00"))


class FrameParser:
    """Incremental STOMP frame parser.

    Feed it bytes as they arrive with :meth:`feed_data` and pull results with
    :meth:`next_frame` (or :meth:`frames`), or do both at once with :meth:`feed`.
    Work is linear in the input whatever the split: the parser remembers how far it
    scanned, and with ``content-length`` it does not scan the body at all.

    After a :class:`~fullduplex.stomp.errors.FrameError` the stream cannot be
    resynchronised; every later call raises the same error again.

    Args:
        version: the version whose escaping applies; change :attr:`version` once the
            session has negotiated one. CONNECT and CONNECTED are never unescaped.
        max_frame_size: limit on command, headers and body of one frame, in bytes.
        max_headers: limit on the number of header lines of one frame.
        max_header_length: limit on one header (or command) line, in bytes.
        max_body_size: limit on one body, in bytes (defaults to ``max_frame_size``).
    """

    def __init__(
        self,
        *,
        version: str = "1.2",
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_header_length: int = DEFAULT_MAX_HEADER_LENGTH,
        max_body_size: int | None = None,
    ) -> None:
        _check_version(version)
        self._version = version
        self.max_frame_size = max_frame_size
        self.max_headers = max_headers
        self.max_header_length = max_header_length
        self.max_body_size = max_frame_size if max_body_size is None else max_body_size
        self._buf = bytearray()
        self._pos = 0  # start of the frame being parsed; everything before is consumed
        self._cursor = 0  # next octet not yet scanned
        self._state = _HEAD
        self._command: str | None = None
        self._raw = False
        self._headers: list[tuple[str, str]] = []
        self._body_start = 0
        self._length: int | None = None
        self._error: FrameError | None = None

    @property
    def version(self) -> str:
        """The protocol version whose header escaping applies to the next frame."""
        return self._version

    @version.setter
    def version(self, version: str) -> None:
        _check_version(version)
        self._version = version

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame or heart-beat."""
        return len(self._buf) - self._pos

    def feed_data(self, data: bytes) -> None:
        """Append received bytes; parse them with :meth:`next_frame`."""
        shift = self._pos
        if shift:
            # Compact once per call, not once per frame; what stays is one partial frame.
            del self._buf[:shift]
            self._pos = 0
            self._cursor -= shift
            self._body_start -= shift
        self._buf += data

    def feed(self, data: bytes) -> list[Frame | Heartbeat]:
        """Append ``data`` and return every complete frame and heart-beat."""
        self.feed_data(data)
        return list(self.frames())

    def frames(self) -> Iterator[Frame | Heartbeat]:
        """Yield complete frames and heart-beats until the buffer runs short."""
        while (item := self.next_frame()) is not None:
            yield item

    def next_frame(self) -> Frame | Heartbeat | None:
        """Return the next frame or heart-beat, or ``None`` if more data is needed.

        Raises:
            FrameError: the data is not a valid frame or exceeds a limit.
        """
        if self._error is not None:
            raise self._error
        try:
            if self._state == _HEAD:
                if self._command is None and self._cursor == self._pos:
                    beat = self._heartbeat()
                    if beat is not None:
                        return beat
                if not self._read_head():
                    return None
            return self._read_body()
        except FrameError as exc:
            self._error = exc
            raise

    def _heartbeat(self) -> Heartbeat | None:
        buf, pos = self._buf, self._pos
        if pos < len(buf):
            octet = buf[pos]
            if octet == 0x0A:
                self._pos = self._cursor = pos + 1
                return HEARTBEAT
            if octet == 0x0D and pos + 1 < len(buf):
                if buf[pos + 1] != 0x0A:
                    raise FrameError("malformed frame", "a bare CR between frames")
                self._pos = self._cursor = pos + 2
                return HEARTBEAT
        return None

    def _read_head(self) -> bool:
        """Consume command and header lines; return whether the head is complete."""
        buf = self._buf
        while True:
            start = self._cursor
            newline = buf.find(b"\n", start)
            if newline < 0:
                if len(buf) - start > self.max_header_length:
                    raise FrameTooLarge(
                        "header too long",
                        f"a header line exceeds the limit of {self.max_header_length} bytes",
                    )
                self._check_frame_size(len(buf))
                return False
            end = newline - 1 if newline > start and buf[newline - 1] == 0x0D else newline
            if end - start > self.max_header_length:
                raise FrameTooLarge(
                    "header too long",
                    f"a header line exceeds the limit of {self.max_header_length} bytes",
                )
            line = self._decode(buf[start:end])
            self._cursor = newline + 1
            if self._command is None:
                # Never empty: EOLs at a frame's start were taken as heart-beats.
                self._command = line
                self._raw = self._version == "1.0" or line in _RAW_COMMANDS
            elif line:
                if len(self._headers) >= self.max_headers:
                    raise FrameTooLarge(
                        "too many headers",
                        f"a frame has more than {self.max_headers} headers",
                    )
                self._headers.append(self._header(line))
            else:
                self._check_frame_size(self._cursor)
                self._body_start = self._cursor
                self._length = self._content_length()
                self._state = _BODY
                return True

    def _read_body(self) -> Frame | None:
        buf, start = self._buf, self._body_start
        if self._length is not None:
            end = start + self._length
            if len(buf) <= end:
                return None
            if buf[end] != 0:
                raise FrameError(
                    "malformed frame",
                    f"no NUL octet after the {self._length} body bytes of content-length",
                )
        else:
            end = buf.find(b"\x00", self._cursor)
            if end < 0:
                # Resume the search here next time: never rescan a growing body.
                self._cursor = len(buf)
                self._check_body_size(len(buf) - start)
                self._check_frame_size(len(buf))
                return None
            self._check_body_size(end - start)
            self._check_frame_size(end + 1)
        assert self._command is not None
        frame = Frame(self._command, self._headers, bytes(buf[start:end]))
        self._pos = self._cursor = end + 1
        self._state = _HEAD
        self._command = None
        self._headers = []
        self._length = None
        return frame

    def _decode(self, line: bytes | bytearray) -> str:
        try:
            return line.decode()
        except UnicodeDecodeError:
            raise FrameError("malformed frame", "a frame's head is not valid UTF-8") from None

    def _header(self, line: str) -> tuple[str, str]:
        name, colon, value = line.partition(":")
        if not colon:
            raise FrameError("malformed header", f"header line without a colon: {line[:80]!r}")
        if not name:
            raise FrameError("malformed header", f"header line without a name: {line[:80]!r}")
        if self._raw:
            return name, value
        return unescape(name, self._version), unescape(value, self._version)

    def _content_length(self) -> int | None:
        for name, value in self._headers:
            if name == "content-length":
                # Tolerate the padding some 1.0 clients add; 1.2 says not to pad.
                digits = value.strip(" ")
                if not (digits.isascii() and digits.isdigit()):
                    raise FrameError("invalid content-length", f"content-length: {value!r}")
                length = int(digits)
                self._check_body_size(length)
                self._check_frame_size(self._body_start + length + 1)
                return length
        return None

    def _check_body_size(self, size: int) -> None:
        if size > self.max_body_size:
            raise FrameTooLarge(
                "body too large", f"a frame body exceeds the limit of {self.max_body_size} bytes"
            )

    def _check_frame_size(self, end: int) -> None:
        if end - self._pos > self.max_frame_size:
            raise FrameTooLarge(
                "frame too large", f"a frame exceeds the limit of {self.max_frame_size} bytes"
            )
