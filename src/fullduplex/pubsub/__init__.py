"""Backplanes: fan-out between the nodes serving the same rooms.

``create_backplane("memory")`` gives the in-process default; shared backplanes
plug in behind the same :class:`Backplane` interface:
``create_backplane("redis://127.0.0.1:6379/0")`` (the ``[redis]`` extra) and
``create_backplane("nats://127.0.0.1:4222")`` (the ``[nats]`` extra). Their modules
are imported on first use, so the client libraries stay optional.
"""

from __future__ import annotations

from .base import Backplane, BackplaneClosed, BackplaneError, Callback, RoomStore, Subscription
from .memory import MemoryBackplane, MemoryHub, MemoryRoomStore

__all__ = [
    "BACKPLANES",
    "Backplane",
    "BackplaneClosed",
    "BackplaneError",
    "Callback",
    "MemoryBackplane",
    "MemoryHub",
    "MemoryRoomStore",
    "RoomStore",
    "Subscription",
    "create_backplane",
]

#: The names and URL schemes ``create_backplane`` (and ``fullduplex serve --backplane``)
#: accept.
BACKPLANES = ("memory", "redis://host:port/db", "nats://host:port")


def create_backplane(spec: str = "memory") -> Backplane:
    """Build a backplane from its name or URL.

    Args:
        spec: ``memory``, ``redis://[[user]:password@]host[:port][/db]`` (or
            ``rediss://``), or ``nats://[user:password@]host[:port]`` (or ``tls://``).
            A ``prefix`` query parameter names the channels and keys of a cluster.

    The shared backplanes connect on :meth:`Backplane.start` (or on first use).

    Raises:
        ValueError: an unknown backplane or a malformed URL.
        ImportError: the client library of that backplane is not installed.
    """
    scheme = spec.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryBackplane()
    if scheme in ("redis", "rediss"):
        from .redis import RedisBackplane

        return RedisBackplane(spec)
    if scheme in ("nats", "tls"):
        from .nats import NatsBackplane

        return NatsBackplane(spec)
    raise ValueError(f"unknown backplane {spec!r} (known: {', '.join(BACKPLANES)})")
