"""Server side of the asyncio adapter: the opening handshake, then the shared protocol."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from ..errors import InvalidRequest
from ..protocol.connection import Side
from ..protocol.handshake import (
    Headers,
    HTTPReader,
    Request,
    Response,
    accept_key,
    build_error_response,
    build_response,
    check_request,
    parse_subprotocols,
    select_subprotocol,
)
from .protocol import Listener, WebSocketProtocol

__all__ = ["ServerProtocol"]

logger = logging.getLogger("fullduplex.server")


class ServerProtocol(WebSocketProtocol):
    """Accepts one client: reads its upgrade request, answers 101, then runs.

    Args:
        on_open: called after the 101 response is written, before any frame is
            read; returns the listener that receives this connection's events.
        subprotocols: the subprotocols this server speaks, in order of preference.
        max_request_line: longest request line accepted (414 beyond).
        max_header_size: longest header line accepted (431 beyond).
        max_headers: most header lines accepted (431 beyond).
        **kwargs: passed to :class:`~fullduplex.io.protocol.WebSocketProtocol`.
    """

    def __init__(
        self,
        on_open: Callable[[ServerProtocol], Listener],
        *,
        subprotocols: Sequence[str] | None = None,
        max_request_line: int = 8192,
        max_header_size: int = 8192,
        max_headers: int = 128,
        on_lost: Callable[[ServerProtocol], None] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(Side.SERVER, **kwargs)  # type: ignore[arg-type]
        self._on_open = on_open
        self._on_lost = on_lost
        self.subprotocols = list(subprotocols or ())
        self._reader: HTTPReader | None = HTTPReader(
            "request",
            max_line=max_request_line,
            max_header_size=max_header_size,
            max_headers=max_headers,
        )
        self.request: Request | None = None
        self.response: Response | None = None

    def handshake_data(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:
            return  # rejected; waiting for the transport to close
        try:
            request = reader.feed(data)
            if request is None:
                return
            assert isinstance(request, Request)
            self.request = request
            key = check_request(request)
            try:
                offered = parse_subprotocols(request.headers.get_all("Sec-WebSocket-Protocol"))
            except ValueError as exc:
                raise InvalidRequest(f"invalid Sec-WebSocket-Protocol: {exc}", 400) from None
        except InvalidRequest as exc:
            self.reject(exc.status, exc.message, exc.headers)
            return
        self._reader = None
        subprotocol = select_subprotocol(offered, self.subprotocols) if offered else None
        self.subprotocol = subprotocol
        response = build_response(key, subprotocol=subprotocol)
        headers = Headers(
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", accept_key(key)),
            ]
        )
        if subprotocol is not None:
            headers.add("Sec-WebSocket-Protocol", subprotocol)
        self.response = Response(101, "Switching Protocols", headers)
        assert self.transport is not None
        self.transport.write(response)
        self.listener = self._on_open(self)
        self.start(reader.leftover)

    def reject(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Answer the handshake with an HTTP error and close the connection."""
        self._reader = None
        logger.info("refused handshake from %s: %d %s", self.remote_address, status, message)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(build_error_response(status, message, headers))
            self._close_transport()

    def handshake_lost(self, exc: Exception | None) -> None:
        self._reader = None

    def handshake_timed_out(self) -> None:
        logger.info("opening handshake timed out: %s", self.remote_address)
        self._reader = None
        self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._on_lost is not None:
            self._on_lost(self)
