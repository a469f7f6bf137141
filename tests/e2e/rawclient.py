"""A small, independent WebSocket peer that speaks RFC 6455 by hand.

Nothing here imports fullduplex: the opening handshake, the frame encoder and the frame
decoder are written out again so that the end-to-end tests judge the library against
the RFC rather than against itself. The peer can misbehave on purpose: any opcode, any
RSV/FIN bits, masked or not (with a chosen key), any length encoding (including
non-minimal ones and a lying length), and a frame cut into pieces that are written
separately, with the event loop allowed to run the other side in between.

Reads never lose data that arrived before a TCP reset (``asyncio.StreamReader`` raises
the stored error before returning buffered bytes, so this module has its own protocol).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "PING",
    "PONG",
    "RSV1",
    "RSV2",
    "RSV3",
    "TEXT",
    "TIMEOUT",
    "Frame",
    "HttpMessage",
    "RawPeer",
    "RawServer",
    "accept_key",
    "apply_mask",
    "close_payload",
    "decode_frame",
    "encode_frame",
    "encode_header",
    "let_peer_run",
    "new_key",
    "open_tcp",
    "raw_client",
    "raw_server",
    "upgrade_headers",
]

# The budget for anything that must happen; generous, because it is only ever paid when
# a test is about to fail.
TIMEOUT = 5.0

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1, RSV2, RSV3 = 0b100, 0b010, 0b001

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

Mask = bytes | None | Literal["random"]


# --------------------------------------------------------------------------- frames


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``mask`` (RFC 6455 §5.3)."""
    n = len(data)
    if n == 0:
        return b""
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")


def encode_header(
    opcode: int,
    length: int,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length_size: int | None = None,
) -> bytes:
    """Encode a frame header (RFC 6455 §5.2) claiming a payload of ``length`` bytes.

    Args:
        opcode: 0..15, reserved values included.
        length: the payload length written in the header (it may lie).
        fin: the FIN bit.
        rsv: RSV1..RSV3 as a 3-bit number (``RSV1 | RSV3`` ...).
        mask: the 4-byte masking key, or ``None`` for an unmasked frame.
        length_size: extra length bytes: 0 (7-bit field), 2 or 8; ``None`` = minimal.
    """
    if length_size is None:
        length_size = 0 if length < 126 else 2 if length < 65536 else 8
    b0 = (0x80 if fin else 0) | (rsv & 0b111) << 4 | (opcode & 0x0F)
    mask_bit = 0x80 if mask is not None else 0
    if length_size == 0:
        assert length < 126, "a 7-bit length field holds 0..125"
        head = struct.pack("!BB", b0, mask_bit | length)
    elif length_size == 2:
        head = struct.pack("!BBH", b0, mask_bit | 126, length)
    elif length_size == 8:
        head = struct.pack("!BBQ", b0, mask_bit | 127, length)
    else:
        raise ValueError(f"length_size must be 0, 2 or 8, not {length_size}")
    if mask is not None:
        assert len(mask) == 4
        head += mask
    return head


def encode_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: Mask = "random",
    length_size: int | None = None,
) -> bytes:
    """Encode a whole frame; ``mask="random"`` draws a fresh key, ``None`` sends it bare."""
    key = os.urandom(4) if mask == "random" else mask
    assert key is None or isinstance(key, bytes)
    head = encode_header(opcode, len(payload), fin=fin, rsv=rsv, mask=key, length_size=length_size)
    return head + (apply_mask(payload, key) if key is not None else payload)


def close_payload(code: int | None = None, reason: bytes | str = b"") -> bytes:
    """The payload of a close frame: a 2-byte code then the reason (RFC 6455 §5.5.1)."""
    if isinstance(reason, str):
        reason = reason.encode()
    if code is None:
        assert not reason
        return b""
    return struct.pack("!H", code) + reason


@dataclass(frozen=True)
class Frame:
    """A decoded frame, with what the wire said about it."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0
    mask: bytes | None = None
    length_size: int = 0  # extra length bytes used on the wire: 0, 2 or 8

    @property
    def close_code(self) -> int | None:
        assert self.opcode == CLOSE, self
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> bytes:
        assert self.opcode == CLOSE, self
        return self.payload[2:]

    @property
    def minimal_length(self) -> bool:
        n = len(self.payload)
        return self.length_size == (0 if n < 126 else 2 if n < 65536 else 8)

    def __repr__(self) -> str:
        shown = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return (
            f"Frame(op=0x{self.opcode:X}, fin={self.fin}, rsv={self.rsv:03b}, "
            f"masked={self.mask is not None}, len={len(self.payload)}, {shown!r})"
        )


def decode_frame(buf: bytes | bytearray) -> tuple[Frame, int] | None:
    """Decode one frame from the front of ``buf``; ``None`` if it is not all there yet."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    length, pos, length_size = b1 & 0x7F, 2, 0
    if length == 126:
        if len(buf) < 4:
            return None
        (length,) = struct.unpack_from("!H", buf, 2)
        pos, length_size = 4, 2
    elif length == 127:
        if len(buf) < 10:
            return None
        (length,) = struct.unpack_from("!Q", buf, 2)
        pos, length_size = 10, 8
    mask = None
    if b1 & 0x80:
        if len(buf) < pos + 4:
            return None
        mask = bytes(buf[pos : pos + 4])
        pos += 4
    end = pos + length
    if len(buf) < end:
        return None
    payload = bytes(buf[pos:end])
    if mask is not None:
        payload = apply_mask(payload, mask)
    frame = Frame(
        opcode=b0 & 0x0F,
        payload=payload,
        fin=bool(b0 & 0x80),
        rsv=(b0 >> 4) & 0b111,
        mask=mask,
        length_size=length_size,
    )
    return frame, end


# --------------------------------------------------------------------------- transport


class _Stream(asyncio.Protocol):
    """Buffers everything received; remembers EOF and resets without dropping data."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self.lost: asyncio.Future[None] = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # let asyncio close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _wake(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    async def readable(self) -> None:
        """Return once more data or EOF arrives."""
        self._readable = self._loop.create_future()
        await self._readable

    async def drain(self) -> None:
        if self._writable is not None:
            await self._writable


async def let_peer_run() -> None:
    """Yield so the other side (same event loop) reads what was just written.

    The first pass lets the loop poll the peer's socket and queue its read callback; the
    second lets that callback run before this side writes again. Not a wait: no time
    passes, it only makes each written chunk a separate read on the other side.
    """
    await asyncio.sleep(0)
    await asyncio.sleep(0)


@dataclass
class HttpMessage:
    """An HTTP/1.1 request or response head."""

    start_line: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    @property
    def status(self) -> int:
        return int(self.start_line.split(" ", 2)[1])

    @property
    def path(self) -> str:
        return self.start_line.split(" ", 2)[1]

    def get(self, name: str) -> str | None:
        """All values of header ``name`` joined by ", ", or ``None`` when absent."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def tokens(self, name: str) -> list[str]:
        """A comma-separated header split into lower-case tokens."""
        value = self.get(name) or ""
        return [t.strip().lower() for t in value.split(",") if t.strip()]


class RawPeer:
    """One end of a TCP connection that speaks WebSocket frames by hand.

    ``client=True`` masks frames by default (as RFC 6455 §5.3 requires of clients);
    a server-side peer sends them bare.
    """

    def __init__(self, stream: _Stream, *, client: bool) -> None:
        self._stream = stream
        self.client = client

    # -- writing

    @property
    def transport(self) -> asyncio.Transport:
        assert self._stream.transport is not None
        return self._stream.transport

    async def send(self, data: bytes, *, chop: int | None = None) -> None:
        """Write ``data``; with ``chop``, in pieces of that size, each read separately."""
        if chop is None:
            self.transport.write(data)
            await self._stream.drain()
            return
        view = memoryview(data)
        for start in range(0, len(data), chop):
            self.transport.write(view[start : start + chop])
            await self._stream.drain()
            await let_peer_run()

    async def send_frame(
        self,
        opcode: int,
        payload: bytes | str = b"",
        *,
        fin: bool = True,
        rsv: int = 0,
        mask: Mask = "random",
        length_size: int | None = None,
        chop: int | None = None,
    ) -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        if not self.client and mask == "random":
            mask = None
        frame = encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, length_size=length_size)
        await self.send(frame, chop=chop)

    async def send_frames(self, frames: Iterable[tuple[int, bytes, bool]]) -> None:
        """Send (opcode, payload, fin) triples in one write."""
        mask: Mask = "random" if self.client else None
        data = b"".join(encode_frame(op, p, fin=fin, mask=mask) for op, p, fin in frames)
        await self.send(data)

    async def send_close(self, code: int | None = 1000, reason: bytes | str = b"") -> None:
        await self.send_frame(CLOSE, close_payload(code, reason))

    # -- reading

    async def recv_frame(self, timeout: float = TIMEOUT) -> Frame:
        """The next frame; raises ``EOFError`` on TCP close, ``TimeoutError`` on silence."""
        return await asyncio.wait_for(self._recv_frame(), timeout)

    async def _recv_frame(self) -> Frame:
        stream = self._stream
        while True:
            decoded = decode_frame(stream.buffer)
            if decoded is not None:
                frame, size = decoded
                del stream.buffer[:size]
                return frame
            if stream.eof:
                left = f" ({len(stream.buffer)} stray bytes)" if stream.buffer else ""
                raise EOFError(f"TCP connection closed{left}, error={stream.error!r}")
            await stream.readable()

    async def recv_message(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        """Read data frames up to FIN and return (opcode, payload); control frames fail."""
        opcode, parts = None, []
        while True:
            frame = await self.recv_frame(timeout)
            assert frame.opcode in (TEXT, BINARY, CONT), f"expected a data frame, got {frame}"
            if opcode is None:
                assert frame.opcode != CONT, f"continuation without a start: {frame}"
                opcode = frame.opcode
            else:
                assert frame.opcode == CONT, f"new message inside a fragmented one: {frame}"
            parts.append(frame.payload)
            if frame.fin:
                return opcode, b"".join(parts)

    async def expect_silence(self, timeout: float = 0.1) -> None:
        """Assert that no frame arrives within ``timeout``.

        A short quiet window proves little on its own; callers follow it with a round
        trip (an echo or a ping/pong) that would have come after anything sent earlier.
        """
        try:
            frame = await self.recv_frame(timeout)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"expected nothing, got {frame}")

    async def expect_close(
        self, code: int | None, *, reply: bool = True, timeout: float = TIMEOUT
    ) -> list[Frame]:
        """Read up to a close frame, assert its code, finish the closing handshake.

        Returns the non-close frames that came before the close. With ``reply`` a close
        frame is sent back (only valid at a frame boundary); either way, the peer must
        then close the TCP connection (RFC 6455 §7.1.1: the server closes it first).
        """
        before: list[Frame] = []
        while True:
            try:
                frame = await self.recv_frame(timeout)
            except EOFError as exc:
                raise AssertionError(
                    f"expected a close frame with code {code}, the TCP connection closed first"
                    f" (frames before: {before})"
                ) from exc
            except asyncio.TimeoutError as exc:
                raise AssertionError(
                    f"expected a close frame with code {code} within {timeout}s, got nothing"
                    f" (frames before: {before})"
                ) from exc
            if frame.opcode == CLOSE:
                break
            before.append(frame)
        assert frame.close_code == code, (
            f"close code {frame.close_code} (reason {frame.close_reason!r}), expected {code}"
        )
        if reply and not self._stream.eof:
            self.transport.write(
                encode_frame(CLOSE, frame.payload[:2], mask="random" if self.client else None)
            )
        await self.expect_eof(timeout)
        return before

    async def expect_eof(self, timeout: float = TIMEOUT) -> None:
        """Assert the peer closes TCP within ``timeout`` and sends no frame before."""
        try:
            frame = await self.recv_frame(timeout)
        except EOFError:
            return
        except asyncio.TimeoutError as exc:
            raise AssertionError(f"the TCP connection is still open after {timeout}s") from exc
        raise AssertionError(f"expected the TCP connection to close, got {frame}")

    @property
    def at_eof(self) -> bool:
        """Whether the peer closed TCP and everything it sent has been read."""
        return self._stream.eof and not self._stream.buffer

    # -- HTTP

    async def read_http(self, timeout: float = TIMEOUT) -> HttpMessage:
        """Read an HTTP head (and a Content-Length body); later bytes stay buffered."""
        return await asyncio.wait_for(self._read_http(), timeout)

    async def _read_http(self) -> HttpMessage:
        stream = self._stream
        while (end := stream.buffer.find(b"\r\n\r\n")) < 0:
            if stream.eof:
                raise EOFError(f"TCP closed inside an HTTP head: {bytes(stream.buffer)!r}")
            await stream.readable()
        head = bytes(stream.buffer[:end]).decode("latin-1")
        del stream.buffer[: end + 4]
        start_line, *lines = head.split("\r\n")
        headers = []
        for line in lines:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        message = HttpMessage(start_line, headers)
        length = int(message.get("Content-Length") or 0)
        while len(stream.buffer) < length and not stream.eof:
            await stream.readable()
        message.body = bytes(stream.buffer[:length])
        del stream.buffer[:length]
        return message

    async def handshake(
        self, headers: list[tuple[str, str]], path: str = "/", timeout: float = TIMEOUT
    ) -> HttpMessage:
        """Send an upgrade request with exactly ``headers``; return the response head."""
        lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers), "", ""]
        self.transport.write("\r\n".join(lines).encode("latin-1"))
        return await self.read_http(timeout)

    async def accept_handshake(
        self, *, extra: list[tuple[str, str]] | None = None, timeout: float = TIMEOUT
    ) -> HttpMessage:
        """Server side: read an upgrade request and answer 101 (no checks beyond the key)."""
        request = await self.read_http(timeout)
        key = request.get("Sec-WebSocket-Key")
        assert key, request
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_key(key)}",
            *(f"{k}: {v}" for k, v in extra or []),
            "",
            "",
        ]
        self.transport.write("\r\n".join(lines).encode("latin-1"))
        return request

    # -- closing

    def abort(self) -> None:
        """Drop the TCP connection at once (RST), without a closing handshake."""
        if self._stream.transport is not None:
            self.transport.abort()

    def close_tcp(self) -> None:
        """Close the TCP connection (FIN) without a closing handshake."""
        if self._stream.transport is not None:
            self.transport.close()

    async def aclose(self) -> None:
        """Release the socket and wait until asyncio has let go of it."""
        if self._stream.transport is not None:
            self.transport.close()
            await asyncio.wait_for(asyncio.shield(self._stream.lost), TIMEOUT)


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_headers(port: int, key: str | None = None) -> list[tuple[str, str]]:
    """The headers of a minimal valid upgrade request (RFC 6455 §4.1)."""
    return [
        ("Host", f"127.0.0.1:{port}"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key or new_key()),
        ("Sec-WebSocket-Version", "13"),
    ]


async def open_tcp(port: int, host: str = "127.0.0.1") -> RawPeer:
    loop = asyncio.get_running_loop()
    _, stream = await loop.create_connection(_Stream, host, port)
    return RawPeer(stream, client=True)


@asynccontextmanager
async def raw_client(
    port: int,
    *,
    handshake: bool = True,
    headers: list[tuple[str, str]] | None = None,
    path: str = "/",
) -> AsyncIterator[RawPeer]:
    """A raw client connected to ``port``, by default past a checked opening handshake."""
    peer = await open_tcp(port)
    try:
        if handshake:
            key = new_key()
            response = await peer.handshake(headers or upgrade_headers(port, key), path)
            assert response.status == 101, response
            # RFC 6455 §4.2.2 / §4.1: the client must check these three.
            assert "websocket" in response.tokens("Upgrade"), response
            assert "upgrade" in response.tokens("Connection"), response
            if headers is None:
                assert response.get("Sec-WebSocket-Accept") == accept_key(key), response
        yield peer
    finally:
        await peer.aclose()


class RawServer:
    """A listening socket whose connections are handed out as server-side RawPeers."""

    def __init__(self) -> None:
        self._accepted: asyncio.Queue[RawPeer] = asyncio.Queue()
        self._peers: list[RawPeer] = []
        self._server: asyncio.AbstractServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        sockets = self._server.sockets  # type: ignore[attr-defined]
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        def factory() -> _Stream:
            stream = _Stream()
            peer = RawPeer(stream, client=False)
            self._peers.append(peer)
            self._accepted.put_nowait(peer)
            return stream

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, "127.0.0.1", 0)

    async def accept(self, timeout: float = TIMEOUT) -> RawPeer:
        """The next TCP connection (no handshake done yet)."""
        return await asyncio.wait_for(self._accepted.get(), timeout)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for peer in self._peers:
            await peer.aclose()
        await self._server.wait_closed()


@asynccontextmanager
async def raw_server() -> AsyncIterator[RawServer]:
    server = RawServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
