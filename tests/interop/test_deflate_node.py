"""permessage-deflate (RFC 7692) against Node's ``ws`` (8.x), both ways.

``test_client_*``: ``fullduplex.connect`` against ``node/echo_server.js`` started with
``--per-message-deflate`` (``threshold: 0``, so ``ws`` compresses every message).
``test_server_*``: ``node/client.js`` with a ``perMessageDeflate`` scenario against
``fullduplex.serve``.

Every connection runs through :class:`WireTap`, a relay that records the frame headers
going each way, so the tests see that messages really travel compressed (RSV1 on the
first frame), not only that they arrive intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import fullduplex
from fullduplex.protocol.deflate import DEFAULT_THRESHOLD, DeflateOptions

pytestmark = pytest.mark.interop

TIMEOUT = 10.0
MiB = 2**20
UNICODE_CHARS = "aé߀✓😀z𝄞"


def make_text(size: int, pattern: str = "ascii") -> str:
    chars = UNICODE_CHARS if pattern == "unicode" else "abcdefghijklmnopqrstuvwxyz"
    return (chars * (size // len(chars) + 1))[:size]


def make_binary(size: int, pattern: str = "random") -> bytes:
    if pattern == "zeros":
        return bytes(size)
    if pattern == "repeats":  # compressible, with back-references at many distances
        block = random.Random(size).randbytes(3_000)
        return (block * (size // 3_000 + 1))[:size]
    return random.Random(size).randbytes(size)


def extension_params(value: str) -> dict[str, str | None] | None:
    """``"permessage-deflate; a; b=1"`` → ``{"a": None, "b": "1"}``; ``""`` → None."""
    if not value:
        return None
    name, *params = (part.strip() for part in value.split(";"))
    assert name == "permessage-deflate", value
    result: dict[str, str | None] = {}
    for param in params:
        key, eq, val = param.partition("=")
        result[key.strip()] = val.strip().strip('"') if eq else None
    return result


# ---------------------------------------------------------------------------
# A relay that watches frames go by


@dataclass(frozen=True)
class Seen:
    opcode: int
    rsv: int
    fin: bool
    length: int


class _FrameLog:
    """Parses one direction of a WebSocket connection: the HTTP head, then frames."""

    def __init__(self) -> None:
        self.frames: list[Seen] = []
        self._buf = bytearray()
        self._in_http = True
        self._skip = 0

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while True:
            if self._in_http:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                del buf[: end + 4]
                self._in_http = False
            if self._skip:
                n = min(self._skip, len(buf))
                del buf[:n]
                self._skip -= n
                if self._skip:
                    return
            if len(buf) < 2:
                return
            b0, b1 = buf[0], buf[1]
            length, pos = b1 & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, pos = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, pos = int.from_bytes(buf[2:10], "big"), 10
            if b1 & 0x80:
                pos += 4
            if len(buf) < pos:
                return
            self.frames.append(Seen(b0 & 0x0F, (b0 >> 4) & 7, bool(b0 & 0x80), length))
            del buf[:pos]
            self._skip = length

    def messages(self) -> list[list[Seen]]:
        """Data frames grouped by message; control frames left out."""
        result: list[list[Seen]] = []
        current: list[Seen] = []
        for frame in self.frames:
            if frame.opcode >= 8:
                continue
            current.append(frame)
            if frame.fin:
                result.append(current)
                current = []
        return result


@dataclass
class WireTap:
    """A TCP relay on 127.0.0.1 to ``target_port``, logging frame headers both ways."""

    target_port: int
    to_server: _FrameLog = field(default_factory=_FrameLog)
    to_client: _FrameLog = field(default_factory=_FrameLog)
    port: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: _FrameLog
    ) -> None:
        try:
            while data := await reader.read(256 * 1024):
                log.feed(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            writer.transport.abort()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        pumps = [
            asyncio.ensure_future(self._pump(client_r, server_w, self.to_server)),
            asyncio.ensure_future(self._pump(server_r, client_w, self.to_client)),
        ]
        try:
            await asyncio.gather(*pumps)
        finally:
            for pump in pumps:
                pump.cancel()
            client_w.close()
            server_w.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[WireTap]:
        def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            task = asyncio.ensure_future(self._handle(r, w))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=TIMEOUT)
            await server.wait_closed()


def assert_compressed(messages: list[list[Seen]], sizes: list[int], threshold: int) -> None:
    """Each message of ``sizes`` bytes has RSV1 on its first frame iff size >= threshold."""
    assert len(messages) == len(sizes), (len(messages), len(sizes))
    for frames, size in zip(messages, sizes, strict=True):
        assert all(f.rsv == 0 for f in frames[1:]), frames  # §6: the first frame only
        assert frames[0].rsv == (4 if size >= threshold else 0), (size, frames)


def wire_size(message: list[Seen]) -> int:
    return sum(f.length for f in message)


# ---------------------------------------------------------------------------
# fullduplex client -> Node ws server


FLAG_SETS = [(False, False), (True, False), (False, True), (True, True)]


def window_cases(
    server_bits: range | list[int] = range(8, 16),
) -> dict[str, tuple[dict[str, Any], dict[str, str | None]]]:
    """ws options and the agreed parameters, for a server window of 8 to 15 bits.

    The client window is the mirror image (``23 - bits``) and the two
    ``*NoContextTakeover`` flags take each combination twice, so eight cases cover
    every value on both sides.
    """
    cases = {}
    for bits in server_bits:
        snct, cnct = FLAG_SETS[bits % 4]
        ws_options: dict[str, Any] = {
            "serverMaxWindowBits": bits,
            "clientMaxWindowBits": 23 - bits,
        }
        agreed: dict[str, str | None] = {}
        if snct:
            ws_options["serverNoContextTakeover"] = True
            agreed["server_no_context_takeover"] = None
        if cnct:
            ws_options["clientNoContextTakeover"] = True
            agreed["client_no_context_takeover"] = None
        agreed["server_max_window_bits"] = str(bits)
        agreed["client_max_window_bits"] = str(23 - bits)
        name = f"s{bits}-c{23 - bits}" + ("-snct" if snct else "") + ("-cnct" if cnct else "")
        cases[name] = (ws_options, agreed)
    return cases


# (ws server perMessageDeflate options, our client's options, expected agreed params)
SERVER_CASES: dict[str, tuple[dict[str, Any], DeflateOptions, dict[str, str | None]]] = {
    "defaults": ({}, DeflateOptions(), {}),
    # ws announces its windows even when not asked, and always states
    # client_max_window_bits when it has a number for it.
    **{name: (ws, DeflateOptions(), agreed) for name, (ws, agreed) in window_cases().items()},
    "we-ask-server-limits": (
        {},
        DeflateOptions(server_no_context_takeover=True, server_max_window_bits=9),
        {"server_no_context_takeover": None, "server_max_window_bits": "9"},
    ),
    "we-promise-client-limits": (
        {},
        DeflateOptions(client_no_context_takeover=True, client_max_window_bits=12),
        {"client_no_context_takeover": None, "client_max_window_bits": "12"},
    ),
}

BIG_CASES = {"defaults"}


def client_messages(big: bool) -> list[Any]:
    messages: list[Any] = [
        "",
        make_text(127),
        make_binary(128, "repeats"),
        make_binary(200_000, "repeats"),
        [make_text(10_000, "unicode"), "", make_text(30_001, "unicode"), "end"],
    ]
    if big:
        messages += [
            b"",
            "a",
            b"\x00",
            make_text(70_000, "unicode"),
            make_binary(100_000),  # incompressible: stored blocks
            [make_binary(50_000, "repeats"), make_binary(50_000, "repeats"), b"!"],
            make_text(MiB),
            make_binary(MiB),
            make_binary(MiB, "zeros"),
        ]
    return messages


def joined(message: Any) -> str | bytes:
    """The message a list of fragments makes."""
    if not isinstance(message, list):
        return message  # type: ignore[no-any-return]
    return "".join(message) if isinstance(message[0], str) else b"".join(message)


def payload_size(message: Any) -> int:
    parts = message if isinstance(message, list) else [message]
    return sum(len(p.encode() if isinstance(p, str) else p) for p in parts)


@pytest.mark.parametrize("case", list(SERVER_CASES))
async def test_client_against_ws_server(case: str, node: Any) -> None:
    ws_options, our_options, expected = SERVER_CASES[case]
    pmd = json.dumps({"threshold": 0, **ws_options})
    messages = client_messages(case in BIG_CASES)
    async with (
        node.echo_server("--per-message-deflate", pmd) as server,
        WireTap(server.port).running() as tap,
    ):
        async with fullduplex.connect(
            tap.url, compression=our_options, max_size=2 * MiB, open_timeout=TIMEOUT
        ) as conn:
            event = await server.next_event("connection")
            assert extension_params(event["extensions"]) == expected, event["extensions"]
            assert extension_params(conn.protocol.extensions) == expected
            for message in messages:
                await conn.send(message)
                echo = await asyncio.wait_for(conn.recv(), TIMEOUT)
                assert echo == joined(message), (case, payload_size(message))
        await server.next_event("close")
    sizes = [payload_size(m) for m in messages]
    # Ours compresses from the default threshold up; ws (threshold 0) compresses all.
    assert_compressed(tap.to_server.messages(), sizes, DEFAULT_THRESHOLD)
    assert_compressed(tap.to_client.messages(), sizes, 0)


async def test_client_context_takeover_saves_bytes_both_ways(node: Any) -> None:
    data = make_binary(5_000)  # incompressible alone; the repeat is a back-reference
    pmd = json.dumps({"threshold": 0})
    async with (
        node.echo_server("--per-message-deflate", pmd) as server,
        WireTap(server.port).running() as tap,
        fullduplex.connect(tap.url, open_timeout=TIMEOUT) as conn,
    ):
        for _ in range(3):
            await conn.send(data)
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == data
    for log in (tap.to_server, tap.to_client):
        sizes = [wire_size(m) for m in log.messages()]
        assert sizes[0] > 5_000 and sizes[1] < 100 and sizes[2] < 100, sizes


async def test_client_without_compression_against_ws_server(node: Any) -> None:
    pmd = json.dumps({"threshold": 0})
    async with (
        node.echo_server("--per-message-deflate", pmd) as server,
        WireTap(server.port).running() as tap,
        fullduplex.connect(tap.url, compression=None, open_timeout=TIMEOUT) as conn,
    ):
        event = await server.next_event("connection")
        assert event["extensions"] == ""
        assert "sec-websocket-extensions" not in event["headers"]
        await conn.send(make_text(10_000))
        assert await asyncio.wait_for(conn.recv(), TIMEOUT) == make_text(10_000)
    assert all(f.rsv == 0 for f in tap.to_server.frames + tap.to_client.frames)


async def test_client_offer_ws_server_cannot_accept(node: Any) -> None:
    # ws with clientMaxWindowBits set cannot accept an offer without
    # client_max_window_bits (ours, with client_max_window_bits=None). Rather than
    # answer without the extension, ws refuses the handshake with 400.
    pmd = json.dumps({"threshold": 0, "clientMaxWindowBits": 10})
    async with node.echo_server("--per-message-deflate", pmd) as server:
        with pytest.raises(fullduplex.InvalidStatus) as info:
            await fullduplex.connect(
                server.url,
                compression=DeflateOptions(client_max_window_bits=None),
                open_timeout=TIMEOUT,
            )
    assert info.value.status == 400


# ---------------------------------------------------------------------------
# Node ws client -> fullduplex server


def client_specs(big: bool) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = [
        {"type": "text", "size": 0},
        {"type": "text", "size": 127},
        {"type": "binary", "size": 128},
        {"type": "binary", "size": 200_000},
        # Split inside UTF-8 sequences, in the uncompressed data.
        {"type": "text", "size": 40_000, "pattern": "unicode", "fragments": 7},
    ]
    if big:
        specs += [
            {"type": "binary", "size": 0},
            {"type": "text", "size": 1},
            {"type": "text", "size": 70_000, "pattern": "unicode"},
            {"type": "binary", "size": 300_000, "pattern": "zeros"},
            {"type": "binary", "size": 100_000, "fragments": 4},
            {"type": "text", "size": MiB},
            {"type": "binary", "size": MiB},
            {"type": "binary", "size": MiB, "pattern": "zeros"},
        ]
    return specs


# (ws client perMessageDeflate options, our server's options, expected agreed params)
CLIENT_CASES: dict[str, tuple[dict[str, Any], DeflateOptions | str, dict[str, str | None]]] = {
    "defaults": ({}, "deflate", {}),
    # ws offers exactly these; we accept them as offered (client_max_window_bits=15
    # is left out: it is no limit). Four cases keep both 8-bit windows and each pair
    # of flags; the e2e tests cover every window on both sides.
    **{
        name: (
            ws,
            "deflate",
            {k: v for k, v in agreed.items() if (k, v) != ("client_max_window_bits", "15")},
        )
        for name, (ws, agreed) in window_cases([8, 10, 13, 15]).items()
    },
    "our-server-limits": (
        {},
        DeflateOptions(
            server_no_context_takeover=True,
            server_max_window_bits=10,
            client_max_window_bits=9,
            threshold=0,
        ),
        {
            "server_no_context_takeover": None,
            "server_max_window_bits": "10",
            "client_max_window_bits": "9",
        },
    ),
    "our-server-requires-client-no-context-takeover": (
        {},
        DeflateOptions(client_no_context_takeover=True, server_max_window_bits=8),
        {"client_no_context_takeover": None, "server_max_window_bits": "8"},
    ),
}


@pytest.mark.parametrize("case", list(CLIENT_CASES))
async def test_server_against_ws_client(case: str, node: Any, echo_handler: Any) -> None:
    ws_options, our_options, expected = CLIENT_CASES[case]
    specs = client_specs(case == "defaults")
    scenario = {
        "perMessageDeflate": {"threshold": 0, **ws_options},
        "messages": specs,
        "close": {"code": 1000},
    }
    async with fullduplex.serve(
        echo_handler, "127.0.0.1", 0, compression=our_options, max_size=2 * MiB
    ) as server:
        async with WireTap(server.port).running() as tap:
            run = await node.run_client(tap.url, scenario)
            conn = await echo_handler.next_connection()
            await echo_handler.next_ended()
    assert run.report["ok"], (run.report, run.stderr)
    assert run.returncode == 0
    assert extension_params(run.report["extensions"]) == expected, run.report["extensions"]
    assert extension_params(conn.protocol.extensions) == expected
    sizes = [m["bytes"] for m in run.report["messages"]]
    threshold = our_options.threshold if isinstance(our_options, DeflateOptions) else 128
    assert_compressed(tap.to_server.messages(), sizes, 0)
    assert_compressed(tap.to_client.messages(), sizes, threshold)


async def test_server_ws_client_without_compression(node: Any, echo_handler: Any) -> None:
    scenario = {"messages": [{"type": "text", "size": 10_000}], "close": {"code": 1000}}
    async with fullduplex.serve(echo_handler, "127.0.0.1", 0) as server:
        async with WireTap(server.port).running() as tap:
            run = await node.run_client(tap.url, scenario)
    assert run.report["ok"], (run.report, run.stderr)
    assert run.report["extensions"] == ""
    assert all(f.rsv == 0 for f in tap.to_server.frames + tap.to_client.frames)


async def test_server_compression_off_with_ws_client(node: Any, echo_handler: Any) -> None:
    scenario = {
        "perMessageDeflate": {"threshold": 0},
        "messages": [{"type": "binary", "size": 100_000, "fragments": 3}],
        "close": {"code": 1000},
    }
    async with fullduplex.serve(echo_handler, "127.0.0.1", 0, compression=None) as server:
        async with WireTap(server.port).running() as tap:
            run = await node.run_client(tap.url, scenario)
    assert run.report["ok"], (run.report, run.stderr)
    assert run.report["extensions"] == ""
    assert all(f.rsv == 0 for f in tap.to_server.frames + tap.to_client.frames)
