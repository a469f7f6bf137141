"""Per-endpoint counters for ``/stats``: plain integer attributes bumped by the handlers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..connection import Connection

__all__ = ["EndpointStats", "Stats"]

Handler = Callable[[Connection], Awaitable[None]]


class EndpointStats:
    """Counters of one endpoint.

    ``bytes_in``/``bytes_out`` count message payloads (UTF-8 for text), not framing.
    ``skipped`` counts fan-out deliveries dropped because the recipient was congested.
    """

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "connections",
        "connections_total",
        "messages_in",
        "messages_out",
        "skipped",
    )

    def __init__(self) -> None:
        self.connections = 0
        self.connections_total = 0
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.skipped = 0

    def received(self, message: str | bytes) -> None:
        self.messages_in += 1
        self.bytes_in += len(message.encode("utf-8") if isinstance(message, str) else message)

    def sent(self, size: int, count: int = 1) -> None:
        self.messages_out += count
        self.bytes_out += size * count

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Stats:
    """The counters of every endpoint of an application."""

    def __init__(self) -> None:
        self.started = time.time()
        self.endpoints: dict[str, EndpointStats] = {}

    def endpoint(self, name: str) -> EndpointStats:
        """The counters of ``name``, created on first use."""
        found = self.endpoints.get(name)
        if found is None:
            found = self.endpoints[name] = EndpointStats()
        return found

    def track(self, name: str, handler: Handler) -> Handler:
        """Wrap ``handler`` to count the connections of endpoint ``name``."""
        counters = self.endpoint(name)

        async def tracked(conn: Connection) -> None:
            counters.connections += 1
            counters.connections_total += 1
            try:
                await handler(conn)
            finally:
                counters.connections -= 1

        return tracked

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able view: totals and per-endpoint counters."""
        endpoints = {name: c.as_dict() for name, c in sorted(self.endpoints.items())}
        totals = {
            key: sum(values[key] for values in endpoints.values())
            for key in EndpointStats.__slots__
        }
        return {
            "uptime": round(time.time() - self.started, 3),
            "totals": totals,
            "endpoints": endpoints,
        }
