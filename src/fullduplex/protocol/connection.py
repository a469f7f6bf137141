"""The sans-I/O WebSocket connection: bytes in, events and bytes out.

Theory of operation
-------------------
A :class:`Connection` starts after the opening handshake, in state OPEN. The I/O
layer feeds it what the socket delivers (:meth:`receive_data`, :meth:`receive_eof`)
and, after every call, collects what to write (:meth:`data_to_send`), whether to
close the TCP connection (:attr:`eof_wanted`), whether to arm a timer for the peer to
close it (:meth:`close_expected`) and what to deliver (:meth:`events`). It never
touches a socket, a clock or an event loop.

Receiving is one loop over one growing ``bytearray``. A frame header is validated
as soon as its first two bytes arrive (reserved bits, opcodes, masking, control
frame rules), and the size limit is checked against the declared length before any
payload is buffered. Data payloads are consumed as they arrive: each piece is
unmasked at its offset in the masking key and handed to the message being built, so
text is UTF-8 checked byte by byte as it comes and a bad byte fails the connection at
once, not at the end of the message. A whole single-frame message takes a shorter
path with no per-piece bookkeeping.

Closing handshake (RFC 6455 §7)::

    OPEN ──send_close()──▶ CLOSING ──close frame received──┐
      │                                                     ├─▶ server: eof_wanted
      └──close frame received──▶ echo it ─▶ CLOSING ────────┘   client: close_expected()
                                                     receive_eof() ─▶ CLOSED

The server closes TCP first; the client waits for it, with a timeout kept by the I/O
layer (RFC 6455 §7.1.1). Failing the connection (:meth:`fail`, or a protocol error
in received data) sends a close frame with the error's code if none was sent, stops
reading, and on a server also asks for the TCP close at once (§7.1.7).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable

from ..errors import InvalidState, InvalidUTF8, MessageTooBig, PolicyViolation, ProtocolError
from ._accel import SPEEDUPS, Payload, apply_mask, encode_frame, scan
from .deflate import PerMessageDeflate
from .events import CloseReceived, Message, Ping, Pong
from .frames import CloseCode, decode_close, encode_close, encode_header
from .utf8 import Utf8Decoder

__all__ = ["Connection", "RawEvent", "Side", "State"]


class Side(enum.Enum):
    """Which end of the connection this is."""

    CLIENT = "client"
    SERVER = "server"


class State(enum.IntEnum):
    """Connection states, numbered as the browser's ``readyState``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


# Looking a member up on an enum class costs about 100 ns on Python 3.11, and the
# state is checked for every message sent: the members as module constants.
_OPEN, _CLOSING, _CLOSED = State.OPEN, State.CLOSING, State.CLOSED
_ABNORMAL = CloseCode.ABNORMAL_CLOSURE

#: An event as :meth:`Connection.raw_events` gives it: a data message bare.
RawEvent = str | bytes | Ping | Pong | CloseReceived

CLIENT = Side.CLIENT
SERVER = Side.SERVER

# Data frames we receive; control frames are 0x8-0xA. Anything else is reserved.
_TEXT, _BINARY, _CONT = 1, 2, 0
_CLOSE, _PING, _PONG = 8, 9, 10
_MASK_POOL = 4 * 256
# From this size a binary frame still arriving is assembled in a Payload (one copy,
# in C when built) and a server's outgoing payload is written after its header
# without being copied into one frame.
_LARGE = 16 * 1024
# Up to this size the C Payload reserves a frame's whole length at its first piece
# (address space, not resident memory); larger frames take the piecewise path, so a
# peer announcing a huge frame gets nothing reserved beyond what it sends.
_PAYLOAD_MAX = 4 * 1024 * 1024


class Connection:
    """A WebSocket connection after the opening handshake, without I/O.

    Args:
        side: :data:`Side.CLIENT` masks what it sends and refuses masked frames;
            :data:`Side.SERVER` the reverse (RFC 6455 §5.1).
        max_size: the largest message accepted, in bytes (``None``: no limit).
            Checked against each frame's declared length before its payload is
            buffered; going over fails the connection with 1009.
        max_fragments: the most frames one message may arrive in (``None``: no
            limit); going over fails the connection with 1008.
        random_bytes: the source of masking keys, called for batches of random
            bytes; inject a fake in tests.
        deflate: the negotiated permessage-deflate codec (RFC 7692), if any. It
            defines RSV1 as "compressed" on the first frame of a data message; then
            ``max_size`` applies to the decompressed size, enforced while inflating.
    """

    # One per open connection: slots keep an idle connection small.
    __slots__ = (
        "__weakref__",
        "_buf",
        "_client",
        "_decoder",
        "_events",
        "_frame_fin",
        "_frame_key",
        "_frame_off",
        "_mask_pos",
        "_masks",
        "_msg_compressed",
        "_msg_frames",
        "_msg_opcode",
        "_msg_out",
        "_msg_parts",
        "_msg_size",
        "_out",
        "_payload",
        "_random_bytes",
        "_remaining",
        "_send_compressed",
        "_send_opcode",
        "close_rcvd",
        "close_sent",
        "deflate",
        "eof_received",
        "eof_wanted",
        "failure",
        "input_done",
        "max_fragments",
        "max_size",
        "output_pending",
        "side",
        "state",
    )

    def __init__(
        self,
        side: Side,
        *,
        max_size: int | None = 2**20,
        max_fragments: int | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        deflate: PerMessageDeflate | None = None,
    ) -> None:
        if max_fragments is not None and max_fragments < 1:
            raise ValueError("max_fragments must be at least 1")
        self.side = side
        self.state = _OPEN
        self.max_size = max_size
        self.max_fragments = max_fragments
        self._client = side is CLIENT
        self.deflate = deflate
        self._random_bytes = random_bytes
        self._masks = b""
        self._mask_pos = _MASK_POOL

        self._buf = bytearray()
        # Data messages are kept bare (str or bytes) until events() wraps them.
        self._events: list[RawEvent] = []
        self._out: list[bytes] = []
        #: Bytes queued for writing that :meth:`data_to_send` has not returned yet.
        self.output_pending = 0
        #: Whether no more events can come: close received, connection failed or
        #: closed. Data received after that is discarded.
        self.input_done = False

        # Frame being received: _remaining is None between frames.
        self._remaining: int | None = None
        self._frame_fin = False
        self._frame_key: bytes | None = None
        self._frame_off = 0
        self._payload: Payload | None = None  # a large binary frame being assembled

        # Message being received: _msg_opcode is 0 between messages.
        self._msg_opcode = 0
        self._msg_parts: list[bytes] | list[str] = []
        self._msg_size = 0
        self._msg_frames = 0
        self._msg_compressed = False
        self._msg_out = 0  # decompressed bytes of a compressed message so far
        self._decoder: Utf8Decoder | None = None

        # Message being sent in fragments: its opcode, or 0, and whether compressed.
        self._send_opcode = 0
        self._send_compressed = False

        self.close_rcvd: tuple[int, str] | None = None
        self.close_sent: tuple[int | None, str] | None = None
        self.failure: ProtocolError | None = None
        self.eof_wanted = False
        self.eof_received = False

    # ------------------------------------------------------------------ results

    def events(self) -> list[Message | Ping | Pong | CloseReceived]:
        """Return and forget the events received since the last call."""
        return [
            Message(event) if type(event) is str or type(event) is bytes else event  # type: ignore[misc]
            for event in self.raw_events()
        ]

    def raw_events(self) -> list[RawEvent]:
        """Like :meth:`events`, with each data message as its bare ``str`` or ``bytes``.

        The I/O layer's hot path: no wrapper object per message.
        """
        events = self._events
        if events:
            self._events = []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return and forget the bytes to write, in order, since the last call."""
        out = self._out
        if out:
            self._out = []
            self.output_pending = 0
        return out

    def close_expected(self) -> bool:
        """Whether the peer should now close TCP, so the I/O layer arms a timeout.

        True for a client once the closing handshake is done or the connection
        failed: the server closes TCP first (RFC 6455 §7.1.1). A server closes it
        itself (:attr:`eof_wanted`), so this is always false for a server.
        """
        if self._client:
            return self.state is _CLOSING and (self.close_rcvd is not None or self.input_done)
        return False

    @property
    def close_code(self) -> int | None:
        """The code the peer sent (1005 if none); 1006 if closed without a close frame."""
        if self.close_rcvd is not None:
            return self.close_rcvd[0]
        return _ABNORMAL if self.state is _CLOSED else None

    @property
    def close_reason(self) -> str | None:
        """The reason the peer sent; ``""`` if it sent none or the connection dropped."""
        if self.close_rcvd is not None:
            return self.close_rcvd[1]
        return "" if self.state is _CLOSED else None

    @property
    def was_clean(self) -> bool:
        """Whether both close frames were exchanged (meaningful once CLOSED)."""
        return self.close_sent is not None and self.close_rcvd is not None

    # ------------------------------------------------------------------ sending

    def send_text(
        self, data: str | bytes, fin: bool = True, *, compress: bool | None = None
    ) -> None:
        """Send a text message, or its first fragment when ``fin`` is false.

        ``bytes`` are sent as they are and must be UTF-8 already. With a negotiated
        deflate codec, ``compress=None`` compresses messages from the codec's size
        threshold up; ``False`` sends this message uncompressed; ``True`` always
        compresses. The choice made on the first fragment holds for the message.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._send_data(_TEXT, data, fin, compress)

    def send_binary(
        self,
        data: bytes | bytearray | memoryview,
        fin: bool = True,
        *,
        compress: bool | None = None,
    ) -> None:
        """Send a binary message, or its first fragment when ``fin`` is false."""
        self._send_data(_BINARY, data, fin, compress)

    def send_message(
        self, data: str | bytes | bytearray | memoryview, compress: bool | None = None
    ) -> None:
        """Send a whole message: text for ``str``, binary otherwise.

        The same as :meth:`send_text` or :meth:`send_binary` with ``fin=True``, in
        one call: the I/O layer's path for every message sent.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
            opcode = _TEXT
        else:
            opcode = _BINARY
        if (
            self.deflate is None
            and not self._client
            and self.state is _OPEN
            and not self._send_opcode
            and len(data) < _LARGE
        ):
            frame = encode_frame(opcode, data)
            self._out.append(frame)
            self.output_pending += len(frame)
            return
        self._send_data(opcode, data, True, compress)

    def send_continuation(self, data: str | bytes | bytearray | memoryview, fin: bool) -> None:
        """Send the next fragment of the message started with ``fin=False``."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._send_data(_CONT, data, fin)

    def send_ping(self, data: bytes = b"") -> None:
        """Send a ping (at most 125 bytes of payload)."""
        self._send_control(_PING, data)

    def send_pong(self, data: bytes = b"") -> None:
        """Send an unsolicited pong, e.g. as a one-way heartbeat (RFC 6455 §5.5.3)."""
        self._send_control(_PONG, data)

    def send_close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (or finish it, if the peer started it).

        Raises:
            ValueError: the code may not be sent or the reason is over 123 bytes.
            InvalidState: a close frame was already sent.
        """
        payload = encode_close(code, reason)
        if self.state is not _OPEN:
            raise InvalidState("the connection is already closing")
        self._write_frame(_CLOSE, payload, True)
        self.close_sent = (code, reason)
        self.state = _CLOSING
        if self.close_rcvd is not None and not self._client:
            self.eof_wanted = True

    def fail(self, code: int = CloseCode.PROTOCOL_ERROR, reason: str = "") -> None:
        """Fail the connection (RFC 6455 §7.1.7): close frame if none sent, stop reading.

        With 1006 no close frame is sent (the connection is dropped). A server also
        asks for the TCP close at once; a client waits for the server to close it.
        """
        if self.state is _CLOSED:
            return
        if self.close_sent is None and code != _ABNORMAL:
            reason_bytes = reason.encode("utf-8")
            if len(reason_bytes) > 123:
                reason = reason_bytes[:123].decode("utf-8", "ignore")
            self._write_frame(_CLOSE, encode_close(code, reason), True)
            self.close_sent = (code, reason)
        self.state = _CLOSING
        self.input_done = True
        self._buf.clear()
        self._payload = None
        if not self._client or code == _ABNORMAL:
            self.eof_wanted = True

    def prepare_frame(self, data: str | bytes) -> bytes:
        """Encode a whole message once, for writing to many server connections.

        The bytes are valid for any server-side connection (frames from a server are
        not masked), so a broadcast encodes a message once; see :meth:`send_prepared`.
        """
        if isinstance(data, str):
            return encode_frame(_TEXT, data.encode("utf-8"))
        return encode_frame(_BINARY, data)

    def send_prepared(self, frame: bytes) -> None:
        """Queue a frame built by :meth:`prepare_frame` (servers only)."""
        if self._client:
            raise InvalidState("a client must mask its frames")
        if self.state is not _OPEN or self._send_opcode:
            raise InvalidState(f"cannot send a message in state {self.state.name}")
        self._out.append(frame)
        self.output_pending += len(frame)

    def _send_data(
        self,
        opcode: int,
        data: bytes | bytearray | memoryview,
        fin: bool,
        compress: bool | None = None,
    ) -> None:
        if self.state is not _OPEN:
            raise InvalidState(f"cannot send data in state {self.state.name}")
        if opcode == _CONT:
            if not self._send_opcode:
                raise InvalidState("no fragmented message is in progress")
        elif self._send_opcode:
            raise InvalidState("a fragmented message is in progress; finish it first")
        else:
            if not fin:
                self._send_opcode = opcode
            deflate = self.deflate
            self._send_compressed = deflate is not None and (
                deflate.should_compress(len(data)) if compress is None else compress
            )
        rsv1 = False
        if self._send_compressed:
            assert self.deflate is not None
            data = self.deflate.compress(data, final=fin)
            # RFC 7692 §6: RSV1 marks the first frame of a compressed message only.
            rsv1 = opcode != _CONT
        if fin:
            self._send_opcode = 0
        self._write_frame(opcode, data, fin, rsv1)

    def _send_control(self, opcode: int, data: bytes) -> None:
        if self.state is not _OPEN:
            raise InvalidState(f"cannot send a control frame in state {self.state.name}")
        if len(data) > 125:
            raise ValueError("control frame payload is longer than 125 bytes")
        self._write_frame(opcode, data, True)

    def _write_frame(
        self, opcode: int, data: bytes | bytearray | memoryview, fin: bool, rsv1: bool = False
    ) -> None:
        if not self._client:
            length = len(data)
            if length >= _LARGE and type(data) is bytes:
                # Immutable, so it can be queued as it is: the I/O layer writes the
                # pieces with one gathered write instead of copying them together.
                header = encode_header(opcode, length, fin=fin, rsv1=rsv1)
                self._out.append(header)
                self._out.append(data)
                self.output_pending += len(header) + length
                return
            frame = encode_frame(opcode, data, fin=fin, rsv1=rsv1)
            self._out.append(frame)
            self.output_pending += len(frame)
            return
        # RFC 6455 §5.3: a fresh, unpredictable key for every frame. Keys come from a
        # pool filled with one call to the CSPRNG per 256 frames.
        pos = self._mask_pos
        if pos >= _MASK_POOL:
            self._masks = self._random_bytes(_MASK_POOL)
            pos = 0
        key = self._masks[pos : pos + 4]
        self._mask_pos = pos + 4
        # One allocation for header, key and masked payload (in C when it is built).
        frame = encode_frame(opcode, data, fin=fin, rsv1=rsv1, mask_key=key)
        self._out.append(frame)
        self.output_pending += len(frame)

    # ---------------------------------------------------------------- receiving

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the network; the events wait for :meth:`events`.

        Protocol violations never raise: they fail the connection with the right
        close code, recorded in :attr:`failure`.
        """
        self._events = self.receive(data)

    def receive(self, data: bytes | bytearray | memoryview) -> list[RawEvent]:
        """Feed bytes and return the events not yet taken, as :meth:`raw_events` would.

        :meth:`receive_data` and :meth:`raw_events` in one call: the I/O layer's
        path for every read. Protocol violations fail the connection, as there.
        """
        if self.input_done or not data:
            return self.raw_events()
        buf = self._buf
        try:
            if not buf and self._remaining is None and not self._msg_opcode and SPEEDUPS:
                # Between messages with nothing buffered: whole single-frame messages
                # are taken by the C scanner in one call, the rest left to _parse.
                buf += data
                pos, found = scan(buf, 0, len(buf), self._client, self.max_size)
                if pos == len(buf):
                    buf.clear()
                    if not self._events:
                        return found
                    self._events.extend(found)
                    return self.raw_events()
                if found:
                    self._events.extend(found)
                del buf[:pos]
                self._parse(scanned=True)
            else:
                payload = self._payload
                if payload is not None and not buf:
                    # The rest of a large frame goes straight into its payload.
                    n = payload.feed(data)
                    if payload.remaining:
                        return self.raw_events()
                    self._end_payload()
                    if n == len(data) or self.input_done:
                        return self.raw_events()
                    data = memoryview(data)[n:]
                buf += data
                self._parse()
        except ProtocolError as exc:
            self.failure = exc
            self.fail(exc.close_code, exc.reason)
        except MemoryError:
            # One peer's message must not take the process down with it.
            self._payload = None
            error = MessageTooBig("message too big for the memory available")
            self.failure = error
            self.fail(error.close_code, error.reason)
        return self.raw_events()

    def receive_eof(self) -> None:
        """The TCP connection is closed (by the peer or by us). Idempotent."""
        if self.state is _CLOSED:
            return
        self.eof_received = True
        self.state = _CLOSED
        self.input_done = True
        self._buf.clear()
        self._msg_parts = []
        self._payload = None

    def _parse(self, scanned: bool = False) -> None:
        # scanned: the C scanner has just run at the start of the buffer.
        buf = self._buf
        end = len(buf)
        pos = 0
        client = self._client
        events = self._events
        max_size = self.max_size
        # The C scanner takes runs of whole single-frame messages in one call; this
        # loop handles everything else, and everything when it is not built.
        fast_scan = scan if SPEEDUPS else None
        try:
            while not self.input_done:
                remaining = self._remaining
                if remaining is None:
                    if scanned:
                        scanned = False
                    elif fast_scan is not None and not self._msg_opcode and end - pos >= 2:
                        pos, found = fast_scan(buf, pos, end, client, max_size)
                        if found:
                            events.extend(found)
                    # ---- frame header
                    if end - pos < 2:
                        break
                    b0 = buf[pos]
                    b1 = buf[pos + 1]
                    opcode = b0 & 0x0F
                    compressed = False
                    if b0 & 0x70:
                        # RFC 6455 §5.2: a nonzero RSV bit with no extension defining it
                        # MUST fail the connection. RFC 7692 §6 defines RSV1 on the
                        # first frame of a data message as "compressed".
                        if (b0 & 0x70) != 0x40 or self.deflate is None or not 1 <= opcode <= 2:
                            raise ProtocolError("reserved bits must be 0", "WS_RSV_SET")
                        compressed = True
                    if (b1 & 0x80) != (0 if client else 0x80):
                        # §5.1: servers get masked frames only; clients unmasked only.
                        if client:
                            raise ProtocolError(
                                "server frames must not be masked", "WS_MASKED_SERVER_FRAME"
                            )
                        raise ProtocolError(
                            "client frames must be masked", "WS_UNMASKED_CLIENT_FRAME"
                        )
                    length = b1 & 0x7F
                    if opcode >= 8:
                        if opcode > 10:
                            raise ProtocolError(
                                f"reserved opcode {opcode:#x}", "WS_RESERVED_OPCODE"
                            )
                        # §5.5: control frames carry at most 125 bytes, unfragmented.
                        if not b0 & 0x80:
                            raise ProtocolError(
                                "control frames must not be fragmented", "WS_FRAGMENTED_CONTROL"
                            )
                        if length > 125:
                            raise ProtocolError(
                                "control frame payload over 125 bytes", "WS_CONTROL_TOO_LONG"
                            )
                        hlen = 2 if client else 6
                        need = hlen + length
                        if end - pos < need:
                            break
                        if client:
                            payload = bytes(buf[pos + 2 : pos + need])
                        else:
                            # apply_mask returns bytes: one copy, not two.
                            payload = apply_mask(buf[pos + 6 : pos + need], buf[pos + 2 : pos + 6])
                        pos += need
                        self._control(opcode, payload)
                        continue
                    if opcode == _CONT:
                        if not self._msg_opcode:
                            raise ProtocolError(
                                "continuation frame without a message", "WS_UNEXPECTED_CONTINUATION"
                            )
                    elif opcode > 2:
                        raise ProtocolError(f"reserved opcode {opcode:#x}", "WS_RESERVED_OPCODE")
                    elif self._msg_opcode:
                        raise ProtocolError(
                            "new message inside a fragmented message", "WS_EXPECTED_CONTINUATION"
                        )
                    hlen = 2
                    if length == 126:
                        if end - pos < 4:
                            break
                        length = (buf[pos + 2] << 8) | buf[pos + 3]
                        hlen = 4
                    elif length == 127:
                        if end - pos < 10:
                            break
                        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                        if length >> 63:
                            raise ProtocolError(
                                "payload length has its top bit set", "WS_BAD_LENGTH"
                            )
                        hlen = 10
                    # §10.4: refuse an oversized message before buffering it. A
                    # compressed one is measured as it inflates instead.
                    if opcode == _CONT:
                        compressed = self._msg_compressed
                    # Deflate expands incompressible data by 5 bytes per stored
                    # block, and a compressor with a small memLevel makes blocks as
                    # small as 128 bytes (4%); so the wire limit of a compressed
                    # message leaves 1/16 of slack. It stops endless streams of empty
                    # blocks; the real limit is enforced on the inflated size.
                    if max_size is not None and self._msg_size + length > (
                        max_size + (max_size >> 4) + 1024 if compressed else max_size
                    ):
                        raise MessageTooBig(f"message over max_size ({max_size} bytes)")
                    if client:
                        key = None
                    else:
                        if end - pos < hlen + 4:
                            break
                        key = bytes(buf[pos + hlen : pos + hlen + 4])
                        hlen += 4
                    fin = b0 & 0x80
                    start = pos + hlen
                    if fin and opcode and end - start >= length:
                        # Fast path: a whole unfragmented message is here.
                        payload = bytes(buf[start : start + length])
                        if key is not None and length:
                            payload = apply_mask(payload, key)
                        pos = start + length
                        if compressed:
                            assert self.deflate is not None
                            payload = self.deflate.decompress_message(payload, max_size)
                        if opcode == _TEXT:
                            try:
                                events.append(payload.decode("utf-8"))
                            except UnicodeDecodeError:
                                raise InvalidUTF8("invalid UTF-8 in text message") from None
                        else:
                            events.append(payload)
                        continue
                    self._begin_frame(opcode, bool(fin), length, key, compressed)
                    pos = start
                    remaining = length
                    if (
                        _LARGE <= length <= _PAYLOAD_MAX
                        and not compressed
                        and (opcode or self._msg_opcode) == _BINARY
                    ):
                        self._payload = Payload(length, key)
                # ---- payload of a data frame, taken as it arrives
                payload = self._payload
                if payload is not None:
                    pos += payload.feed(buf, pos)
                    if payload.remaining:
                        break
                    self._end_payload()
                    continue
                n = end - pos
                if n > remaining:
                    n = remaining
                if n == 0 and remaining:
                    break
                chunk = bytes(buf[pos : pos + n])
                pos += n
                key = self._frame_key
                if key is not None and n:
                    chunk = apply_mask(chunk, key, self._frame_off)
                    self._frame_off += n
                remaining -= n
                self._remaining = remaining if remaining else None
                self._data(chunk, not remaining and self._frame_fin)
        finally:
            if self.input_done:
                buf.clear()
            elif pos:
                del buf[:pos]

    def _begin_frame(
        self, opcode: int, fin: bool, length: int, key: bytes | None, compressed: bool
    ) -> None:
        if opcode:
            self._msg_opcode = opcode
            self._msg_parts = []
            self._msg_size = 0
            self._msg_frames = 0
            self._msg_compressed = compressed
            self._msg_out = 0
            if compressed:
                assert self.deflate is not None
                self.deflate.start_message()
            self._decoder = Utf8Decoder() if opcode == _TEXT else None
        self._msg_frames += 1
        if self.max_fragments is not None and self._msg_frames > self.max_fragments:
            raise PolicyViolation(
                f"message in more than {self.max_fragments} fragments", "WS_TOO_MANY_FRAGMENTS"
            )
        self._msg_size += length
        self._remaining = length
        self._frame_fin = fin
        self._frame_key = key
        self._frame_off = 0

    def _end_payload(self) -> None:
        payload = self._payload
        assert payload is not None
        self._payload = None
        self._remaining = None
        self._data(payload.take(), self._frame_fin)

    def _data(self, chunk: bytes, last: bool) -> None:
        if self._msg_compressed:
            chunk = self._inflate(chunk, last)
        decoder = self._decoder
        if decoder is not None:
            try:
                text = decoder.decode(chunk, last)
            except UnicodeDecodeError:
                raise InvalidUTF8("invalid UTF-8 in text message") from None
            if text:
                self._msg_parts.append(text)  # type: ignore[arg-type]
        elif chunk:
            self._msg_parts.append(chunk)  # type: ignore[arg-type]
        if last:
            parts = self._msg_parts
            if decoder is not None:
                data: str | bytes = "".join(parts)  # type: ignore[arg-type]
            else:
                data = parts[0] if len(parts) == 1 else b"".join(parts)  # type: ignore[assignment,arg-type]
            self._msg_opcode = 0
            self._msg_parts = []
            self._msg_size = 0
            self._decoder = None
            self._events.append(data)

    def _inflate(self, chunk: bytes, last: bool) -> bytes:
        deflate = self.deflate
        assert deflate is not None
        max_size = self.max_size
        if chunk:
            allowance = None if max_size is None else max_size - self._msg_out
            chunk = deflate.decompress(chunk, allowance)
            self._msg_out += len(chunk)
        if last:
            allowance = None if max_size is None else max_size - self._msg_out
            tail = deflate.finish_message(allowance)
            if tail:
                chunk += tail
                self._msg_out += len(tail)
        return chunk

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == _PING:
            self._events.append(Ping(payload))
            # §5.5.2: answer with a pong carrying the same payload, unless we are
            # closing (nothing is sent after our close frame).
            if self.close_sent is None:
                self._write_frame(_PONG, payload, True)
        elif opcode == _PONG:
            self._events.append(Pong(payload))
        else:
            code, reason = decode_close(payload)
            self.close_rcvd = (code, reason)
            # §1.4/§5.5.1: after a close frame the peer sends nothing more we accept.
            self.input_done = True
            self._msg_parts = []
            self._events.append(CloseReceived(code, reason))
            if self.close_sent is None:
                # Echo the status code received (§5.5.1); an empty close is echoed empty.
                # A payload that decoded is a valid one to send back as it is (the
                # codes we accept are the codes we send).
                echo = None if code == 1005 else code  # 1005: no status code
                self._write_frame(_CLOSE, payload, True)
                self.close_sent = (echo, reason if echo else "")
            self.state = _CLOSING
            if not self._client:
                self.eof_wanted = True
