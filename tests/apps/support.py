"""Helpers for the application tests: a running app and a JSON chat client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import fullduplex
from fullduplex.apps.app import App, serve_app
from fullduplex.server import Server

TIMEOUT = 5.0


@dataclass
class Running:
    """An application served on 127.0.0.1."""

    app: App
    server: Server

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, path: str, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def client(self, **connect_options: Any) -> ChatClient:
        return await ChatClient.open(self.url("/chat"), **connect_options)

    async def joined(self, room: str, nick: str) -> ChatClient:
        """A client in ``room`` as ``nick``, past its ``joined`` and own ``presence``."""
        client = await self.client()
        await client.join(room, nick)
        return client

    async def get(self, path: str) -> HTTPAnswer:
        return await http_get(self.url(path, "http"))


@contextlib.asynccontextmanager
async def running(**options: Any) -> AsyncIterator[Running]:
    """Serve the application on a free port for the length of the block."""
    cm = serve_app("127.0.0.1", 0, **options)
    async with cm as server:
        yield Running(cm.app, server)


@dataclass
class HTTPAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def http_get(url: str) -> HTTPAnswer:
    """GET ``url`` in a thread with urllib; HTTP errors are answers too."""

    def fetch() -> HTTPAnswer:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
                return HTTPAnswer(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as exc:
            return HTTPAnswer(exc.code, dict(exc.headers), exc.read())

    return await asyncio.to_thread(fetch)


class ChatClient:
    """A ``/chat`` client speaking JSON; every read is bounded by a timeout."""

    def __init__(self, conn: fullduplex.Connection, welcome: dict[str, Any]) -> None:
        self.conn = conn
        self.welcome = welcome
        self.nick: str | None = None

    @classmethod
    async def open(cls, url: str, **connect_options: Any) -> ChatClient:
        conn = await asyncio.wait_for(fullduplex.connect(url, **connect_options), TIMEOUT)
        welcome = json.loads(await asyncio.wait_for(conn.recv(), TIMEOUT))
        assert welcome["type"] == "welcome", welcome
        return cls(conn, welcome)

    async def send(self, **message: Any) -> None:
        await self.conn.send(json.dumps(message))

    async def send_raw(self, data: str | bytes) -> None:
        await self.conn.send(data)

    async def next(self) -> dict[str, Any]:
        """The next message from the server."""
        data = await asyncio.wait_for(self.conn.recv(), TIMEOUT)
        assert isinstance(data, str), data
        message = json.loads(data)
        assert isinstance(message, dict)
        return message

    async def expect(self, kind: str, **fields: Any) -> dict[str, Any]:
        """The next message, which must be of type ``kind`` with these ``fields``."""
        message = await self.next()
        assert message["type"] == kind, message
        for key, value in fields.items():
            assert message[key] == value, (key, message)
        return message

    async def join(self, room: str, nick: str) -> dict[str, Any]:
        await self.send(type="join", room=room, nick=nick)
        joined = await self.expect("joined")
        await self.expect("presence", event="join", nick=joined["nick"])
        self.nick = joined["nick"]
        return joined

    async def say(self, text: str) -> None:
        await self.send(type="message", text=text)

    async def closed(self) -> tuple[int | None, str | None]:
        """Read until the connection closes; return the server's close code and reason."""
        try:
            while True:
                await asyncio.wait_for(self.conn.recv(), TIMEOUT)
        except fullduplex.ConnectionClosed as exc:
            return exc.code, exc.reason

    async def close(self) -> None:
        await self.conn.close()
