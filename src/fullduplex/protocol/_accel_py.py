"""Pure-Python twins of the C accelerator functions that have no other home.

:func:`~fullduplex.protocol.mask.apply_mask` and
:func:`~fullduplex.protocol.frames.encode_frame` are their own twins; this module
holds the others: :func:`mask_into`, :func:`utf8_check`, :func:`scan` and
:class:`Payload`. Each gives
the same results as its C version in ``fullduplex._speedups`` bit for bit, which
``tests/protocol/test_speedups.py`` checks. Use them through
:mod:`fullduplex.protocol._accel`, which picks the C versions when they are built.
"""

from __future__ import annotations

import codecs
from operator import index

from .mask import apply_mask

__all__ = ["UTF8_STATES", "Payload", "mask_into", "scan", "utf8_check"]


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
