"""Three ``fullduplex serve`` processes sharing a real Redis or NATS server.

Each test module run starts ``redis-server`` / ``nats-server`` on free loopback ports
(tests/pubsub/servers.py) and three nodes as separate processes
(``python -m fullduplex serve --port 0 --backplane URL``), then checks what a client
sees: chat, presence and history across nodes, STOMP topics across nodes, one
publisher's order under load, and an outage of the bus (kill -9, restart) during
which clients stay connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fullduplex.stomp import Client as StompClient
from pubsub.servers import NatsServer, RedisServer, ServerProcess

from .support import ChatClient, HTTPAnswer, http_get

pytestmark = pytest.mark.slow

START_TIMEOUT = 20.0
WAIT = 15.0


def _clients_installed(kind: str) -> None:
    if kind == "redis":
        pytest.importorskip("redis", reason="redis-py is not installed (the [redis] extra)")
    else:
        pytest.importorskip("nats", reason="nats-py is not installed (the [nats] extra)")


class Node:
    """One ``fullduplex serve`` process on a port of its choosing."""

    def __init__(self, backplane: str, log: Path) -> None:
        self.log = log
        with log.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fullduplex", "serve", "--port", "0",
                 "--backplane", backplane],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
            )  # fmt: skip
        self.port = self._read_port()

    def _read_port(self) -> int:
        """Wait for the ``listening on http://127.0.0.1:PORT`` banner."""
        stdout = self.process.stdout
        assert stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            if not selector.select(START_TIMEOUT):
                self.stop()
                raise TimeoutError(f"no banner from the node:\n{self.log.read_text()}")
        line = stdout.readline().decode().strip()
        if not line.startswith("listening on http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"unexpected {line!r}:\n{self.log.read_text()}")
        return int(line.rsplit(":", 1)[1])

    def url(self, path: str, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def chat(self, room: str | None = None, nick: str | None = None) -> ChatClient:
        client = await ChatClient.open(self.url("/chat"))
        if room is not None and nick is not None:
            await client.join(room, nick)
        return client

    async def get(self, path: str) -> HTTPAnswer:
        return await http_get(self.url(path, "http"))

    def terminate(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        process = self.process
        self.terminate()
        if process.returncode is None:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def cluster(bus: ServerProcess, count: int = 3) -> Iterator[list[Node]]:
    """``count`` nodes on ``bus``, stopped at the end of the block."""
    nodes: list[Node] = []
    with tempfile.TemporaryDirectory(prefix="fullduplex-nodes-") as tmp:
        try:
            for index in range(count):
                nodes.append(Node(bus.url, Path(tmp) / f"node{index}.log"))
            yield nodes
        finally:
            for node in nodes:
                node.terminate()  # all at once: each may wait for its clients to close
            for node in nodes:
                node.stop()


def make_bus(kind: str) -> ServerProcess:
    _clients_installed(kind)
    return RedisServer() if kind == "redis" else NatsServer()


@pytest.fixture(scope="module", params=["redis", "nats"])
def nodes(request: pytest.FixtureRequest) -> Iterator[list[Node]]:
    with make_bus(request.param) as bus, cluster(bus) as started:
        yield started


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """Poll ``check()`` until it is true (a condition with a deadline, no fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the condition never became true")
        await asyncio.sleep(0.02)


async def stats(node: Node) -> dict[str, Any]:
    answer = await node.get("/stats")
    assert answer.status == 200
    result: dict[str, Any] = answer.json()
    return result


# --------------------------------------------------------------------------- chat


async def test_chat_presence_and_history_across_nodes(nodes: list[Node]) -> None:
    n1, n2, n3 = nodes
    ada = await n1.chat("lobby", "Ada")
    bob = await n2.chat()
    joined = await bob.join("lobby", "Bob")
    assert joined["members"] == ["Ada", "Bob"]
    await ada.expect("presence", event="join", nick="Bob", members=["Ada", "Bob"])

    # A nick is unique in a room across nodes.
    impostor = await n3.chat()
    await impostor.send(type="join", room="lobby", nick="ADA")
    await impostor.expect("error", code="nick_taken")

    await ada.say("hello from node 1")
    await bob.expect("message", nick="Ada", text="hello from node 1")
    await bob.say("hello from node 2")
    for client in (ada, bob):  # each event once, the author's own included
        if client is ada:
            await client.expect("message", nick="Ada", text="hello from node 1")
        await client.expect("message", nick="Bob", text="hello from node 2")

    cy = await n3.chat()
    joined = await cy.join("lobby", "Cy")
    assert joined["members"] == ["Ada", "Bob", "Cy"]
    assert [(m["nick"], m["text"]) for m in joined["history"]] == [
        ("Ada", "hello from node 1"),
        ("Bob", "hello from node 2"),
    ]
    for client in (ada, bob):
        await client.expect("presence", event="join", nick="Cy")

    await bob.close()
    for client in (ada, cy):
        await client.expect("presence", event="leave", nick="Bob", members=["Ada", "Cy"])
    await ada.say("bye")
    await cy.expect("message", nick="Ada", text="bye")
    await ada.expect("message", nick="Ada", text="bye")
    for client in (ada, cy, impostor):
        await client.close()


async def test_nodes_subscribe_only_to_rooms_with_local_members(nodes: list[Node]) -> None:
    n1, n2, _ = nodes
    before = (await stats(n2))["backplane"]["channels"]
    ada = await n1.chat("only-here", "Ada")
    assert (await stats(n2))["backplane"]["channels"] == before
    bob = await n2.chat("only-here", "Bob")
    assert (await stats(n2))["backplane"]["channels"] == before + 1
    await ada.expect("presence", event="join", nick="Bob")
    await bob.close()
    await ada.expect("presence", event="leave", nick="Bob")

    async def released() -> bool:
        return bool((await stats(n2))["backplane"]["channels"] == before)

    await eventually(released)
    await ada.close()


# -------------------------------------------------------------------------- STOMP


async def subscribed_everywhere(nodes: list[Node], topics: int) -> None:
    """Wait until every node's bridge holds ``topics`` bus subscriptions."""

    async def ready() -> bool:
        for node in nodes:
            if (await stats(node))["stomp_bridge"]["topics"] < topics:
                return False
        return True

    await eventually(ready)


async def test_stomp_topics_across_nodes(nodes: list[Node]) -> None:
    clients = [StompClient(node.url("/stomp"), reconnect=False) for node in nodes]
    for client in clients:
        await client.connect()
    try:
        subs = [await client.subscribe("/topic/news") for client in clients]
        await subscribed_everywhere(nodes, 1)
        await clients[0].send("/topic/news", "from node 1", headers={"x-seq": "1"}, receipt=True)
        for sub in subs:
            first = await asyncio.wait_for(sub.get(), WAIT)
            assert (first.text, first.header("x-seq")) == ("from node 1", "1")
            assert first.destination == "/topic/news"
        await clients[2].send("/topic/news", "from node 3", receipt=True)
        for sub in subs:
            second = await asyncio.wait_for(sub.get(), WAIT)
            assert second.text == "from node 3"  # nothing twice in between
    finally:
        for client in clients:
            await client.close()


async def test_one_publishers_order_is_kept_under_load(nodes: list[Node]) -> None:
    count = 2000
    clients = [StompClient(node.url("/stomp"), reconnect=False) for node in nodes]
    for client in clients:
        await client.connect()
    try:
        subs = [await client.subscribe("/topic/seq") for client in clients]
        await subscribed_everywhere(nodes, 1)
        publisher = clients[0]
        for i in range(count):
            publisher.send("/topic/seq", str(i))
            if i % 200 == 0:
                await publisher.drain()
        await publisher.send("/topic/seq", "end", receipt=True)
        for sub in subs:  # the publisher's own node, and the two others
            got = []
            while True:
                message = await asyncio.wait_for(sub.get(), WAIT)
                if message.text == "end":
                    break
                got.append(int(message.text))
            assert got == list(range(count))
    finally:
        for client in clients:
            await client.close()


# ------------------------------------------------------------------------- outage


async def healthz(node: Node) -> tuple[int, dict[str, Any]]:
    answer = await node.get("/healthz")
    return answer.status, answer.json()


@pytest.mark.parametrize("kind", ["redis", "nats"])
async def test_bus_outage_keeps_clients_and_recovers(kind: str) -> None:
    with make_bus(kind) as bus, cluster(bus) as (n1, n2, n3):
        ann = await n1.chat("ops", "Ann")
        ben = await n2.chat("ops", "Ben")
        await ann.expect("presence", event="join", nick="Ben")
        for node in (n1, n2, n3):
            assert (await healthz(node))[0] == 200

        bus.kill()

        async def all_down() -> bool:
            return all([(await healthz(node))[0] == 503 for node in (n1, n2, n3)])

        await eventually(all_down)
        status, body = await healthz(n1)
        assert status == 503
        assert body["status"] == "unavailable"
        assert body["backplane"]["healthy"] is False
        assert body["backplane"]["state"] == "reconnecting"
        # The sender is told; nothing is buffered.
        await ann.say("lost in the outage")
        await ann.expect("error", code="unavailable")
        backplane = (await stats(n1))["backplane"]
        assert backplane["outages"] == 1 and backplane["refused"] >= 1

        bus.start()  # same port (Redis comes back empty; NATS keeps its JetStream dir)

        async def all_up() -> bool:
            return all([(await healthz(node))[0] == 200 for node in (n1, n2, n3)])

        await eventually(all_up)
        assert (await stats(n2))["backplane"]["reconnects"] == 1

        # The same connections, never closed, chat again.
        await ann.say("back")
        await ben.expect("message", nick="Ann", text="back")
        await ann.expect("message", nick="Ann", text="back")
        await ben.say("welcome back")
        await ann.expect("message", nick="Ben", text="welcome back")
        # Members were restored by their nodes.
        cat = await n3.chat()
        joined = await cat.join("ops", "Cat")
        assert sorted(joined["members"]) == ["Ann", "Ben", "Cat"]
        for client in (ann, ben, cat):
            await client.close()


# ------------------------------------------------------------- the cluster command


def consecutive_free_ports(count: int) -> int:
    """A first port such that it and the ``count - 1`` next ones are free (below the
    ephemeral range, so that no outgoing connection takes one meanwhile)."""
    for first in range(21000 + os.getpid() % 4000, 32000, 7):
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no free ports")


async def test_the_cluster_command_starts_and_stops_everything() -> None:
    _clients_installed("redis")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/test installs it)")
    port = consecutive_free_ports(2)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fullduplex", "cluster", "--nodes", "2", "--port", str(port),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        lines = []
        while not lines or not lines[-1].startswith("Ctrl-C"):
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
            assert line, b"".join(lines)
            lines.append(line.decode().strip())
        assert lines[0].startswith("backplane: redis://127.0.0.1:")
        assert lines[1].startswith(f"node 1: http://127.0.0.1:{port}/")
        assert lines[2].startswith(f"node 2: http://127.0.0.1:{port + 1}/")
        for offset in (0, 1):
            answer = await http_get(f"http://127.0.0.1:{port + offset}/healthz")
            assert answer.status == 200 and answer.json()["backplane"]["kind"] == "redis"
        process.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(process.stdout.read(), WAIT)
        assert await asyncio.wait_for(process.wait(), WAIT) == 0
        assert b"stopping the cluster" in rest
        for offset in (0, 1):  # the nodes are gone
            with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port + offset)):
                pass
    finally:
        if process.returncode is None:  # SIGTERM: it stops its nodes and bus first
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), WAIT)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
