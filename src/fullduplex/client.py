"""``fullduplex.connect``: open a WebSocket connection from asyncio."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ipaddress
import socket
import ssl as ssl_module
import urllib.parse
import urllib.request
from collections.abc import Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .connection import Connection
from .errors import InvalidResponse, InvalidStatus, InvalidURI
from .io.client import ClientProtocol, WebSocketURI, parse_uri
from .protocol.deflate import DeflateOptions, deflate_options
from .protocol.frames import CloseCode

__all__ = ["connect", "connect_callbacks"]


class _Connect:
    """What :func:`connect` returns: ``await`` it or use it with ``async with``."""

    def __init__(self, uri: str, options: dict[str, Any]) -> None:
        self.uri = uri
        self.options = options
        self.connection: Connection | None = None

    async def _open(self) -> Connection:
        opts = dict(self.options)
        open_timeout = opts["open_timeout"]
        if open_timeout is None:
            conn = await self._open_following_redirects(opts)
        else:
            try:
                conn = await asyncio.wait_for(self._open_following_redirects(opts), open_timeout)
            except asyncio.TimeoutError:
                raise TimeoutError("timed out during the opening handshake") from None
        self.connection = conn
        return conn

    async def _open_following_redirects(self, opts: dict[str, Any]) -> Connection:
        uri = parse_uri(self.uri)
        headers = opts.pop("additional_headers")
        headers = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        max_redirects = opts.pop("max_redirects")
        for _ in range(max_redirects + 1):
            try:
                return await self._open_once(uri, headers, dict(opts))
            except InvalidStatus as exc:
                response = exc.response
                location = getattr(response, "headers", {}).get("Location")
                if exc.status not in (301, 302, 303, 307, 308) or not location:
                    raise
                target = _redirect_target(uri, location)
                if uri.secure and not target.secure:
                    raise InvalidURI(f"refusing a redirect from wss:// to {location}") from exc
                if _origin(target) != _origin(uri):
                    # Credentials are for the origin they were given for: do not
                    # hand them to another one.
                    target = dataclasses.replace(target, username=None, password=None)
                    headers = [
                        (name, value)
                        for name, value in headers
                        if name.lower() not in ("authorization", "cookie")
                    ]
                uri = target
        raise InvalidURI(f"more than {max_redirects} redirects")

    async def _open_once(
        self, uri: WebSocketURI, headers: list[tuple[str, str]], opts: dict[str, Any]
    ) -> Connection:
        ssl_context = opts.pop("ssl")
        if uri.secure and ssl_context is None:
            ssl_context = ssl_module.create_default_context()
        elif not uri.secure and ssl_context is not None:
            raise ValueError("ssl= was given for a ws:// URL; use wss://")
        opts.pop("open_timeout")
        sock = opts.pop("sock")
        unix = opts.pop("unix")
        proxy = opts.pop("proxy")
        server_hostname = opts.pop("server_hostname")
        create_options = dict(opts.pop("create_connection_options"))
        max_queue = opts.pop("max_queue")
        listener = opts.pop("listener", None)
        conn = Connection(max_queue=max_queue) if listener is None else listener
        loop = asyncio.get_running_loop()

        def factory() -> ClientProtocol:
            return ClientProtocol(uri, conn, additional_headers=headers, **opts)

        if ssl_context is not None:
            create_options["ssl"] = ssl_context
            create_options["server_hostname"] = server_hostname or uri.host
        proxy_url = _proxy_for(uri) if proxy is True else proxy
        if unix is not None:
            _, proto = await loop.create_unix_connection(factory, unix, **create_options)
        elif sock is not None:
            _, proto = await loop.create_connection(factory, sock=sock, **create_options)
        elif proxy_url:
            tunnel = await _connect_through_proxy(proxy_url, uri)
            try:
                _, proto = await loop.create_connection(factory, sock=tunnel, **create_options)
            except BaseException:
                tunnel.close()
                raise
        else:
            _, proto = await loop.create_connection(factory, uri.host, uri.port, **create_options)
        try:
            await proto.opened
        except BaseException:
            proto.abort()
            raise
        if listener is not None:
            return proto  # type: ignore[return-value]
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
    compression: DeflateOptions | str | None = "deflate",
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
    unix: str | None = None,
    proxy: str | bool | None = True,
    max_redirects: int = 10,
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
        compression: ``"deflate"`` (default) offers permessage-deflate;
            a :class:`~fullduplex.protocol.deflate.DeflateOptions` tunes the offer;
            ``None`` offers no compression.
        open_timeout: seconds allowed for TCP connect plus the handshake.
        max_size, max_fragments, max_queue, ping_interval, ping_timeout,
        close_timeout, write_limit: as for :func:`fullduplex.serve`.
        ssl: client :class:`ssl.SSLContext` for ``wss://`` (default: verify the
            server's certificate and host name against the system trust store).
        server_hostname: host name to verify instead of the URL's.
        sock: an already connected socket to use.
        unix: path of a Unix domain socket to connect to instead of the URL's
            host and port (the URL still gives ``Host`` and the path).
        proxy: an ``http://[user:pass@]host:port`` proxy to tunnel through with
            ``CONNECT``; ``True`` (default) takes it from the ``https_proxy`` /
            ``http_proxy`` / ``all_proxy`` environment variables, honouring
            ``no_proxy`` and never proxying loopback addresses; ``None`` or
            ``False``: connect directly.
        max_redirects: redirects (301, 302, 303, 307, 308) followed before giving
            up. Credentials are dropped when a redirect leaves the origin, and a
            redirect from ``wss://`` to ``ws://`` is refused.

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
            "compression": deflate_options(compression),
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
            "unix": unix,
            "proxy": proxy,
            "max_redirects": max_redirects,
            "create_connection_options": create_connection_options,
        },
    )


def _origin(uri: WebSocketURI) -> tuple[bool, str, int]:
    return (uri.secure, uri.host.lower(), uri.port)


def _redirect_target(uri: WebSocketURI, location: str) -> WebSocketURI:
    """Resolve a ``Location`` against the current URL; http(s) maps to ws(s)."""
    base = f"{'https' if uri.secure else 'http'}://{uri.host_header}{uri.resource}"
    target = urllib.parse.urljoin(base, location)
    scheme, rest = target.split(":", 1)
    scheme = {"http": "ws", "https": "wss"}.get(scheme.lower(), scheme.lower())
    return parse_uri(f"{scheme}:{rest}")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _proxy_for(uri: WebSocketURI) -> str | None:
    """The proxy the environment configures for ``uri``, or ``None``."""
    if _is_loopback(uri.host):
        return None
    if urllib.request.proxy_bypass(uri.host):
        return None
    proxies = urllib.request.getproxies()
    for key in (("https", "wss") if uri.secure else ("http", "ws")) + ("all",):
        if proxies.get(key):
            return proxies[key]
    return None


async def _connect_through_proxy(proxy: str, uri: WebSocketURI) -> socket.socket:
    """Open a TCP tunnel to ``uri`` through an HTTP proxy with ``CONNECT``."""
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    if parts.scheme != "http" or not parts.hostname:
        raise InvalidURI(f"unsupported proxy {proxy!r}: only http:// proxies are supported")
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(parts.hostname, parts.port or 8080, type=socket.SOCK_STREAM)
    error: OSError | None = None
    sock: socket.socket | None = None
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            break
        except OSError as exc:
            sock.close()
            sock, error = None, exc
    if sock is None:
        raise error or OSError(f"cannot connect to proxy {proxy}")
    try:
        target = f"[{uri.host}]:{uri.port}" if ":" in uri.host else f"{uri.host}:{uri.port}"
        request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if parts.username:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request += f"Proxy-Authorization: Basic {token}\r\n"
        await loop.sock_sendall(sock, (request + "\r\n").encode("latin-1"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise InvalidResponse("the proxy closed the connection during CONNECT")
            head += chunk
            if len(head) > 65536:
                raise InvalidResponse("the proxy's CONNECT response is too long")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/1.") or fields[1] != "200":
            raise InvalidResponse(f"proxy refused CONNECT: {status_line}")
        if head.index(b"\r\n\r\n") + 4 != len(head):
            raise InvalidResponse("the proxy sent data before the tunnel was open")
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_callbacks(uri: str, listener: Any, **options: Any) -> Any:
    """Open a connection whose events go to ``listener`` callbacks; return the protocol.

    ``listener`` has ``on_open(ws)``, ``on_message(ws, data)``, ``on_close(ws, code,
    reason, was_clean)`` (and optionally ``on_closing(ws)``), called on the event
    loop with no task or future per message. The returned
    :class:`~fullduplex.io.protocol.WebSocketProtocol` sends with ``ws.send(data)``.
    Takes the options of :func:`connect` (``max_queue`` does not apply).
    """
    cm = connect(uri, **options)
    cm.options["listener"] = listener
    return await cm._open()
