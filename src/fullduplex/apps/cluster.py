"""``fullduplex cluster``: several ``serve`` nodes sharing a backplane, on one machine.

::

    fullduplex cluster --nodes 3 --port 8765                 # starts its own redis-server
    fullduplex cluster --backplane nats://127.0.0.1:4222     # or uses yours

Each node is a separate ``python -m fullduplex serve`` process on consecutive ports
(8765, 8766, 8767...), all with the same ``--backplane``: a chat room, its presence
and history, and STOMP topics span them. Without a URL the command starts a
``redis-server`` (else a ``nats-server -js``) on a free loopback port, in a
temporary directory, for as long as it runs. Ctrl-C (or SIGTERM) stops the nodes
(which close their clients with 1001), then the server it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["Cluster", "ClusterError", "run_cluster"]

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


class ClusterError(Exception):
    """The cluster could not start."""


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _wait_for_port(host: str, port: int, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.returncode is not None:
            raise ClusterError(f"the bus server exited with status {process.returncode}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() > deadline:
                raise ClusterError(f"the bus server did not listen on {port}") from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


class Cluster:
    """N ``fullduplex serve`` processes and, if no URL is given, a bus server.

    ``async with Cluster(3, port=8765) as cluster:`` starts everything; ``cluster.urls``
    are the nodes' ``http://`` URLs; leaving the block stops it all.
    """

    def __init__(
        self,
        nodes: int = 3,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        backplane: str | None = None,
        verbose: bool = False,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster has at least one node")
        self.count = nodes
        self.host = host
        self.port = port
        self.backplane = backplane
        self.verbose = verbose
        self.urls: list[str] = []
        self.nodes: list[asyncio.subprocess.Process] = []
        self.bus: asyncio.subprocess.Process | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self.backplane is None:
            self.backplane = await self._start_bus()
        for index in range(self.count):
            await self._start_node(self.port + index)

    async def _start_bus(self) -> str:
        """Start a redis-server (else a nats-server) on a free loopback port."""
        self._tmp = tempfile.TemporaryDirectory(prefix="fullduplex-cluster-")
        workdir = Path(self._tmp.name)
        port = _free_port()
        redis = shutil.which("redis-server")
        nats = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")
        if redis is not None:
            command = [
                redis, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                "--save", "", "--appendonly", "no",
            ]  # fmt: skip
            url = f"redis://127.0.0.1:{port}/0"
        elif nats is not None:
            command = [nats, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(workdir)]
            url = f"nats://127.0.0.1:{port}"
        else:
            raise ClusterError(
                "neither redis-server nor nats-server is installed: install one, "
                "or pass --backplane redis://... or nats://..."
            )
        log = (workdir / "bus.log").open("wb")
        try:
            self.bus = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=workdir,
                start_new_session=True,  # Ctrl-C reaches this process only: it stops
            )
        finally:
            log.close()
        await _wait_for_port("127.0.0.1", port, self.bus)
        print(f"backplane: {url} (started {Path(command[0]).name}, pid {self.bus.pid})")
        return url

    async def _start_node(self, port: int) -> None:
        assert self.backplane is not None
        command = [
            sys.executable, "-m", "fullduplex",
            *(["-v"] if self.verbose else []),
            "serve", "--host", self.host, "--port", str(port), "--backplane", self.backplane,
        ]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # stopped by this process, nodes first, then the bus
        )
        self.nodes.append(process)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except asyncio.TimeoutError:
            raise ClusterError(f"the node on port {port} did not start") from None
        banner = line.decode(errors="replace").strip()
        if not banner.startswith("listening on "):
            await process.wait()
            raise ClusterError(f"the node on port {port} exited ({process.returncode})")
        self.urls.append(banner.removeprefix("listening on "))

    async def wait(self) -> int:
        """Wait until a node exits; return its index."""
        waits = [asyncio.ensure_future(node.wait()) for node in self.nodes]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return next(i for i, task in enumerate(waits) if task in done)

    async def stop(self) -> None:
        """Stop the nodes (SIGTERM: graceful), then the bus server this started."""
        for group in (self.nodes, [self.bus] if self.bus is not None else []):
            for process in group:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGTERM)
            for process in group:
                try:
                    await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
                except asyncio.TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
        self.nodes, self.bus = [], None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


async def _main(cluster: Cluster) -> int:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with cluster:
        for index, url in enumerate(cluster.urls, 1):
            ws = url.replace("https://", "wss://").replace("http://", "ws://")
            print(f"node {index}: {url}/  chat {ws}/chat  STOMP {ws}/stomp", flush=True)
        print("Ctrl-C stops the cluster.", flush=True)
        died = asyncio.ensure_future(cluster.wait())
        await asyncio.wait([stop, died], return_when=asyncio.FIRST_COMPLETED)
        if died.done():
            print(f"node {died.result() + 1} exited; stopping the cluster", file=sys.stderr)
            return 1
        died.cancel()
        print("stopping the cluster", flush=True)
    return 0


def run_cluster(
    nodes: int = 3,
    host: str = "127.0.0.1",
    port: int = 8765,
    backplane: str | None = None,
    verbose: bool = False,
) -> int:
    """Run a cluster until Ctrl-C or SIGTERM; return the exit status."""
    cluster = Cluster(nodes, host=host, port=port, backplane=backplane, verbose=verbose)
    try:
        return asyncio.run(_main(cluster))
    except ClusterError as exc:
        print(f"fullduplex: {exc}", file=sys.stderr)
        return 1
