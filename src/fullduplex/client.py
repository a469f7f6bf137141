"""``fullduplex.connect``: open a WebSocket connection from asyncio."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .connection import Connection
from .io.client import ClientProtocol, parse_uri
from .protocol.frames import CloseCode

__all__ = ["connect"]


class _Connect:
    """What :func:`connect` returns: ``await`` it or use it with ``async with``."""

    def __init__(self, uri: str, options: dict[str, Any]) -> None:
        self.uri = uri
        self.options = options
        self.connection: Connection | None = None

    async def _open(self) -> Connection:
        opts = dict(self.options)
        uri = parse_uri(self.uri)
        ssl_context = opts.pop("ssl")
        if uri.secure and ssl_context is None:
            ssl_context = ssl_module.create_default_context()
        elif not uri.secure and ssl_context is not None:
            raise ValueError("ssl= was given for a ws:// URL; use wss://")
        open_timeout = opts["open_timeout"]
        sock = opts.pop("sock")
        server_hostname = opts.pop("server_hostname")
        create_options = opts.pop("create_connection_options")
        max_queue = opts.pop("max_queue")
        headers = opts.pop("additional_headers")
        if isinstance(headers, Mapping):
            headers = list(headers.items())
        conn = Connection(max_queue=max_queue)
        loop = asyncio.get_running_loop()

        def factory() -> ClientProtocol:
            return ClientProtocol(uri, conn, additional_headers=headers, **opts)

        async def establish() -> ClientProtocol:
            kwargs: dict[str, Any] = dict(create_options)
            if ssl_context is not None:
                kwargs["ssl"] = ssl_context
                kwargs["server_hostname"] = server_hostname or uri.host
            if sock is not None:
                _, proto = await loop.create_connection(factory, sock=sock, **kwargs)
            else:
                _, proto = await loop.create_connection(factory, uri.host, uri.port, **kwargs)
            try:
                await proto.opened
            except BaseException:
                proto.abort()
                raise
            return proto

        if open_timeout is None:
            await establish()
        else:
            try:
                await asyncio.wait_for(establish(), open_timeout)
            except asyncio.TimeoutError:
                raise TimeoutError("timed out during the opening handshake") from None
        self.connection = conn
        return conn

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.connection is not None:
            await self.connection.close(CloseCode.NORMAL_CLOSURE)


def connect(
    uri: str,
    *,
    subprotocols: Sequence[str] | None = None,
    additional_headers: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
    origin: str | None = None,
    open_timeout: float | None = 10,
    max_size: int | None = 2**20,
    max_fragments: int | None = None,
    max_queue: int | None = 32,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    close_timeout: float = 10,
    write_limit: int = 64 * 1024,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    sock: Any = None,
    **create_connection_options: Any,
) -> _Connect:
    """Connect to a WebSocket server.

    ``async with connect("ws://127.0.0.1:9001/") as conn: await conn.send("hi")``
    or ``conn = await connect(...)``.

    Args:
        uri: a ``ws://`` or ``wss://`` URL; user info becomes HTTP Basic auth.
        subprotocols: subprotocols to offer, in order of preference.
        additional_headers: extra request headers.
        origin: value of the ``Origin`` header.
        open_timeout: seconds allowed for TCP connect plus the handshake.
        max_size, max_fragments, max_queue, ping_interval, ping_timeout,
        close_timeout, write_limit: as for :func:`fullduplex.serve`.
        ssl: client :class:`ssl.SSLContext` for ``wss://`` (default: verify the
            server's certificate and host name against the system trust store).
        server_hostname: host name to verify instead of the URL's.
        sock: an already connected socket to use.

    Raises:
        InvalidURI: the URL is not a WebSocket URL.
        InvalidStatus: the server answered with something other than 101.
        InvalidResponse: the 101 response is not a valid WebSocket answer.
        TimeoutError: ``open_timeout`` expired.
        OSError: the TCP connection failed.
    """
    return _Connect(
        uri,
        {
            "subprotocols": subprotocols,
            "additional_headers": additional_headers,
            "origin": origin,
            "open_timeout": open_timeout,
            "max_size": max_size,
            "max_fragments": max_fragments,
            "max_queue": max_queue,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "write_limit": write_limit,
            "ssl": ssl,
            "server_hostname": server_hostname,
            "sock": sock,
            "create_connection_options": create_connection_options,
        },
    )
