"""RFC 6455 §5 framing: opcodes, close codes, and frame encoding.

Decoding lives in :mod:`fullduplex.protocol.connection`, whose receive loop parses
headers and payloads straight out of its buffer; this module holds what both
directions share and what is easy to test byte for byte.

Base framing (RFC 6455 §5.2)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-------+-+-------------+-------------------------------+
    |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
    |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
    |N|V|V|V|       |S|             |   (if payload len==126/127)   |
    | |1|2|3|       |K|             |                               |
    +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
    |     Extended payload length continued, if payload len == 127  |
    + - - - - - - - - - - - - - - - +-------------------------------+
    |                               |Masking-key, if MASK set to 1  |
    +-------------------------------+-------------------------------+
    | Masking-key (continued)       |          Payload Data         |
    +-------------------------------- - - - - - - - - - - - - - - - +
"""

from __future__ import annotations

import enum
import struct

from ..errors import InvalidUTF8, ProtocolError
from .mask import apply_mask

__all__ = [
    "CloseCode",
    "Opcode",
    "close_code_receivable",
    "close_code_sendable",
    "decode_close",
    "encode_close",
    "encode_frame",
    "encode_header",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 §5.2); 3–7 and 0xB–0xF are reserved."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 §7.4.1 and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack


def close_code_receivable(code: int) -> bool:
    """Whether a peer may put ``code`` in a close frame.

    1004, 1005, 1006 and 1015 are reserved for reporting and never go on the wire
    (RFC 6455 §7.4.1); 1012–2999 are left to future standards, so a strict endpoint
    refuses them; 3000–3999 are registered for libraries and 4000–4999 private.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999


def close_code_sendable(code: int) -> bool:
    """Whether this endpoint may send ``code``: exactly the codes it accepts.

    1012–1014 are in the IANA registry but not in RFC 6455, and strict peers
    (fullduplex among them) fail a connection that uses them, so we never send them.
    """
    return close_code_receivable(code)


def encode_header(
    opcode: int, length: int, *, fin: bool = True, rsv1: bool = False, mask: bool = False
) -> bytes:
    """Encode a frame header with the minimal length encoding (RFC 6455 §5.2)."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mbit = 0x80 if mask else 0
    if length < 126:
        return bytes((b0, mbit | length))
    if length < 0x10000:
        return _PACK_16(b0, mbit | 126, length)
    return _PACK_64(b0, mbit | 127, length)


def encode_frame(
    opcode: int,
    payload: bytes | bytearray | memoryview = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask_key: bytes | None = None,
) -> bytes:
    """Encode one frame; masked with ``mask_key`` when given (client to server)."""
    length = len(payload)
    if mask_key is None:
        return encode_header(opcode, length, fin=fin, rsv1=rsv1) + payload
    header = encode_header(opcode, length, fin=fin, rsv1=rsv1, mask=True)
    return header + mask_key + apply_mask(payload, mask_key)


def encode_close(code: int | None = None, reason: str = "") -> bytes:
    """Encode a close frame payload; ``None`` gives the empty payload.

    Raises:
        ValueError: the code may not be sent, or the reason is over 123 UTF-8 bytes
            (a control frame payload is at most 125 bytes, RFC 6455 §5.5).
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not close_code_sendable(code):
        raise ValueError(f"close code {code} may not be sent")
    data = reason.encode("utf-8")
    if len(data) > 123:
        raise ValueError("close reason is longer than 123 UTF-8 bytes")
    return code.to_bytes(2, "big") + data


def decode_close(payload: bytes) -> tuple[int, str]:
    """Decode a received close frame payload into ``(code, reason)``.

    An empty payload means "no status" and gives 1005 (RFC 6455 §7.1.5).

    Raises:
        ProtocolError: a 1-byte payload or a code not valid on the wire (1002).
        InvalidUTF8: the reason is not UTF-8 (1007).
    """
    if not payload:
        return CloseCode.NO_STATUS_RCVD, ""
    if len(payload) == 1:
        raise ProtocolError("close frame payload of 1 byte", "WS_CLOSE_PAYLOAD_1_BYTE")
    code = payload[0] << 8 | payload[1]
    if not close_code_receivable(code):
        raise ProtocolError(f"invalid close code {code}", "WS_INVALID_CLOSE_CODE")
    if len(payload) == 2:
        return code, ""
    try:
        reason = bytes(payload[2:]).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidUTF8("close reason is not valid UTF-8") from None
    return code, reason
