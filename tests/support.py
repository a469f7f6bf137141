"""Helpers shared by the server, client and hardening tests (importable as ``support``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import fullduplex
from fullduplex import Connection

TIMEOUT = 5.0


async def echo(conn: Connection) -> None:
    """Send every message back."""
    async for message in conn:
        await conn.send(message)


@asynccontextmanager
async def running(
    handler: Callable[[Connection], Awaitable[None]] = echo, **kwargs: Any
) -> AsyncIterator[fullduplex.Server]:
    """A server on a free port of 127.0.0.1, closed on exit."""
    async with fullduplex.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        yield server


def url(server: fullduplex.Server, path: str = "/") -> str:
    """The ``ws://`` URL of ``path`` on ``server``."""
    return f"ws://127.0.0.1:{server.port}{path}"


def recorder() -> tuple[asyncio.Future[Any], Callable[[Any], None]]:
    """A future and a function that resolves it with its first argument."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def record(value: Any) -> None:
        if not future.done():
            future.set_result(value)

    return future, record


async def wait(awaitable: Awaitable[Any], timeout: float = TIMEOUT) -> Any:
    """Await ``awaitable`` for at most ``timeout`` seconds."""
    return await asyncio.wait_for(asyncio.ensure_future(awaitable), timeout)
