"""The Python servers under test, one per process: ``python -m benchmarks.servers NAME``.

Every server echoes each message back on any path and fans each message received on
``/bcast`` out to every ``/bcast`` connection (the sender included), in the idiomatic
way of its library. Compression and keepalive pings are off everywhere; the message
size limit is raised to 64 MiB. Each prints ``PORT <n> <json info>`` once listening
and exits on SIGTERM or when its standard input closes.

``raw`` is the ceiling: a uvloop TCP server that answers any HTTP request with a
fixed ``101`` and then copies bytes back (or to every ``/bcast`` connection) without
parsing a single frame.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import sys
import types
from collections.abc import Callable
from typing import Any

MAX_SIZE = 64 * 2**20
HOST = "127.0.0.1"
BACKLOG = 4096

PYTHON_SERVERS = ("fd-callback", "fd-asyncio", "websockets", "picows", "aiohttp", "raw")


def raise_fd_limit() -> int:
    """Raise the soft limit of open files to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


# ------------------------------------------------------------------- raw ceiling

RAW_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)


class RawProtocol(asyncio.Protocol):
    """Copies bytes; ``/bcast``: to all ``/bcast`` peers; ``/hs``: echoes once, closes."""

    subscribers: set[RawProtocol] = set()

    def __init__(self) -> None:
        self.transport: Any = None
        self.head = b""
        self.mode = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        mode = self.mode
        if mode == b"/":
            self.transport.write(data)
        elif mode == b"/bcast":
            for sub in self.subscribers:
                sub.transport.write(data)
        elif mode == b"/hs":
            self.transport.write(data)
            self.transport.close()
        else:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            path = self.head.split(b" ", 2)[1]
            rest = self.head[end + 4 :]
            self.head = b""
            self.mode = path if path in (b"/bcast", b"/hs") else b"/"
            if self.mode == b"/bcast":
                self.subscribers.add(self)
            self.transport.write(RAW_RESPONSE)
            if rest:
                self.data_received(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        self.subscribers.discard(self)


async def start_raw() -> tuple[int, dict[str, Any]]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(RawProtocol, HOST, 0, backlog=BACKLOG)
    return server.sockets[0].getsockname()[1], {}


# ------------------------------------------------------------ fullduplex, callbacks


def _allow_uvloop_transports() -> None:
    """Work around ``assert isinstance(transport, asyncio.Transport)`` under uvloop.

    uvloop's transports do not derive from ``asyncio.Transport``, so that assert in
    ``WebSocketProtocol.connection_made`` fails every connection. While it is there,
    the module sees an ``asyncio`` whose ``Transport`` also names uvloop's classes;
    nothing else changes.
    """
    import inspect

    import fullduplex.io.protocol as io_protocol

    source = inspect.getsource(io_protocol.WebSocketProtocol.connection_made)
    if "isinstance(transport, asyncio.Transport)" not in source:
        return
    try:
        import uvloop.loop
    except ImportError:
        return
    shim = types.ModuleType("asyncio")
    shim.__dict__.update(asyncio.__dict__)
    shim.Transport = (asyncio.Transport, uvloop.loop.TCPTransport)  # type: ignore[attr-defined]
    io_protocol.asyncio = shim  # type: ignore[attr-defined]
    WORKAROUNDS.append("uvloop transport assert")


WORKAROUNDS: list[str] = []


async def start_fd_callback() -> tuple[int, dict[str, Any]]:
    import fullduplex
    from fullduplex import broadcast

    _allow_uvloop_transports()
    subscribers: set[Any] = set()

    class Listener:
        """Echo; on ``/bcast``, fan each message out with ``broadcast()``."""

        __slots__ = ("fanout",)

        def __init__(self) -> None:
            self.fanout = False

        def on_open(self, ws: Any) -> None:
            if ws.request.path == "/bcast":
                self.fanout = True
                subscribers.add(ws)

        def on_message(self, ws: Any, data: Any) -> None:
            if self.fanout:
                broadcast(subscribers, data)
            else:
                ws.send(data)

        def on_close(self, ws: Any, code: int, reason: str, was_clean: bool) -> None:
            subscribers.discard(ws)

    options = {"ping_interval": None, "max_size": MAX_SIZE, "backlog": BACKLOG}
    serve_callbacks = getattr(fullduplex, "serve_callbacks", None)
    if serve_callbacks is not None:
        server = await serve_callbacks(Listener, HOST, 0, compression=None, **options)
        return server.port, _fd_info()
    # Before serve_callbacks(): the protocol class directly.
    from fullduplex.io.server import ServerProtocol

    options.pop("backlog")
    loop = asyncio.get_running_loop()
    raw_server = await loop.create_server(
        lambda: ServerProtocol(lambda proto: Listener(), **options), HOST, 0, backlog=BACKLOG
    )
    return raw_server.sockets[0].getsockname()[1], _fd_info()


def _fd_info() -> dict[str, Any]:
    import fullduplex

    info: dict[str, Any] = {"workarounds": WORKAROUNDS, "path": fullduplex.__file__}
    try:
        from fullduplex.protocol import _accel

        info["speedups"] = bool(getattr(_accel, "SPEEDUPS", False))
    except Exception:
        info["speedups"] = None
    return info


# -------------------------------------------------------------- fullduplex, asyncio


async def start_fd_asyncio() -> tuple[int, dict[str, Any]]:
    import fullduplex

    _allow_uvloop_transports()
    subscribers: set[Any] = set()

    async def handler(conn: Any) -> None:
        if conn.request.path == "/bcast":
            subscribers.add(conn)
            try:
                async for message in conn:
                    fullduplex.broadcast(subscribers, message)
            finally:
                subscribers.discard(conn)
        else:
            async for message in conn:
                await conn.send(message)

    server = await fullduplex.serve(
        handler,
        HOST,
        0,
        ping_interval=None,
        max_size=MAX_SIZE,
        compression=None,
        backlog=BACKLOG,
    )
    return server.port, _fd_info()


# ------------------------------------------------------------------------ websockets


async def start_websockets() -> tuple[int, dict[str, Any]]:
    import websockets
    from websockets.asyncio.server import broadcast, serve

    subscribers: set[Any] = set()

    async def handler(ws: Any) -> None:
        if ws.request.path == "/bcast":
            subscribers.add(ws)
            try:
                async for message in ws:
                    broadcast(subscribers, message)
            finally:
                subscribers.discard(ws)
        else:
            async for message in ws:
                await ws.send(message)

    server = await serve(
        handler,
        HOST,
        0,
        compression=None,
        ping_interval=None,
        max_size=MAX_SIZE,
        backlog=BACKLOG,
    )
    port = next(iter(server.sockets)).getsockname()[1]
    return port, {"version": websockets.__version__}


# ---------------------------------------------------------------------------- picows


async def start_picows() -> tuple[int, dict[str, Any]]:
    import picows
    from picows import WSListener, WSMsgType, ws_create_server

    close = WSMsgType.CLOSE
    binary = WSMsgType.BINARY
    subscribers: set[Any] = set()

    class Echo(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            msg_type = frame.msg_type
            if msg_type == close:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif msg_type != WSMsgType.PING and msg_type != WSMsgType.PONG:
                transport.send(msg_type, frame.get_payload_as_memoryview(), frame.fin)

    class Fanout(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: Any) -> None:
            subscribers.add(transport)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == close:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif frame.msg_type == binary:
                payload = frame.get_payload_as_bytes()
                for sub in subscribers:
                    sub.send(binary, payload)

        def on_ws_disconnected(self, transport: Any) -> None:
            subscribers.discard(transport)

    def factory(request: Any) -> Any:
        path = request.path
        if isinstance(path, bytes):
            path = path.decode()
        return Fanout() if path == "/bcast" else Echo()

    server = await ws_create_server(
        factory, HOST, 0, max_frame_size=MAX_SIZE, backlog=BACKLOG, websocket_handshake_timeout=10
    )
    return server.sockets[0].getsockname()[1], {"version": picows.__version__}


# --------------------------------------------------------------------------- aiohttp


async def start_aiohttp() -> tuple[int, dict[str, Any]]:
    import aiohttp
    from aiohttp import WSMsgType, web

    subscribers: set[Any] = set()

    async def handler(request: Any) -> Any:
        ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_SIZE)
        await ws.prepare(request)
        if request.path == "/bcast":
            subscribers.add(ws)
            try:
                async for msg in ws:
                    if msg.type == WSMsgType.BINARY:
                        for sub in list(subscribers):
                            if not sub.closed:
                                await sub.send_bytes(msg.data)
            finally:
                subscribers.discard(ws)
        else:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await ws.send_str(msg.data)
        return ws

    app = web.Application(client_max_size=MAX_SIZE)
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, backlog=BACKLOG)
    await site.start()
    server: Any = site._server
    return server.sockets[0].getsockname()[1], {"version": aiohttp.__version__}


STARTERS: dict[str, Callable[[], Any]] = {
    "raw": start_raw,
    "fd-callback": start_fd_callback,
    "fd-asyncio": start_fd_asyncio,
    "websockets": start_websockets,
    "picows": start_picows,
    "aiohttp": start_aiohttp,
}


async def amain(name: str) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def done() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done)

    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            done()

    try:
        loop.add_reader(sys.stdin.fileno(), stdin_readable)
    except (OSError, ValueError):
        pass  # not a pipe: SIGTERM only
    port, info = await STARTERS[name]()
    info["loop"] = type(loop).__module__.split(".")[0]
    print(f"PORT {port} {json.dumps(info)}", flush=True)
    await stop
    os._exit(0)  # no graceful shutdown: thousands of connections may still be open


def main() -> None:
    name = sys.argv[1]
    if name not in STARTERS:
        raise SystemExit(f"unknown server {name!r}; choose from {', '.join(STARTERS)}")
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(amain(name))
    else:
        uvloop.run(amain(name))


if __name__ == "__main__":
    main()
