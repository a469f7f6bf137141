"""Pure-Python twins of the C accelerator functions that have no other home.

:func:`~fullduplex.protocol.mask.apply_mask` and
:func:`~fullduplex.protocol.frames.encode_frame` are their own twins; this module
holds the others: :func:`mask_into`, :func:`utf8_check`, :func:`scan`,
:class:`Payload`, and the handshake's :func:`parse_request_head` and
:func:`websocket_accept`. Each gives the same results as its C version in
``fullduplex._speedups`` bit for bit, which ``tests/protocol/test_speedups.py`` and
``test_speedups_handshake.py`` check. Use them through
:mod:`fullduplex.protocol._accel`, which picks the C versions when they are built.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import re
from operator import index

from .mask import apply_mask

__all__ = [
    "UTF8_STATES",
    "Payload",
    "mask_into",
    "parse_request_head",
    "scan",
    "utf8_check",
    "websocket_accept",
]


def mask_into(
    buffer: bytearray | memoryview, start: int, end: int, key: bytes, offset: int = 0
) -> None:
    """XOR ``buffer[start:end]`` in place with ``key``, from key position ``offset % 4``.

    Raises:
        ValueError: not ``0 <= start <= end <= len(buffer)``, or the key is not 4 bytes.
        BufferError: ``buffer`` is read-only.
    """
    with memoryview(buffer) as view:
        if view.readonly:
            raise BufferError("Object is not writable.")
        start, end = index(start), index(end)
        _check_key(key)
        if not 0 <= start <= len(view):
            raise ValueError("start out of range")
        if not start <= end <= len(view):
            raise ValueError("end out of range")
        if start < end:
            view[start:end] = apply_mask(view[start:end], key, index(offset))


def _check_key(key: bytes) -> None:
    if len(key) != 4:
        raise ValueError("mask key must be 4 bytes")


class Payload:
    """The payload of one data frame of ``size`` bytes, assembled as it arrives.

    Pieces given to :meth:`feed` are unmasked with ``key`` (when given) at their
    offset in the frame. Memory grows with what arrives; the C version reserves the
    whole frame (up to 64 MiB) at the first piece instead, which only differs in
    address space, not in results.
    """

    __slots__ = ("_buf", "_key", "_size", "_taken")

    def __init__(self, size: int, key: bytes | bytearray | memoryview | None = None) -> None:
        size = index(size)
        if size < 0:
            raise ValueError("size must not be negative")
        if key is not None:
            key = bytes(memoryview(key))  # a buffer, like the C version; not an int
            _check_key(key)
        self._size = size
        self._key = key
        self._buf = bytearray()
        self._taken = False

    @property
    def remaining(self) -> int:
        """Bytes still missing (0 once complete or taken)."""
        return 0 if self._taken else self._size - len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview, start: int = 0) -> int:
        """Copy ``data[start:]`` in, up to the bytes still missing; return how many."""
        if self._taken:
            raise ValueError("the payload was already taken")
        with memoryview(data) as view:
            start = index(start)
            if not 0 <= start <= len(view):
                raise ValueError("start out of range")
            buf = self._buf
            filled = len(buf)
            n = min(len(view) - start, self._size - filled)
            if n <= 0:
                return 0
            buf += view[start : start + n]
        if self._key is not None:
            mask_into(buf, filled, filled + n, self._key, filled)
        return n

    def take(self) -> bytes:
        """Return the whole payload; only once, and only when nothing is missing."""
        if self._taken:
            raise ValueError("the payload was already taken")
        if len(self._buf) != self._size:
            raise ValueError("the payload is not complete")
        self._taken = True
        data = bytes(self._buf)
        self._buf = bytearray()
        return data


# --------------------------------------------------------------------------- UTF-8
#
# A DFA over Table 3-7 of the Unicode standard, with the same states as the C version:
#
#   0  between characters
#   1  one more continuation byte (80..BF) wanted
#   2  two more, the next one 80..BF
#   3  three more, the next one 80..BF
#   4  after E0: next A0..BF (no overlong 3-byte forms), then one more
#   5  after ED: next 80..9F (no surrogates), then one more
#   6  after F0: next 90..BF (no overlong 4-byte forms), then two more
#   7  after F4: next 80..8F (nothing above U+10FFFF), then two more
#
# Only the byte right after the lead has a narrowed range, so these eight states are
# all the memory needed between calls.

UTF8_STATES = 8
_REJECT = 0xFF


def _build_table() -> bytes:
    table = bytearray([_REJECT]) * (UTF8_STATES * 256)

    def put(state: int, lo: int, hi: int, to: int) -> None:
        for byte in range(lo, hi + 1):
            table[state * 256 + byte] = to

    put(0, 0x00, 0x7F, 0)
    put(0, 0xC2, 0xDF, 1)
    put(0, 0xE0, 0xE0, 4)
    put(0, 0xE1, 0xEC, 2)
    put(0, 0xED, 0xED, 5)
    put(0, 0xEE, 0xEF, 2)
    put(0, 0xF0, 0xF0, 6)
    put(0, 0xF1, 0xF3, 3)
    put(0, 0xF4, 0xF4, 7)
    put(1, 0x80, 0xBF, 0)
    put(2, 0x80, 0xBF, 1)
    put(3, 0x80, 0xBF, 2)
    put(4, 0xA0, 0xBF, 1)
    put(5, 0x80, 0x9F, 1)
    put(6, 0x90, 0xBF, 2)
    put(7, 0x80, 0x8F, 2)
    return bytes(table)


_NEXT = _build_table()
_utf_8_decode = codecs.utf_8_decode


def _run(data: bytes | bytearray | memoryview, state: int) -> int:
    """The DFA, one byte at a time: for short pieces only."""
    table = _NEXT
    for byte in data:
        state = table[(state << 8) | byte]
        if state == _REJECT:
            return -1
    return state


def utf8_check(data: bytes | bytearray | memoryview, state: int = 0) -> int:
    """Validate the next piece of a UTF-8 stream.

    Args:
        data: the next bytes of the stream.
        state: 0 at the start of a stream, or what the previous call returned.

    Returns:
        The new state: 0 if ``data`` ends between characters, 1..7 if it ends inside
        a sequence that may still be completed, or -1 as soon as a byte appears that
        no continuation could make valid (RFC 6455 §8.1 fails the connection there).

    Raises:
        ValueError: ``state`` is not in ``range(8)``.
    """
    state = index(state)
    if not 0 <= state < UTF8_STATES:
        raise ValueError("state must be in range(8)")
    with memoryview(data) as view:
        view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
        n = len(view)
        i = 0
        # Finish a sequence left open by the previous piece (at most 3 bytes).
        while state and i < n:
            state = _NEXT[(state << 8) | view[i]]
            if state == _REJECT:
                return -1
            i += 1
        if i == n:
            return state
        rest = view[i:]
        # The codec, in C, checks the complete characters: it refuses exactly what
        # the DFA refuses (strict UTF-8: no overlongs, surrogates or values over
        # U+10FFFF). With final=False it holds back an unfinished sequence at the end,
        # at most 3 bytes, which the DFA then judges.
        try:
            _, consumed = _utf_8_decode(rest, "strict", False)
        except UnicodeDecodeError:
            return -1
        return _run(rest[consumed:], 0)


# --------------------------------------------------------------------------- scanning


def scan(
    buffer: bytearray, pos: int, end: int, is_client: bool, max_size: int | None
) -> tuple[int, list[str | bytes]]:
    """Take whole single-frame data messages from ``buffer[pos:end]``.

    Parses frames while each one is complete, has FIN set and RSV1-3 clear, is text
    or binary, is masked exactly when ``is_client`` is false (RFC 6455 §5.1), has a
    64-bit length below 2**63 and at most ``max_size`` (``None``: no limit), and, for
    text, is valid UTF-8. Stops without consuming at the first frame that is anything
    else, so the caller's full parser judges it.

    Returns:
        ``(new_pos, messages)``: ``str`` for text, ``bytes`` for binary.
        ``buffer[new_pos:]`` is left as it was; ``buffer[pos:new_pos]`` may have been
        unmasked in place.

    Raises:
        ValueError: not ``0 <= pos <= end <= len(buffer)``.
        BufferError: ``buffer`` is read-only.
    """
    with memoryview(buffer) as view:
        if view.readonly:
            raise BufferError("Object is not writable.")
    pos, end = index(pos), index(end)
    if not 0 <= pos <= len(buffer):
        raise ValueError("pos out of range")
    if not pos <= end <= len(buffer):
        raise ValueError("end out of range")
    if max_size is not None:
        max_size = index(max_size)
    masked = not is_client
    messages: list[str | bytes] = []
    while end - pos >= 2:
        b0 = buffer[pos]
        b1 = buffer[pos + 1]
        # FIN set, RSV1-3 clear, opcode text (1) or binary (2).
        if b0 != 0x81 and b0 != 0x82:
            break
        if bool(b1 & 0x80) is not masked:
            break
        length = b1 & 0x7F
        hlen = 2
        if length == 126:
            if end - pos < 4:
                break
            length = (buffer[pos + 2] << 8) | buffer[pos + 3]
            hlen = 4
        elif length == 127:
            if end - pos < 10:
                break
            length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
            if length >> 63:
                break
            hlen = 10
        if max_size is not None and length > max_size:
            break
        key = None
        if masked:
            if end - pos < hlen + 4:
                break
            key = bytes(buffer[pos + hlen : pos + hlen + 4])
            hlen += 4
        start = pos + hlen
        if length > end - start:
            break
        payload = bytes(buffer[start : start + length])
        if key is not None and length:
            payload = apply_mask(payload, key)
        if b0 == 0x81:
            try:
                messages.append(payload.decode("utf-8"))
            except UnicodeDecodeError:
                break
        else:
            messages.append(payload)
        pos = start + length
    return pos, messages


# --------------------------------------------------------------------- handshake
#
# The grammar below is shared with protocol/handshake.py, which imports it from here
# (this module cannot import handshake: handshake imports the chooser, _accel).

# RFC 9110 §5.6.2: token = 1*tchar; tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" /
# "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. Spelled out rather
# than using \w, which would also match non-ASCII letters.
_TCHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN = re.compile(f"[{_TCHARS}]+")
# RFC 9112 §3.2: the request-target is visible ASCII; no whitespace, no controls.
_TARGET = re.compile(r"[\x21-\x7e]+")

# Field names that clients commonly send, in their usual spellings, mapped to lower
# case: a hit is a name already known to be a token. The C version keeps the same
# names as ready-made strings (any spelling of them, in fact: an optimisation only,
# since a token's key is its lower case either way).
_COMMON_NAMES = {
    spelling: name.lower()
    for name in (
        "Host",
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Protocol",
        "Origin",
        "User-Agent",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Cache-Control",
        "Pragma",
        "Cookie",
        "Authorization",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Real-IP",
    )
    for spelling in (name, name.lower())
}
# Every byte but the controls other than HTAB, CR and LF (and DEL), which are invalid
# anywhere in a head: deleting these from a head leaves nothing when it is clean
# (bytes.translate: one table look-up per byte, cheaper than a regex search).
_HEAD_BYTES = bytes(b for b in range(256) if b in (9, 10, 13) or 0x20 <= b != 0x7F)


def parse_request_head(
    data: bytes, max_line: int, max_header_size: int, max_headers: int
) -> tuple[str, str, list[tuple[str, str]], dict[str, list[str]], int] | None:
    """Read a plainly well-formed ``HTTP/1.1`` request head at the start of ``data``.

    The one-pass reader behind :func:`~fullduplex.protocol.handshake.parse_request`,
    which documents what "plainly well-formed" means; ``None`` for anything else.

    Returns:
        ``(method, target, items, index, rest)``: the ``(name, value)`` fields in
        order, the values of each lower-cased name in order, and the offset of the
        first byte after the head's final CRLFCRLF.

    Raises:
        TypeError: ``data`` is not bytes, or a limit is not an integer.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    max_line = index(max_line)
    max_header_size = index(max_header_size)
    max_headers = index(max_headers)
    end = data.find(b"\r\n\r\n")
    # Every line is shorter than the whole head: within both line limits.
    if end < 0 or end > max_line or end > max_header_size:
        return None
    raw = data[:end]
    if raw.translate(None, _HEAD_BYTES):
        return None
    head = raw.decode("latin-1")
    lines = head.split("\r\n")
    count = len(lines) - 1
    # Each CRLF holds one CR and one LF: any other CR or LF is a bare one.
    if count > max_headers or head.count("\n") != count or head.count("\r") != count:
        return None
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if (
        version != "HTTP/1.1"
        or (method != "GET" and _TOKEN.fullmatch(method) is None)
        or _TARGET.fullmatch(target) is None
    ):
        return None
    items: list[tuple[str, str]] = []
    fields: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = _COMMON_NAMES.get(name)
        if key is None:
            # Not a token: a space before the colon, obs-fold, an empty name...
            if _TOKEN.fullmatch(name) is None:
                return None
            key = name.lower()
        if not colon:
            return None
        value = value.strip(" \t")
        items.append((name, value))
        values = fields.get(key)
        if values is None:
            fields[key] = [value]
        else:
            values.append(value)
    return method, target, items, fields, end + 4


# RFC 6455 §1.3.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# The base64 of exactly 16 bytes: 22 digits, the last holding 2 bits of data, then
# "==". Exactly what ``len(base64.b64decode(key, validate=True)) == 16`` accepts:
# validation refuses anything outside the alphabet, misplaced or missing padding, and
# does not look at the 4 unused bits of the last digit.
_KEY = re.compile(r"[A-Za-z0-9+/]{22}==")


def websocket_accept(key: str) -> str | None:
    """Return the ``Sec-WebSocket-Accept`` answering a valid ``Sec-WebSocket-Key``.

    RFC 6455 §4.2.1: the key is "a base64-encoded value that, when decoded, is 16
    bytes in length"; §4.2.2: the answer is the base64 of the SHA-1 of the key and
    the GUID. ``None`` if ``key`` is not such a str.
    """
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        return None
    digest = hashlib.sha1(str.encode(key, "ascii") + _GUID).digest()
    return base64.b64encode(digest).decode("ascii")
