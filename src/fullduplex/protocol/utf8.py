"""Incremental UTF-8 decoding that fails at the first impossible byte.

RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds
that the byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST
_Fail the WebSocket Connection_." A good endpoint fails as soon as no continuation
could make the bytes valid, not at the end of the message, so a bad peer cannot
make it buffer the rest.

CPython's incremental decoder already refuses most impossible prefixes at once, but
it holds back a truncated sequence whose first two bytes already encode a surrogate
(``ED A0``..``ED BF``). :func:`_prefix_ok` checks what it holds back.
"""

from __future__ import annotations

import codecs

__all__ = ["Utf8Decoder"]

_IncrementalDecoder = codecs.getincrementaldecoder("utf-8")


def _prefix_ok(pending: bytes) -> bool:
    """Whether ``pending`` (1–3 bytes) can still start a valid UTF-8 sequence."""
    lead = pending[0]
    if len(pending) < 2:
        return 0xC2 <= lead <= 0xF4
    second = pending[1]
    # Table 3-7 of the Unicode standard: the second byte's range depends on the lead.
    if lead == 0xE0:
        ok = 0xA0 <= second <= 0xBF
    elif lead == 0xED:
        ok = 0x80 <= second <= 0x9F
    elif lead == 0xF0:
        ok = 0x90 <= second <= 0xBF
    elif lead == 0xF4:
        ok = 0x80 <= second <= 0x8F
    else:
        ok = 0x80 <= second <= 0xBF
    return ok and all(0x80 <= b <= 0xBF for b in pending[2:])


class Utf8Decoder:
    """Decode one message in pieces; :meth:`decode` raises as soon as it is invalid."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = _IncrementalDecoder("strict")

    def decode(self, data: bytes | bytearray | memoryview, final: bool = False) -> str:
        """Decode the next piece; ``final`` for the last one of the message.

        Raises:
            UnicodeDecodeError: the bytes so far cannot be the start of valid UTF-8.
        """
        text = self._decoder.decode(data, final)
        if not final and data and data[-1] >= 0x80:
            pending = self._decoder.getstate()[0]
            if pending and not _prefix_ok(pending):
                raise UnicodeDecodeError(
                    "utf-8", pending, 0, len(pending), "impossible UTF-8 sequence"
                )
        return text
