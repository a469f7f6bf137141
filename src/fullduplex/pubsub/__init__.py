"""Backplanes: fan-out between the nodes serving the same rooms.

``create_backplane("memory")`` gives the in-process default; shared backplanes
(Redis, NATS) plug in behind the same :class:`Backplane` interface.
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

#: The names ``create_backplane`` (and ``fullduplex serve --backplane``) accept.
BACKPLANES = ("memory",)


def create_backplane(spec: str = "memory") -> Backplane:
    """Build a backplane from its name or URL (``memory``).

    Raises:
        ValueError: an unknown backplane.
    """
    scheme = spec.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryBackplane()
    raise ValueError(f"unknown backplane {spec!r} (known: {', '.join(BACKPLANES)})")
