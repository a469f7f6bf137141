"""Plain HTTP answers on the WebSocket port: responses, static files, health, auth.

Everything here produces ``process_request`` hooks for :func:`fullduplex.serve`:
callables ``hook(conn, request)`` that return a :class:`Response` to answer the
request themselves, or ``None`` to let the WebSocket handshake go on.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import mimetypes
import posixpath
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from .protocol.handshake import Headers, Request, Response, _reason

__all__ = [
    "ProcessRequest",
    "StaticFiles",
    "basic_auth",
    "chain",
    "health_check",
    "is_upgrade",
    "json_response",
    "redirect",
    "response",
    "split_path",
]

ProcessRequest = Callable[[Any, Request], "Response | Awaitable[Response | None] | None"]


def response(
    status: int,
    body: bytes | str = b"",
    *,
    content_type: str = "text/plain; charset=utf-8",
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """Build a :class:`Response`; ``str`` bodies are encoded as UTF-8."""
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    fields = Headers(headers)
    if data and "Content-Type" not in fields:
        fields.add("Content-Type", content_type)
    return Response(status, _reason(status), fields, data)


def json_response(status: int, value: Any, *, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """Build a JSON :class:`Response` (``Cache-Control: no-store``)."""
    body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return response(
        status,
        body,
        content_type="application/json",
        headers=[("Cache-Control", "no-store"), *headers],
    )


def redirect(location: str, status: int = 302) -> Response:
    """Build a redirect to ``location``."""
    return response(status, headers=[("Location", location)])


def split_path(target: str) -> str:
    """The path of a request target, without its query, percent-decoded."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    return urllib.parse.unquote(path) or "/"


def is_upgrade(request: Request) -> bool:
    """Whether ``request`` asks for a WebSocket upgrade."""
    return any(
        token.strip().lower() == "websocket"
        for value in request.headers.get_all("Upgrade")
        for token in value.split(",")
    )


Hook = Callable[[Any, Request], "Response | None"]


def chain(*hooks: Hook) -> Hook:
    """Combine ``process_request`` hooks: the first that answers wins."""

    def process_request(conn: Any, request: Request) -> Response | None:
        for hook in hooks:
            answer = hook(conn, request)
            if answer is not None:
                return answer
        return None

    return process_request


def health_check(path: str = "/healthz") -> Callable[[Any, Request], Response | None]:
    """A hook answering ``GET path`` with ``200 OK``."""

    def process_request(conn: Any, request: Request) -> Response | None:
        if split_path(request.path) == path and not is_upgrade(request):
            return response(200, "OK\n", headers=[("Cache-Control", "no-store")])
        return None

    return process_request


def basic_auth(
    credentials: Mapping[str, str] | Callable[[str, str], bool],
    *,
    realm: str = "fullduplex",
) -> Callable[[Any, Request], Response | None]:
    """A hook requiring HTTP Basic authentication (RFC 7617) for every request.

    Args:
        credentials: a ``{username: password}`` mapping, or a function
            ``check(username, password) -> bool``.
        realm: the protection space named in ``WWW-Authenticate``.

    Requests without valid credentials get ``401`` with a ``WWW-Authenticate``
    challenge. The authenticated user name is stored on the connection as
    ``conn.username`` when the connection object allows it.
    """
    if callable(credentials):
        check = credentials
    else:
        table = dict(credentials)

        def check(username: str, password: str) -> bool:
            expected = table.get(username)
            # Compare even for unknown users, so timing does not reveal which exist.
            return (
                hmac.compare_digest(
                    (expected if expected is not None else "\0" + password).encode(),
                    password.encode(),
                )
                and expected is not None
            )

    challenge = [("WWW-Authenticate", f'Basic realm="{realm}", charset="UTF-8"')]

    def process_request(conn: Any, request: Request) -> Response | None:
        header = request.headers.get("Authorization")
        if header is None:
            return response(401, "Authentication required.\n", headers=challenge)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return response(401, "Unsupported authorization scheme.\n", headers=challenge)
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return response(400, "Malformed Basic credentials.\n")
        username, sep, password = decoded.partition(":")
        if not sep or not check(username, password):
            return response(401, "Invalid credentials.\n", headers=challenge)
        try:
            conn.username = username
        except AttributeError:
            pass
        return None

    return process_request


class StaticFiles:
    """A hook serving files below a directory (or package resource) for GET and HEAD.

    Args:
        root: a directory path, or a :class:`importlib.abc.Traversable` such as
            ``importlib.resources.files("pkg") / "web"``.
        prefix: the URL path the files are mounted at.
        index: the file served for a path ending in ``/``.

    Paths are normalized before lookup; nothing outside ``root`` is reachable.
    Requests for other paths are left alone (``None``).
    """

    def __init__(
        self, root: str | Path | Traversable, *, prefix: str = "/", index: str = "index.html"
    ) -> None:
        self.root: Traversable = Path(root) if isinstance(root, str) else root
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.index = index

    def lookup(self, path: str) -> tuple[bytes, str] | None:
        """Return ``(content, content_type)`` for a URL path, or ``None``."""
        if path + "/" == self.prefix:
            path = self.prefix
        if not path.startswith(self.prefix):
            return None
        relative = path[len(self.prefix) :]
        if relative == "" or relative.endswith("/"):
            relative += self.index
        normalized = posixpath.normpath("/" + relative).lstrip("/")
        parts = [p for p in normalized.split("/") if p]
        if not parts or any(p in (".", "..") or "\\" in p or "\0" in p for p in parts):
            return None
        node = self.root
        for part in parts:
            node = node / part
        try:
            if not node.is_file():
                return None
            content = node.read_bytes()
        except OSError:
            return None
        ctype = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
            ctype += "; charset=utf-8"
        return content, ctype

    def __call__(self, conn: Any, request: Request) -> Response | None:
        if is_upgrade(request) or request.method not in ("GET", "HEAD"):
            return None
        found = self.lookup(split_path(request.path))
        if found is None:
            return None
        content, ctype = found
        answer = response(
            200,
            content,
            content_type=ctype,
            headers=[("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")],
        )
        # For HEAD the server sends these headers, Content-Length included, and
        # leaves the body out.
        return answer
