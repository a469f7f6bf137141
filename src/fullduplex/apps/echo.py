"""The echo endpoint: every message comes back with its type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..connection import Connection
from .stats import EndpointStats

__all__ = ["echo", "make_echo"]


async def echo(conn: Connection) -> None:
    """Send back every message with its type (text stays text, binary stays binary)."""
    async for message in conn:
        await conn.send(message)


def make_echo(counters: EndpointStats) -> Callable[[Connection], Awaitable[None]]:
    """An echo handler that counts what it receives and sends in ``counters``."""

    async def counting_echo(conn: Connection) -> None:
        async for message in conn:
            size = len(message.encode("utf-8") if isinstance(message, str) else message)
            counters.messages_in += 1
            counters.bytes_in += size
            await conn.send(message)
            counters.sent(size)

    return counting_echo
