"""Servers and checks shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import fullduplex
from fullduplex.errors import ConnectionClosed

from .rawclient import BINARY, TEXT, TIMEOUT, RawPeer

Handler = Callable[[Any], Awaitable[None]]


async def echo(conn: Any) -> None:
    """Send every message back with its type."""
    async for message in conn:
        await conn.send(message)


@asynccontextmanager
async def echo_server(handler: Handler = echo, **kwargs: Any) -> AsyncIterator[Any]:
    """``fullduplex.serve`` on 127.0.0.1 with an OS-chosen port."""
    async with fullduplex.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        yield server


class CloseRecorder:
    """An echo handler that reports how each connection ended, as the handler saw it."""

    def __init__(self) -> None:
        self.outcome: asyncio.Future[tuple[int | None, str | None, str]] = (
            asyncio.get_running_loop().create_future()
        )

    async def __call__(self, conn: Any) -> None:
        ending = "loop ended"
        try:
            async for message in conn:
                await conn.send(message)
        except ConnectionClosed as exc:
            ending = type(exc).__name__
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        if not self.outcome.done():
            self.outcome.set_result((conn.close_code, conn.close_reason, ending))

    async def result(self) -> tuple[int | None, str | None, str]:
        """(close_code, close_reason, how the ``async for`` ended)."""
        return await asyncio.wait_for(asyncio.shield(self.outcome), TIMEOUT)


async def assert_echo(peer: RawPeer, opcode: int = TEXT, payload: bytes = b"ping?") -> None:
    """Send one message and check it comes back unchanged, in well-formed server frames."""
    await peer.send_frame(opcode, payload)
    got = await peer.recv_message()
    assert got == (opcode, payload), f"sent {(opcode, payload[:40])}, got {got[0], got[1][:40]}"


def first_impossible_byte(data: bytes) -> int | None:
    """Index of the first byte after which ``data`` can no longer be the start of UTF-8.

    ``None`` when every prefix is a possible start (e.g. a sequence cut short at the
    end). Uses the standard library's incremental decoder, which rejects a byte as soon
    as no continuation could make the sequence valid (Unicode's "maximal subpart" rule).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    for index in range(len(data)):
        try:
            decoder.decode(data[index : index + 1], final=False)
        except UnicodeDecodeError:
            return index
    return None


def opcode_name(opcode: int) -> str:
    return {TEXT: "text", BINARY: "binary"}.get(opcode, f"0x{opcode:X}")
