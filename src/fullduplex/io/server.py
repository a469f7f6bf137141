"""Server side of the asyncio adapter: the opening handshake, then the shared protocol.

A request goes through, in order: the connection limit (503), the ``Host`` allow
list (400), the ``process_request`` hook (which may answer it, e.g. a static file,
401 or a redirect), the RFC 6455 checks (426 for a request that is not an
upgrade), the ``Origin`` allow list (403), subprotocol selection, and the
``process_response`` hook; then ``101 Switching Protocols``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InvalidRequest
from ..protocol.connection import Side
from ..protocol.deflate import DeflateOptions, server_negotiate
from ..protocol.frames import CloseCode
from ..protocol.handshake import (
    Headers,
    HTTPReader,
    Request,
    Response,
    accept_key,
    build_error_response,
    build_http_response,
    build_response,
    check_request,
    parse_extensions,
    parse_request,
    parse_subprotocols,
    select_subprotocol,
)
from .protocol import Listener, WebSocketProtocol

__all__ = ["ServerProtocol"]

logger = logging.getLogger("fullduplex.server")
# An enum member looked up on its class costs ~100 ns on Python 3.11: once here.
_SERVER = Side.SERVER

DEFAULT_DEFLATE = DeflateOptions()

ProcessRequest = Callable[[Any, Request], Any]
ProcessResponse = Callable[[Any, Request, Response], Any]
SelectSubprotocol = Callable[[Any, Sequence[str]], "str | None"]

# The 101 response's own fields, which a process_response hook cannot replace.
_OURS = frozenset(
    {
        "upgrade",
        "connection",
        "sec-websocket-accept",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
    }
)


class ServerProtocol(WebSocketProtocol):
    """Accepts one client: reads its upgrade request, answers 101, then runs.

    Args:
        on_open: called after the 101 response is written, before any frame is
            read; returns the listener that receives this connection's events.
        subprotocols: the subprotocols this server speaks, in order of preference.
        process_request: ``hook(conn, request)`` returning a
            :class:`~fullduplex.protocol.handshake.Response` to answer the request
            itself, or ``None`` to go on; may be a coroutine function.
        process_response: ``hook(conn, request, response)`` called with the 101
            response before it is sent; may edit ``response.headers`` or return
            another response to send instead.
        select_subprotocol: ``hook(conn, offered)`` returning the subprotocol to
            use or ``None``; replaces the default choice from ``subprotocols``.
        origins: accepted ``Origin`` values (``None`` in the list accepts requests
            without one); anything else gets 403. ``None``: no check.
        hosts: accepted ``Host`` values (``"name"`` or ``"name:port"``); others get
            400. ``None``: no check.
        at_capacity: returns true when the server takes no more connections; the
            request then gets 503 with ``Retry-After``.
        max_unsent: most bytes waiting in the write buffer before a peer that
            stops reading is dropped with 1008 (``None``: no cap).
        compression: permessage-deflate settings to accept a client's offer with
            (RFC 7692), or ``None`` to never compress.
        max_request_line, max_header_size, max_headers: request head limits.
        **kwargs: passed to :class:`~fullduplex.io.protocol.WebSocketProtocol`.
    """

    __slots__ = (
        "_at_capacity",
        "_head_pending",
        "_hosts",
        "_key",
        "_leftover",
        "_limits",
        "_on_lost",
        "_on_made",
        "_on_open",
        "_origins",
        "_process_request",
        "_process_response",
        "_reader",
        "_response",
        "_select_subprotocol",
        "compression",
        "max_unsent",
        "request",
        "subprotocols",
        "username",
    )

    def __init__(
        self,
        on_open: Callable[[ServerProtocol], Listener],
        *,
        subprotocols: Sequence[str] | None = None,
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        select_subprotocol: SelectSubprotocol | None = None,
        origins: Sequence[str | None] | None = None,
        hosts: Sequence[str] | None = None,
        at_capacity: Callable[[], bool] | None = None,
        max_unsent: int | None = 16 * 2**20,
        compression: DeflateOptions | None = DEFAULT_DEFLATE,
        max_request_line: int = 8192,
        max_header_size: int = 8192,
        max_headers: int = 128,
        on_made: Callable[[ServerProtocol], None] | None = None,
        on_lost: Callable[[ServerProtocol], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(_SERVER, **kwargs)
        self._on_open = on_open
        self._on_made = on_made
        self._on_lost = on_lost
        self.subprotocols = list(subprotocols or ())
        self._process_request = process_request
        self._process_response = process_response
        self._select_subprotocol = select_subprotocol
        self._origins = None if origins is None else set(origins)
        self._hosts = None if hosts is None else {h.lower() for h in hosts}
        self._at_capacity = at_capacity
        self.max_unsent = max_unsent
        self.compression = compression
        if max_request_line < 0 or max_header_size < 0 or max_headers < 0:
            raise ValueError("request head limits must be >= 0")
        self._limits = (max_request_line, max_header_size, max_headers)
        # True until the request head is read or the handshake ends otherwise.
        self._head_pending = True
        # Created only for a head that does not come whole in the first read.
        self._reader: HTTPReader | None = None
        self._leftover = b""
        self.request: Request | None = None
        # The 101 response is built on first access of ``response`` from the key.
        self._response: Response | None = None
        self._key: str | None = None
        self.username: str | None = None

    @property
    def response(self) -> Response | None:
        """The ``101 Switching Protocols`` response sent, once the handshake succeeded."""
        response = self._response
        if response is None and self._key is not None:
            response = self._response = _switching(
                self._key, self.subprotocol, self.extensions or None
            )
        return response

    @response.setter
    def response(self, response: Response | None) -> None:
        self._response = response

    # -------------------------------------------------------------- handshake

    def handshake_data(self, data: bytes) -> None:
        if not self._head_pending:
            return  # answered or refused; waiting for the hook or the close
        reader = self._reader
        if reader is None:
            max_line, max_header_size, max_headers = self._limits
            # A client sends its request in one segment: read it in one pass when
            # it is plain, and only otherwise go through the incremental reader.
            parsed = (
                parse_request(
                    data,
                    max_line=max_line,
                    max_header_size=max_header_size,
                    max_headers=max_headers,
                )
                if type(data) is bytes
                else None
            )
            if parsed is not None:
                self._head_pending = False
                self.request, self._leftover = parsed
                self._received()
                return
            reader = self._reader = HTTPReader(
                "request",
                max_line=max_line,
                max_header_size=max_header_size,
                max_headers=max_headers,
            )
        try:
            request = reader.feed(data)
        except InvalidRequest as exc:
            self.reject(exc.status, exc.message, exc.headers)
            return
        if request is None:
            return
        assert isinstance(request, Request)
        self._head_pending = False
        self._reader = None
        self._leftover = reader.leftover
        self.request = request
        self._received()

    def _received(self) -> None:
        request = self.request
        assert request is not None
        if self._at_capacity is not None and self._at_capacity():
            self.reject(503, "The server is at capacity; try again later.", [("Retry-After", "5")])
            return
        if self._hosts is not None and not self._host_allowed(request):
            self.reject(400, "Unknown host.")
            return
        if self._process_request is None:
            self._continue(None)
            return
        try:
            answer = self._process_request(self, request)
        except Exception:
            logger.exception("process_request failed")
            self.reject(500, "Internal server error.")
            return
        if inspect.isawaitable(answer):
            # Hold further bytes (early frames) in the transport until the hook ends.
            self.pause_reading()
            task = self.loop.create_task(_await(answer))
            task.add_done_callback(self._hook_done)
        else:
            self._continue(answer)

    def _hook_done(self, task: Any) -> None:
        if self._transport_closed:
            return
        if task.cancelled():
            self.abort()
            return
        exc = task.exception()
        if exc is not None:
            logger.error("process_request failed", exc_info=exc)
            self.reject(500, "Internal server error.")
            return
        self.resume_reading()
        self._continue(task.result())

    def _host_allowed(self, request: Request) -> bool:
        host = (request.headers.get("Host") or "").lower()
        if host in self._hosts:  # type: ignore[operator]
            return True
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in self._hosts  # type: ignore[operator]

    def _continue(self, answer: Response | None) -> None:
        if self._transport_closed:
            return
        request = self.request
        assert request is not None and self.transport is not None
        if answer is not None:
            self.send_http(answer)
            return
        # The lower-cased index, read directly: no copy of each list of values.
        fields = request.headers._lookup()
        offered: list[str] = []
        offers: list[tuple[str, list[tuple[str, str | None]]]] = []
        try:
            key = check_request(request)
            if self._origins is not None:
                origin = fields.get("origin")
                if (origin[0] if origin else None) not in self._origins:
                    raise InvalidRequest("Origin not allowed.", 403)
            values = fields.get("sec-websocket-protocol")
            if values:
                offered = _parsed(values, parse_subprotocols, "Sec-WebSocket-Protocol")
            values = fields.get("sec-websocket-extensions")
            if values:
                offers = _parsed(values, parse_extensions, "Sec-WebSocket-Extensions")
        except InvalidRequest as exc:
            self.reject(exc.status, exc.message, exc.headers)
            return
        if self._select_subprotocol is not None:
            subprotocol = self._select_subprotocol(self, offered) if offered else None
            if subprotocol is not None and subprotocol not in offered:
                logger.error("select_subprotocol returned %r, not offered", subprotocol)
                self.reject(500, "Internal server error.")
                return
        else:
            subprotocol = select_subprotocol(offered, self.subprotocols) if offered else None
        # RFC 7692 §5: accept the first permessage-deflate offer we can honour.
        negotiated = (
            server_negotiate(offers, self.compression)
            if offers and self.compression is not None
            else None
        )
        extra: list[tuple[str, str]] = []
        if self._process_response is not None:
            response = _switching(
                key, subprotocol, negotiated[0] if negotiated is not None else None
            )
            try:
                replacement = self._process_response(self, request, response)
            except Exception:
                logger.exception("process_response failed")
                self.reject(500, "Internal server error.")
                return
            if replacement is not None and replacement is not response:
                self.send_http(replacement)
                return
            # The hook may have added headers; ours are rebuilt by build_response.
            extra = [(k, v) for k, v in response.headers.items() if k.lower() not in _OURS]
            self._response = response
        self.subprotocol = subprotocol
        self._key = key
        if negotiated is not None:
            self.extensions, self.deflate = negotiated
        self.transport.write(
            build_response(
                key,
                subprotocol=subprotocol,
                extensions=self.extensions or None,
                extra_headers=extra,
            )
        )
        self.listener = self._on_open(self)
        leftover, self._leftover = self._leftover, b""
        self.start(leftover)

    def send_http(self, response: Response) -> None:
        """Answer the request with a plain HTTP response and close the connection."""
        self._head_pending = False
        self._reader = None
        assert self.transport is not None
        headers = [
            (k, v)
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        ]
        try:
            data = build_http_response(response.status, response.body, headers)
        except ValueError:
            logger.exception("invalid HTTP response from a hook")
            data = build_error_response(500, "Internal server error.")
        else:
            if self.request is not None and self.request.method == "HEAD" and response.body:
                # A HEAD answer has the headers of the GET answer, without its body.
                data = data[: len(data) - len(response.body)]
        self.transport.write(data)
        self._close_transport()

    def reject(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Answer the handshake with an HTTP error and close the connection."""
        self._head_pending = False
        self._reader = None
        logger.info("refused handshake from %s: %d %s", self.remote_address, status, message)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(build_error_response(status, message, headers))
            self._close_transport()

    def handshake_lost(self, exc: Exception | None) -> None:
        self._head_pending = False
        self._reader = None

    def handshake_timed_out(self) -> None:
        logger.info("opening handshake timed out: %s", self.remote_address)
        self._head_pending = False
        self._reader = None
        self.abort()

    # ------------------------------------------------------------ while open

    def _write_backlogged(self) -> None:
        # A peer that does not read must not make us buffer without bound (the
        # asyncio API waits in send(); callbacks and broadcasts do not).
        if (
            self.max_unsent is not None
            and self.transport is not None
            and not self._transport_closed
            and self.transport.get_write_buffer_size() > self.max_unsent
            and self.core is not None
            and self.core.failure is None
            and not self.core.eof_wanted
        ):
            logger.info("dropping %s: over %d bytes unsent", self.remote_address, self.max_unsent)
            self.fail(CloseCode.POLICY_VIOLATION, "too much unsent data")

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self._on_made is not None:
            self._on_made(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._on_lost is not None:
            self._on_lost(self)


def _parsed(values: list[str], parse: Callable[[list[str]], Any], name: str) -> Any:
    """``parse(values)``, a malformed header answered with 400."""
    try:
        return parse(values)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid {name}: {exc}", 400) from None


def _switching(key: str, subprotocol: str | None, extensions: str | None) -> Response:
    """The ``101`` response for ``key`` as an object (for hooks and ``.response``)."""
    headers = Headers(
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key)),
        ]
    )
    if subprotocol is not None:
        headers.add("Sec-WebSocket-Protocol", subprotocol)
    if extensions:
        headers.add("Sec-WebSocket-Extensions", extensions)
    return Response(101, "Switching Protocols", headers)


async def _await(awaitable: Any) -> Any:
    return await awaitable
