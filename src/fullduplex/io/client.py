"""Client side of the asyncio adapter: URL parsing, the opening handshake, then run."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import urllib.parse
from collections.abc import Iterable, Sequence

from ..errors import InvalidResponse, InvalidURI
from ..protocol.connection import Side
from ..protocol.deflate import DeflateOptions, client_accept, client_offer
from ..protocol.handshake import (
    HTTPReader,
    Response,
    build_request,
    check_response,
    generate_key,
)
from .protocol import Listener, WebSocketProtocol

__all__ = ["ClientProtocol", "WebSocketURI", "parse_uri"]

DEFAULT_DEFLATE = DeflateOptions()


@dataclasses.dataclass(frozen=True)
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URL."""

    secure: bool
    host: str
    port: int
    resource: str
    username: str | None = None
    password: str | None = None

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the port is left out when it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_uri(uri: str) -> WebSocketURI:
    """Parse and check a WebSocket URL (RFC 6455 §3).

    Raises:
        InvalidURI: not ``ws``/``wss``, no host, a bad port, or a fragment.
    """
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise InvalidURI(f"{uri!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("ws", "wss"):
        raise InvalidURI(f"{uri!r} is not a ws:// or wss:// URL")
    if not parts.hostname:
        raise InvalidURI(f"{uri!r} has no host")
    # §3: "Fragment identifiers are meaningless in the context of WebSocket URIs".
    if parts.fragment or uri.endswith("#"):
        raise InvalidURI(f"{uri!r} has a fragment")
    secure = parts.scheme == "wss"
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    if any(ch in resource for ch in " \r\n\x00"):
        raise InvalidURI(f"{uri!r} has characters not allowed in a request target")
    return WebSocketURI(
        secure=secure,
        host=parts.hostname,
        port=port if port is not None else (443 if secure else 80),
        resource=resource,
        username=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password else None,
    )


class ClientProtocol(WebSocketProtocol):
    """Opens one connection: sends the upgrade request, checks the 101, then runs.

    ``opened`` resolves once the connection is OPEN, or fails with the handshake
    error (:class:`~fullduplex.errors.InvalidStatus` carries the server's response).
    """

    def __init__(
        self,
        uri: WebSocketURI,
        listener: Listener,
        *,
        subprotocols: Sequence[str] | None = None,
        additional_headers: Iterable[tuple[str, str]] | None = None,
        origin: str | None = None,
        compression: DeflateOptions | None = DEFAULT_DEFLATE,
        **kwargs: object,
    ) -> None:
        super().__init__(Side.CLIENT, **kwargs)  # type: ignore[arg-type]
        self.compression = compression
        self.uri = uri
        self.listener = listener
        self.offered_subprotocols = list(subprotocols or ())
        self.additional_headers = list(additional_headers or ())
        self.origin = origin
        self.key = generate_key(os.urandom(16))
        self._reader: HTTPReader | None = HTTPReader("response")
        self.request_bytes = b""
        self.response: Response | None = None
        self.opened: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        headers = list(self.additional_headers)
        if self.uri.username is not None and not any(
            name.lower() == "authorization" for name, _ in headers
        ):
            credentials = f"{self.uri.username}:{self.uri.password or ''}".encode()
            headers.append(("Authorization", "Basic " + base64.b64encode(credentials).decode()))
        self.request_bytes = build_request(
            host=self.uri.host_header,
            path=self.uri.resource,
            key=self.key,
            subprotocols=self.offered_subprotocols,
            extensions=client_offer(self.compression) if self.compression is not None else None,
            origin=self.origin,
            extra_headers=headers,
        )
        assert self.transport is not None
        self.transport.write(self.request_bytes)

    def handshake_data(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:
            return
        try:
            response = reader.feed(data)
            if response is None:
                return
            self._handshake_done(response, reader.leftover)
        except InvalidResponse as exc:
            self._handshake_failed(exc)

    def _handshake_done(self, response: object, leftover: bytes) -> None:
        assert isinstance(response, Response)
        self._reader = None
        self.response = response
        subprotocol, extensions = check_response(
            response, self.key, subprotocols=self.offered_subprotocols
        )
        if extensions:
            if self.compression is None:
                # RFC 6455 §4.1: the server must not use an extension we did not offer.
                raise InvalidResponse("the server accepted an extension that was not offered")
            self.deflate = client_accept(extensions, self.compression)
            self.extensions = ", ".join(response.headers.get_all("Sec-WebSocket-Extensions"))
        self.subprotocol = subprotocol
        self.start(leftover)
        if not self.opened.done():
            self.opened.set_result(None)

    def _handshake_failed(self, exc: Exception) -> None:
        self._reader = None
        if not self.opened.done():
            self.opened.set_exception(exc)
        self.abort()

    def handshake_lost(self, exc: Exception | None) -> None:
        reader = self._reader
        self._reader = None
        if self.opened.done():
            return
        error: Exception
        try:
            response = reader.feed_eof() if reader is not None else None
            if response is not None:
                # A non-101 response whose body ended with the connection.
                check_response(response, self.key, subprotocols=self.offered_subprotocols)
            error = InvalidResponse("connection closed during the opening handshake")
        except InvalidResponse as handshake_error:
            error = handshake_error
        if exc is not None:
            error.__cause__ = exc
        self.opened.set_exception(error)

    def handshake_timed_out(self) -> None:
        self._handshake_failed(TimeoutError("timed out during the opening handshake"))
