"""The ``fullduplex`` command: a thin shell over the Python API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from . import wscat
from .connection import Connection
from .server import serve

__all__ = ["main", "run"]

T = TypeVar("T")


def _size(text: str) -> int | None:
    """Parse a byte count: ``1048576``, ``64KiB``, ``16MiB`` or ``none``."""
    value = text.strip().lower()
    if value in ("none", "unlimited", "0"):
        return None
    for suffix, factor in (
        ("kib", 1024),
        ("mib", 1024**2),
        ("gib", 1024**3),
        ("k", 1024),
        ("m", 1024**2),
        ("g", 1024**3),
    ):
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(value)


async def echo_handler(conn: Connection) -> None:
    """Send back every message with its type (text stays text, binary stays binary)."""
    async for message in conn:
        await conn.send(message)


async def _run_until_signal(server_cm: object, banner: str) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server_cm as server:  # type: ignore[attr-defined]
        print(banner.format(port=server.port), flush=True)
        await stop
        logging.getLogger("fullduplex").info("shutting down")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)  # type: ignore[no-any-return]


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server TLS context from PEM files, or ``None`` when no certificate is given."""
    if cert is None:
        if key is not None:
            raise SystemExit("fullduplex: --tls-key needs --tls-cert")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def add_listen_options(parser: argparse.ArgumentParser, port: int) -> None:
    """Options shared by the commands that serve."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=port, help=f"port to listen on ({port}; 0: any free port)"
    )
    parser.add_argument(
        "--tls-cert", metavar="PEM", help="serve wss:// with this certificate chain"
    )
    parser.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert (if separate)")


def listen_url(args: argparse.Namespace, context: ssl.SSLContext | None) -> str:
    """The banner URL template (``{port}`` is filled in once listening)."""
    host = f"[{args.host}]" if ":" in args.host else args.host
    return f"listening on {'wss' if context else 'ws'}://{host}:{{port}}"


def _cmd_echo(args: argparse.Namespace) -> int:
    context = tls_context(args.tls_cert, args.tls_key)
    cm = serve(echo_handler, args.host, args.port, max_size=args.max_size, ssl=context)
    run(_run_until_signal(cm, listen_url(args, context)))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .apps.app import serve_app
    from .pubsub import BackplaneError, create_backplane

    context = tls_context(args.tls_cert, args.tls_key)
    try:
        backplane = create_backplane(args.backplane)
    except (ValueError, ImportError) as exc:
        raise SystemExit(f"fullduplex: {exc}") from None
    cm = serve_app(args.host, args.port, backplane=backplane, ssl=context)
    banner = listen_url(args, context).replace("wss://", "https://").replace("ws://", "http://")
    try:
        run(_run_until_signal(cm, banner))
    except BackplaneError as exc:
        raise SystemExit(f"fullduplex: {exc}") from None
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    from .apps.cluster import run_cluster

    return run_cluster(
        nodes=args.nodes,
        host=args.host,
        port=args.port,
        backplane=args.backplane,
        verbose=args.verbose,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fullduplex`` command."""
    parser = argparse.ArgumentParser(
        prog="fullduplex",
        description="WebSocket toolkit: servers and clients from the command line.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection events")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    echo = sub.add_parser(
        "echo",
        help="run an echo server",
        description="Run a WebSocket echo server: every message comes back with its "
        "type, on any path. Ctrl-C shuts down gracefully (close 1001 to clients).",
    )
    add_listen_options(echo, 9001)
    echo.add_argument(
        "--max-size",
        type=_size,
        default=2**20,
        metavar="BYTES",
        help="largest message accepted, e.g. 1048576, 16MiB or none (default 1MiB)",
    )
    echo.set_defaults(func=_cmd_echo)
    serve_cmd = sub.add_parser(
        "serve",
        help="run the chat page, /chat, /echo, /healthz and /stats on one port",
        description="Serve the chat page at /, chat rooms at /chat, echo at /echo, "
        "health at /healthz and counters at /stats. Ctrl-C or SIGTERM shuts down "
        "gracefully (close 1001 to clients).",
    )
    add_listen_options(serve_cmd, 8765)
    serve_cmd.add_argument(
        "--backplane",
        default="memory",
        metavar="URL",
        help="fan-out between server processes: memory (default, this process only), "
        "redis://host:port/db or nats://host:port (see docs/scale-out.md)",
    )
    serve_cmd.set_defaults(func=_cmd_serve)
    cluster_cmd = sub.add_parser(
        "cluster",
        help="run several serve nodes sharing a Redis or NATS backplane (a demo)",
        description="Start N `fullduplex serve` processes on consecutive ports, sharing "
        "the backplane URL given, or a redis-server (else nats-server) started on a "
        "free port for the occasion. Prints the nodes' URLs; Ctrl-C stops everything.",
    )
    cluster_cmd.add_argument("--nodes", type=int, default=3, help="how many nodes (3)")
    cluster_cmd.add_argument("--host", default="127.0.0.1", help="address to listen on")
    cluster_cmd.add_argument(
        "--port", type=int, default=8765, help="port of the first node (8765); then +1, +2..."
    )
    cluster_cmd.add_argument(
        "--backplane",
        metavar="URL",
        help="redis://host:port/db or nats://host:port (default: start a local server)",
    )
    cluster_cmd.set_defaults(func=_cmd_cluster)
    connect_cmd = sub.add_parser(
        "connect",
        help="connect to a WebSocket server: send input lines, print messages",
        description="Connect to URL, send each line of standard input as a text "
        "message and print each message received. At the end of input, wait for "
        "the replies (see --wait), then close with 1000. Exit status 0 on a normal "
        "close, 1 otherwise.",
    )
    wscat.add_arguments(connect_cmd)
    connect_cmd.set_defaults(func=wscat.command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"fullduplex: {exc}", file=sys.stderr)
        return 1
