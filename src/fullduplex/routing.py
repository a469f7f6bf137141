"""Several WebSocket endpoints and plain HTTP routes on one port.

::

    router = Router()
    router.websocket("/echo", echo_handler)
    router.websocket("/chat", chat_handler)
    router.http("/healthz", lambda request: response(200, "OK\\n"))
    router.static("/", importlib.resources.files("myapp") / "web")
    async with serve(router.handler, process_request=router.process_request): ...

Unknown paths get ``404``, including upgrade requests to a path with no WebSocket
endpoint; a plain GET on a WebSocket endpoint gets ``426 Upgrade Required``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from .connection import Connection
from .http import StaticFiles, is_upgrade, response, split_path
from .protocol.frames import CloseCode
from .protocol.handshake import Request, Response

__all__ = ["Router"]

Handler = Callable[[Connection], Awaitable[None]]


class _Unset:
    pass


_UNSET = _Unset()
HTTPRoute = Callable[[Request], "Response | Awaitable[Response]"]


class Router:
    """Dispatch by request path to WebSocket handlers, HTTP routes and static files."""

    def __init__(self) -> None:
        self._websockets: dict[str, Handler] = {}
        self._subprotocols: dict[str, list[str]] = {}
        self._http: dict[str, HTTPRoute] = {}
        self._static: list[StaticFiles] = []
        self._max_size: dict[str, int | None] = {}

    def websocket(
        self,
        path: str,
        handler: Handler,
        subprotocols: Sequence[str] | None = None,
        *,
        max_size: int | _Unset | None = _UNSET,
    ) -> None:
        """Serve WebSocket connections to ``path`` with ``handler``.

        ``max_size`` overrides the server's message size limit for this endpoint.
        """
        self._websockets[path] = handler
        if subprotocols:
            self._subprotocols[path] = list(subprotocols)
        if max_size is not _UNSET:
            self._max_size[path] = max_size  # type: ignore[assignment]

    def http(self, path: str, route: HTTPRoute) -> None:
        """Answer plain HTTP requests to ``path`` with ``route(request)``."""
        self._http[path] = route

    def static(
        self, prefix: str, root: str | Path | Traversable, index: str = "index.html"
    ) -> None:
        """Serve the files below ``root`` at ``prefix``."""
        self._static.append(StaticFiles(root, prefix=prefix, index=index))

    @property
    def paths(self) -> list[str]:
        """The WebSocket endpoint paths."""
        return list(self._websockets)

    def select_subprotocol(self, conn: Any, offered: Sequence[str]) -> str | None:
        """Pick the subprotocol of the endpoint the request is for."""
        request = getattr(conn, "request", None)
        path = split_path(request.path) if request is not None else ""
        for candidate in self._subprotocols.get(path, ()):
            if candidate in offered:
                return candidate
        return None

    async def process_request(self, conn: Any, request: Request) -> Response | None:
        """The ``process_request`` hook: answer HTTP routes, refuse unknown paths."""
        path = split_path(request.path)
        if is_upgrade(request):
            if path in self._websockets:
                if path in self._max_size and hasattr(conn, "max_size"):
                    # Read before the connection opens, so the limit applies from
                    # the first frame.
                    conn.max_size = self._max_size[path]
                return None
            return response(404, f"No WebSocket endpoint at {path}.\n")
        route = self._http.get(path)
        if route is not None:
            answer = route(request)
            if not isinstance(answer, Response):
                answer = await answer
            return answer
        for files in self._static:
            answer = files(conn, request)
            if answer is not None:
                return answer
        if path in self._websockets:
            return response(
                426,
                "This is a WebSocket endpoint.\n",
                headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")],
            )
        return response(404, f"Nothing at {path}.\n")

    async def handler(self, conn: Connection) -> None:
        """The connection handler: run the endpoint's handler for ``conn``."""
        assert conn.request is not None
        handler = self._websockets.get(split_path(conn.request.path))
        if handler is None:  # only reachable without process_request
            await conn.close(CloseCode.POLICY_VIOLATION, "no such endpoint")
            return
        await handler(conn)
