"""``fullduplex connect URL``: a WebSocket client for the terminal and for pipes.

Each line read from standard input is sent as a text message; each message
received is printed on standard output: text as it is, binary as
``[binary N bytes] <hex>`` (the first 32 bytes only for longer messages). Status
lines (connected, closed) go to standard error, so ``echo hi | fullduplex connect
ws://127.0.0.1:9001/`` prints just ``hi``.

When standard input ends (Ctrl-D, or the end of a pipe), the client waits for the
replies: until it has received as many messages as it sent, or until the server has
been quiet for ``--wait`` seconds (1 by default), whichever comes first. Then it
closes the connection with 1000. It prints the close code and reason when the
connection ends.

Exit status: 0 when the closing handshake completed with 1000 (normal), 1001
(going away) or no status code (1005); 1 when the connection could not be opened,
was dropped, or was closed with any other code; 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from typing import IO, Any

from .client import connect
from .connection import Connection
from .errors import ConnectionClosed, FullDuplexError

__all__ = ["add_arguments", "command", "format_message", "run"]

HEX_LIMIT = 32  # bytes of a binary message shown in hex
CLEAN_CODES = (1000, 1001, 1005)


def format_message(message: str | bytes) -> str:
    """How a received message is printed: text as is, binary as a hex note."""
    if isinstance(message, str):
        return message
    shown = message[:HEX_LIMIT].hex()
    if len(message) > HEX_LIMIT:
        return f"[binary {len(message)} bytes] {shown}… (first {HEX_LIMIT} bytes)"
    return f"[binary {len(message)} bytes] {shown}"


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {text!r}")
    return name.strip(), value.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``connect`` command's arguments to ``parser``."""
    parser.add_argument("url", help="ws:// or wss:// URL to connect to")
    parser.add_argument(
        "-s",
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="subprotocol to offer (repeatable, in order of preference)",
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        type=_header,
        metavar="NAME:VALUE",
        help="extra request header (repeatable)",
    )
    parser.add_argument("-o", "--origin", help="value of the Origin header")
    parser.add_argument(
        "-w",
        "--wait",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="after the end of input, how long the server may stay quiet before the "
        "client closes, if not every message got a reply yet (default 1)",
    )


def command(args: argparse.Namespace) -> int:
    """Run the ``connect`` command; returns the exit status."""
    return asyncio.run(
        run(
            args.url,
            subprotocols=args.subprotocol,
            headers=args.header,
            origin=args.origin,
            wait=args.wait,
        )
    )


def _read_lines(stdin: IO[bytes], loop: asyncio.AbstractEventLoop, queue: Any) -> None:
    """Thread body: put each input line on ``queue``, then ``None`` at the end."""
    try:
        for raw in iter(stdin.readline, b""):
            line = raw.decode("utf-8", "replace").removesuffix("\n").removesuffix("\r")
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)
    except RuntimeError:
        pass  # the loop is closed: the connection ended before the input did
    except (OSError, ValueError):
        # stdin closed under us: treat it as the end of input
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, None)


async def run(
    url: str,
    *,
    subprotocols: list[str] | None = None,
    headers: list[tuple[str, str]] | None = None,
    origin: str | None = None,
    wait: float = 1.0,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Connect to ``url``, relay standard input and output; return the exit status."""
    stdin = stdin if stdin is not None else sys.stdin.buffer
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        conn = await connect(
            url, subprotocols=subprotocols or None, additional_headers=headers, origin=origin
        )
    except (OSError, FullDuplexError) as exc:
        print(f"fullduplex: cannot connect to {url}: {exc}", file=err, flush=True)
        return 1
    details = f" (subprotocol {conn.subprotocol})" if conn.subprotocol else ""
    interactive = stdin.isatty()
    hint = "; Ctrl-D closes" if interactive else ""
    print(f"connected to {url}{details}{hint}", file=err, flush=True)

    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(
        target=_read_lines, args=(stdin, loop, lines), name="fullduplex-stdin", daemon=True
    ).start()
    relay = _Relay(conn, out)
    receiving = loop.create_task(relay.receive())
    try:
        await _send_lines(conn, lines, receiving, relay)
        if not receiving.done():
            await relay.wait_for_replies(receiving, wait)
        await conn.close(1000)
    except asyncio.CancelledError:
        await asyncio.shield(conn.close(1000))
        raise
    finally:
        await asyncio.wait([receiving])
    code, reason = conn.close_code, conn.close_reason or ""
    clean = receiving.result()
    print(f"closed: {code}" + (f" {reason}" if reason else ""), file=err, flush=True)
    return 0 if clean and code in CLEAN_CODES else 1


async def _send_lines(
    conn: Connection,
    lines: asyncio.Queue[str | None],
    receiving: asyncio.Task[bool],
    relay: _Relay,
) -> None:
    """Send each input line until the input or the connection ends."""
    while True:
        getting = asyncio.ensure_future(lines.get())
        await asyncio.wait([getting, receiving], return_when=asyncio.FIRST_COMPLETED)
        if not getting.done():
            getting.cancel()
            return  # the connection ended
        line = getting.result()
        if line is None:
            return
        try:
            await conn.send(line)
        except ConnectionClosed:
            return
        relay.sent += 1


class _Relay:
    """Prints received messages and counts them."""

    def __init__(self, conn: Connection, out: IO[str]) -> None:
        self.conn = conn
        self.out = out
        self.sent = 0
        self.received = 0
        self.arrived = asyncio.Event()

    async def receive(self) -> bool:
        """Print messages until the end; True if the connection closed normally."""
        try:
            async for message in self.conn:
                print(format_message(message), file=self.out, flush=True)
                self.received += 1
                self.arrived.set()
        except ConnectionClosed as exc:
            return exc.was_clean
        return True

    async def wait_for_replies(self, receiving: asyncio.Task[bool], quiet: float) -> None:
        """Wait until every sent message got a reply, or the server was quiet for ``quiet`` s."""
        while self.received < self.sent and not receiving.done():
            self.arrived.clear()
            arrived = asyncio.ensure_future(self.arrived.wait())
            done, _ = await asyncio.wait(
                [arrived, receiving], timeout=quiet, return_when=asyncio.FIRST_COMPLETED
            )
            arrived.cancel()
            if not done:
                return  # quiet for too long
