"""permessage-deflate (RFC 7692) against the ``websockets`` library, both ways, in-process.

``test_server_*``: a ``websockets`` client, with its ``ClientPerMessageDeflateFactory``
set up in many ways, against ``fullduplex.serve``.
``test_client_*``: ``fullduplex.connect`` against a ``websockets`` server with its
``ServerPerMessageDeflateFactory`` set up in many ways.

Both libraries compress by default. After each handshake both ends must have agreed on
the same thing: each side's compressor within the window, and with the context
resets, that the other side's decompressor expects. ``websockets`` compresses every
message (it has no size threshold), so both decompressors are exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate as WsPerMessageDeflate,
    ServerPerMessageDeflateFactory,
)

import fullduplex
from fullduplex.protocol.deflate import DeflateOptions, PerMessageDeflate

pytestmark = pytest.mark.interop

TIMEOUT = 10.0
MiB = 2**20
FLAG_SETS = [(False, False), (True, False), (False, True), (True, True)]


def make_text(size: int) -> str:
    chars = "aé߀✓😀z𝄞 deflate "
    return (chars * (size // len(chars) + 1))[:size]


def make_binary(size: int, seed: int = 0) -> bytes:
    block = random.Random(seed).randbytes(4_000)
    return (block * (size // 4_000 + 1))[:size]


def messages(big: bool) -> list[Any]:
    result: list[Any] = [
        "",
        b"",
        "tiny",
        make_text(127),
        make_binary(128),
        make_text(70_000),
        make_binary(200_000, 1),
        random.Random(2).randbytes(50_000),  # incompressible
        [make_text(10_000), "", make_text(20_000), "!"],
        [make_binary(30_000, 3), b"", make_binary(30_000, 4)],
    ]
    if big:
        result += [make_text(MiB // 4), make_binary(MiB, 5), bytes(MiB)]
    return result


def joined(message: Any) -> Any:
    if not isinstance(message, list):
        return message
    return "".join(message) if isinstance(message[0], str) else b"".join(message)


def params_of(value: str) -> dict[str, str | None]:
    name, *params = (part.strip() for part in value.split(";"))
    assert name == "permessage-deflate", value
    result: dict[str, str | None] = {}
    for param in params:
        key, eq, val = param.partition("=")
        result[key.strip()] = val.strip().strip('"') if eq else None
    return result


def assert_compatible(ours: PerMessageDeflate | None, theirs: list[Any]) -> None:
    """Both ends agreed: what each compresses, the other can decompress."""
    assert ours is not None, "fullduplex did not agree on permessage-deflate"
    assert len(theirs) == 1 and isinstance(theirs[0], WsPerMessageDeflate), theirs
    ws = theirs[0]
    # Our compressor stays inside their decompressor's window, and the reverse.
    assert ours.local_max_window_bits <= ws.remote_max_window_bits, (ours, vars(ws))
    assert ws.local_max_window_bits <= ours.remote_max_window_bits, (ours, vars(ws))
    # A side that resets its decompressor per message needs the sender to reset too.
    if ws.remote_no_context_takeover:
        assert ours.local_no_context_takeover, (ours, vars(ws))
    if ours.remote_no_context_takeover:
        assert ws.local_no_context_takeover, (ours, vars(ws))


async def exchange_from_websockets(ws: Any, big: bool) -> None:
    for message in messages(big):
        await ws.send(message)
        echo = await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert echo == joined(message)


async def exchange_from_fullduplex(conn: Any, big: bool) -> None:
    for message in messages(big):
        await conn.send(message)
        echo = await asyncio.wait_for(conn.recv(), TIMEOUT)
        assert echo == joined(message)


# ---------------------------------------------------------------------------
# websockets client -> fullduplex server


def _client_factory_cases() -> list[Any]:
    # websockets clients refuse a client window of 8 (zlib cannot compress with it) and
    # offer server windows 8-15.
    server_bits: list[int | None] = [None, *range(8, 16)]
    client_bits: list[int | bool | None] = [None, True, *range(9, 16)]
    cases = []
    for shift in (0, 4):
        for i in range(9):
            snct, cnct = FLAG_SETS[(i + shift // 2) % 4]
            sbits, cbits = server_bits[(i + shift) % 9], client_bits[i]
            name = f"snct{int(snct)}-cnct{int(cnct)}-s{sbits}-c{cbits}".replace("True", "novalue")
            cases.append(pytest.param(snct, cnct, sbits, cbits, id=name))
    return cases


@pytest.mark.parametrize(("snct", "cnct", "sbits", "cbits"), _client_factory_cases())
async def test_server_with_client_factory(
    snct: bool, cnct: bool, sbits: int | None, cbits: int | bool | None, echo_handler: Any
) -> None:
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=snct,
        client_no_context_takeover=cnct,
        server_max_window_bits=sbits,
        client_max_window_bits=cbits,
    )
    async with fullduplex.serve(echo_handler, "127.0.0.1", 0, max_size=2 * MiB) as server:
        async with ws_connect(
            f"ws://127.0.0.1:{server.port}/",
            proxy=None,
            compression=None,
            extensions=[factory],
            max_size=None,
            open_timeout=TIMEOUT,
        ) as ws:
            conn = await echo_handler.next_connection()
            response = ws.response.headers["Sec-WebSocket-Extensions"]
            assert params_of(response) == params_of(conn.protocol.extensions)
            agreed = params_of(response)
            assert ("server_no_context_takeover" in agreed) == snct
            if sbits is not None:
                assert int(agreed["server_max_window_bits"] or 0) == sbits
            assert_compatible(conn.protocol.deflate, ws.protocol.extensions)
            await exchange_from_websockets(ws, big=False)


SERVER_OPTIONS = {
    "defaults": DeflateOptions(),
    "small-windows": DeflateOptions(server_max_window_bits=9, client_max_window_bits=9),
    "server-8": DeflateOptions(server_max_window_bits=8),
    "no-context-takeover": DeflateOptions(
        server_no_context_takeover=True, client_no_context_takeover=True, threshold=0
    ),
    "level-1-memlevel-1": DeflateOptions(compression_level=1, mem_level=1, threshold=0),
    "level-0-store": DeflateOptions(compression_level=0),
}


@pytest.mark.parametrize("name", list(SERVER_OPTIONS))
async def test_server_options_with_default_websockets_client(name: str, echo_handler: Any) -> None:
    options = SERVER_OPTIONS[name]
    async with fullduplex.serve(
        echo_handler, "127.0.0.1", 0, compression=options, max_size=2 * MiB
    ) as server:
        async with ws_connect(
            f"ws://127.0.0.1:{server.port}/", proxy=None, max_size=None, open_timeout=TIMEOUT
        ) as ws:
            conn = await echo_handler.next_connection()
            if name == "server-8":
                # websockets' default client does not offer server_max_window_bits, and
                # accepts an 8-bit server window (it only decompresses with it).
                assert params_of(ws.response.headers["Sec-WebSocket-Extensions"]) == {
                    "server_max_window_bits": "8"
                }
            assert_compatible(conn.protocol.deflate, ws.protocol.extensions)
            await exchange_from_websockets(ws, big=name == "defaults")


async def test_server_compression_off_with_websockets_client(echo_handler: Any) -> None:
    async with fullduplex.serve(echo_handler, "127.0.0.1", 0, compression=None) as server:
        async with ws_connect(f"ws://127.0.0.1:{server.port}/", proxy=None) as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            assert ws.protocol.extensions == []
            await exchange_from_websockets(ws, big=False)


# ---------------------------------------------------------------------------
# fullduplex client -> websockets server


@contextlib.asynccontextmanager
async def websockets_server(**kwargs: Any) -> AsyncIterator[tuple[str, asyncio.Queue[Any]]]:
    """A ``websockets`` echo server; yields its URL and a queue of its connections."""
    connections: asyncio.Queue[Any] = asyncio.Queue()

    async def echo(ws: Any) -> None:
        connections.put_nowait(ws)
        with contextlib.suppress(Exception):
            async for message in ws:
                await ws.send(message)

    async with ws_serve(echo, "127.0.0.1", 0, max_size=None, **kwargs) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", connections


def _server_factory_cases() -> list[Any]:
    # websockets servers refuse a server window of 8 and accept client windows 8-15.
    server_bits: list[int | None] = [None, *range(9, 16)]
    client_bits: list[int | None] = [None, *range(8, 16)]
    cases = []
    for shift in (0, 3):
        for i in range(9):
            snct, cnct = FLAG_SETS[(i + shift) % 4]
            sbits, cbits = server_bits[(i + shift) % 8], client_bits[i]
            require = cbits is not None and i % 2 == 0
            name = f"snct{int(snct)}-cnct{int(cnct)}-s{sbits}-c{cbits}" + (
                "-req" if require else ""
            )
            cases.append(pytest.param(snct, cnct, sbits, cbits, require, id=name))
    return cases


@pytest.mark.parametrize(("snct", "cnct", "sbits", "cbits", "require"), _server_factory_cases())
async def test_client_with_server_factory(
    snct: bool, cnct: bool, sbits: int | None, cbits: int | None, require: bool
) -> None:
    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=snct,
        client_no_context_takeover=cnct,
        server_max_window_bits=sbits,
        client_max_window_bits=cbits,
        require_client_max_window_bits=require,
    )
    async with (
        websockets_server(compression=None, extensions=[factory]) as (url, connections),
        fullduplex.connect(url, max_size=2 * MiB, open_timeout=TIMEOUT) as conn,
    ):
        ws = await asyncio.wait_for(connections.get(), TIMEOUT)
        agreed = params_of(conn.protocol.extensions)
        assert ("server_no_context_takeover" in agreed) == snct
        assert ("client_no_context_takeover" in agreed) == cnct
        assert agreed.get("server_max_window_bits") == (None if sbits is None else str(sbits))
        assert agreed.get("client_max_window_bits") == (None if cbits is None else str(cbits))
        assert_compatible(conn.protocol.deflate, ws.protocol.extensions)
        await exchange_from_fullduplex(conn, big=False)


CLIENT_OPTIONS = {
    "defaults": DeflateOptions(),
    "ask-everything": DeflateOptions(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=9,
        threshold=0,
    ),
    "ask-server-9": DeflateOptions(server_max_window_bits=9),
    "promise-client-8": DeflateOptions(client_max_window_bits=8),
    "no-client-bits": DeflateOptions(client_max_window_bits=None),
    "level-9-memlevel-9": DeflateOptions(compression_level=9, mem_level=9),
}


@pytest.mark.parametrize("name", list(CLIENT_OPTIONS))
async def test_client_options_with_default_websockets_server(name: str) -> None:
    options = CLIENT_OPTIONS[name]
    async with (
        websockets_server() as (url, connections),
        fullduplex.connect(
            url, compression=options, max_size=2 * MiB, open_timeout=TIMEOUT
        ) as conn,
    ):
        ws = await asyncio.wait_for(connections.get(), TIMEOUT)
        if name == "no-client-bits":
            # websockets' default server wants client_max_window_bits=12 but does not
            # require it: without the parameter offered it accepts a 15-bit client.
            assert "client_max_window_bits" not in params_of(conn.protocol.extensions)
        assert_compatible(conn.protocol.deflate, ws.protocol.extensions)
        await exchange_from_fullduplex(conn, big=name == "defaults")


async def test_client_compression_off_with_websockets_server() -> None:
    async with (
        websockets_server() as (url, connections),
        fullduplex.connect(url, compression=None, open_timeout=TIMEOUT) as conn,
    ):
        ws = await asyncio.wait_for(connections.get(), TIMEOUT)
        assert "Sec-WebSocket-Extensions" not in ws.request.headers
        assert ws.protocol.extensions == []
        assert conn.protocol.deflate is None
        await exchange_from_fullduplex(conn, big=False)


async def test_client_websockets_server_refusing_to_compress_with_8_bits() -> None:
    # zlib cannot compress raw DEFLATE with an 8-bit window, so websockets' server
    # declines an offer of server_max_window_bits=8 (fullduplex compresses with 9
    # bits instead, which stays within 256 bytes): the connection goes on uncompressed.
    async with (
        websockets_server() as (url, connections),
        fullduplex.connect(
            url, compression=DeflateOptions(server_max_window_bits=8), open_timeout=TIMEOUT
        ) as conn,
    ):
        ws = await asyncio.wait_for(connections.get(), TIMEOUT)
        assert ws.protocol.extensions == []
        assert conn.protocol.deflate is None
        await exchange_from_fullduplex(conn, big=False)
