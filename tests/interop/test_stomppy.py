"""stomp.py (PyPI) against our broker: ``stomp.Connection12`` over TCP and
``stomp.WSStompConnection`` over WebSocket (which offers no subprotocol), both STOMP 1.2,
and ``stomp.Connection`` (STOMP 1.1: acks by message-id and subscription).

stomp.py is blocking and threaded, so each scenario runs in a worker thread while the
broker runs on the test's event loop; every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from fullduplex.stomp import Broker, Client

stomp = pytest.importorskip("stomp", reason="stomp.py is not installed (pip install -e .[test])")

pytestmark = pytest.mark.interop

TIMEOUT = 5.0
TRANSPORTS = ["tcp", "ws"]


class Peer(stomp.ConnectionListener):  # type: ignore[misc]
    """One stomp.py connection and what its listener saw."""

    def __init__(self, transport: str, ports: dict[str, int], **options: Any) -> None:
        options.setdefault("auto_decode", False)
        if transport == "ws":
            self.conn = stomp.WSStompConnection(
                [("127.0.0.1", ports["ws"])], ws_path="/stomp", **options
            )
        else:
            self.conn = stomp.Connection12([("127.0.0.1", ports["tcp"])], **options)
        self.conn.set_listener("peer", self)
        self.messages: queue.Queue[Any] = queue.Queue()
        self.receipts: set[str] = set()
        self.receipt_event = threading.Condition()
        self.errors: list[Any] = []
        self.connected_frame: Any = None
        self.disconnected = threading.Event()
        self.counter = 0

    # listener
    def on_connected(self, frame: Any) -> None:
        self.connected_frame = frame

    def on_message(self, frame: Any) -> None:
        self.messages.put(frame)

    def on_receipt(self, frame: Any) -> None:
        with self.receipt_event:
            self.receipts.add(frame.headers["receipt-id"])
            self.receipt_event.notify_all()

    def on_error(self, frame: Any) -> None:
        self.errors.append(frame)

    def on_disconnected(self) -> None:
        self.disconnected.set()

    # helpers
    def connect(self, **headers: Any) -> Peer:
        self.conn.connect(wait=True, headers={"host": "/", **headers})
        return self

    def rid(self) -> str:
        self.counter += 1
        return f"r{self.counter}"

    def wait_receipt(self, rid: str) -> None:
        with self.receipt_event:
            assert self.receipt_event.wait_for(lambda: rid in self.receipts, TIMEOUT), rid

    def with_receipt(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        rid = self.rid()
        call(*args, receipt=rid, **kwargs)
        self.wait_receipt(rid)

    def send(self, destination: str, body: Any, **headers: Any) -> None:
        rid = self.rid()
        self.conn.send(destination, body, headers={**headers, "receipt": rid})
        self.wait_receipt(rid)

    def subscribe(self, destination: str, id: str, ack: str = "auto") -> None:
        rid = self.rid()
        self.conn.subscribe(destination, id, ack=ack, headers={"receipt": rid})
        self.wait_receipt(rid)

    def message(self) -> Any:
        return self.messages.get(timeout=TIMEOUT)

    def close(self) -> None:
        if self.conn.is_connected():
            self.conn.disconnect()


@contextlib.asynccontextmanager
async def broker(**options: Any) -> AsyncIterator[tuple[Broker, dict[str, int]]]:
    instance = Broker(**options)
    ws = await instance.serve_websocket("127.0.0.1", 0)
    tcp = await instance.serve_tcp("127.0.0.1", 0)
    try:
        yield instance, {"ws": ws.port, "tcp": tcp.sockets[0].getsockname()[1]}
    finally:
        await instance.close()


async def in_thread(scenario: Callable[[], Any]) -> Any:
    return await asyncio.wait_for(asyncio.to_thread(scenario), TIMEOUT * 4)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connect_and_topics(transport: str) -> None:
    async with broker() as (_, ports):

        def scenario() -> None:
            peers = [Peer(transport, ports).connect() for _ in range(3)]
            try:
                frame = peers[0].connected_frame
                assert frame.headers["version"] == "1.2"
                assert frame.headers["server"].startswith("fullduplex/")
                for i, peer in enumerate(peers):
                    peer.subscribe("/topic/py", id=f"s{i}")
                for n in range(5):
                    peers[0].send("/topic/py", f"m{n}", **{"x-n": str(n)})
                for i, peer in enumerate(peers):
                    got = [peer.message() for _ in range(5)]
                    assert [m.body for m in got] == [f"m{n}".encode() for n in range(5)]
                    assert [m.headers["x-n"] for m in got] == [str(n) for n in range(5)]
                    assert all(m.headers["subscription"] == f"s{i}" for m in got)
            finally:
                for peer in peers:
                    peer.close()

        await in_thread(scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_competing_queue_consumers(transport: str) -> None:
    async with broker() as (_, ports):

        def scenario() -> None:
            a, b, producer = (Peer(transport, ports).connect() for _ in range(3))
            try:
                a.subscribe("/queue/py", "a")
                b.subscribe("/queue/py", "b")
                for n in range(10):
                    producer.send("/queue/py", f"q{n}")
                got_a = [a.message().body for _ in range(5)]
                got_b = [b.message().body for _ in range(5)]
                assert sorted(got_a + got_b) == sorted(f"q{n}".encode() for n in range(10))
                assert a.messages.empty() and b.messages.empty()
            finally:
                for peer in (a, b, producer):
                    peer.close()

        await in_thread(scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_ack_modes_nack_redelivery_and_transactions(transport: str) -> None:
    async with broker() as (instance, ports):

        def scenario() -> None:
            c = Peer(transport, ports).connect()
            p = Peer(transport, ports).connect()
            try:
                c.subscribe("/queue/auto", "auto")
                p.send("/queue/auto", "x")
                assert "ack" not in c.message().headers

                c.subscribe("/queue/ind", "ind", ack="client-individual")
                p.send("/queue/ind", "one")
                first = c.message()
                c.with_receipt(c.conn.nack, first.headers["ack"])
                again = c.message()
                assert again.body == b"one" and again.headers["redelivered"] == "true"
                c.with_receipt(c.conn.ack, again.headers["ack"])

                c.subscribe("/queue/cum", "cum", ack="client")
                for body in ("c1", "c2", "c3"):
                    p.send("/queue/cum", body)
                got = [c.message() for _ in range(3)]
                c.with_receipt(c.conn.ack, got[1].headers["ack"])  # settles c1 and c2

                # Transactions: an aborted SEND never arrives, a committed one does.
                c.subscribe("/topic/tx", "tx")
                tx = c.conn.begin()
                c.conn.send("/topic/tx", "aborted", transaction=tx)
                c.with_receipt(c.conn.abort, tx)
                tx = c.conn.begin()
                c.conn.send("/topic/tx", "committed", transaction=tx)
                c.conn.ack(got[2].headers["ack"], transaction=tx)
                c.with_receipt(c.conn.commit, tx)
                assert c.message().body == b"committed"
            finally:
                p.close()
                c.close()

        await in_thread(scenario)
        assert instance.router.queue_depth("/queue/cum") == 0
        assert instance.stats.redelivered == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_escaping_binary_and_large_bodies(transport: str) -> None:
    async with broker() as (_, ports):
        url = f"tcp://127.0.0.1:{ports['tcp']}"
        async with Client(url, reconnect=False) as ours:
            sub = await ours.subscribe("/queue/bodies")
            value = "a:b\\c\nd"
            # Text WebSocket frames (stomp.py's default) must be UTF-8: NUL is, 0xff is not.
            binary = b"\x00nul\x00" if transport == "ws" else b"\x00\xff\xfe\x00"
            large = b"0123456789abcdef" * 65536 if transport == "ws" else bytes(range(256)) * 4096

            def scenario() -> None:
                p = Peer(transport, ports).connect()
                try:
                    p.send("/queue/bodies", b"e", **{"x-esc": value})
                    p.send("/queue/bodies", binary, **{"content-type": "application/octet-stream"})
                    p.send("/queue/bodies", large)
                finally:
                    p.close()

            await in_thread(scenario)
            got = [await asyncio.wait_for(sub.get(), TIMEOUT) for _ in range(3)]
            assert got[0].header("x-esc") == value  # what stomp.py meant, as we decode it
            assert got[1].body == binary
            assert got[2].body == large

            # And the other way: stomp.py receives what we send (binary as binary frames).
            body = b"\x00\xff" + bytes(range(256)) * 4096

            def receive() -> Any:
                p = Peer(transport, ports).connect()
                try:
                    p.subscribe("/queue/back", "back")
                    ready.set()
                    return p.message()
                finally:
                    p.close()

            ready = threading.Event()
            receiving = asyncio.ensure_future(in_thread(receive))
            await asyncio.to_thread(ready.wait, TIMEOUT)
            await ours.send("/queue/back", body, headers={"x-esc": value}, receipt=True)
            message = await receiving
            assert message.body == body
            assert message.headers["x-esc"] == value


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_heartbeats_keep_an_idle_connection(transport: str) -> None:
    async with broker(heartbeat=(100, 100)) as (instance, ports):

        def scenario() -> None:
            p = Peer(transport, ports, heartbeats=(100, 100)).connect()
            try:
                assert p.connected_frame.headers["heart-beat"] == "100,100"
                time.sleep(1.0)  # the idle period under test (the broker drops after 0.65 s)
                assert p.conn.is_connected() and not p.disconnected.is_set()
                p.subscribe("/topic/hb", "hb")
                p.send("/topic/hb", "alive")
                assert p.message().body == b"alive"
            finally:
                p.close()

        await in_thread(scenario)
        assert instance.stats.delivered == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_error_on_malformed_frame(transport: str) -> None:
    async with broker() as (instance, ports):

        def scenario() -> None:
            bad = Peer(transport, ports).connect()
            good = Peer(transport, ports).connect()
            try:
                good.subscribe("/topic/err", "g")
                bad.conn.send_frame("FOO", {"receipt": "x"})
                assert bad.disconnected.wait(TIMEOUT)
                assert bad.errors and bad.errors[0].headers["message"] == "unknown command"
                assert bad.errors[0].headers["receipt-id"] == "x"
                good.send("/topic/err", "fine")
                assert good.message().body == b"fine"
            finally:
                good.close()
                bad.close()

        await in_thread(scenario)
        assert instance.stats.delivered == 1


async def test_stomp_11_connection_acks_by_message_id() -> None:
    async with broker() as (instance, ports):

        def scenario() -> None:
            conn = stomp.Connection([("127.0.0.1", ports["tcp"])], auto_decode=False)
            peer = Peer("tcp", ports)
            peer.conn = conn
            conn.set_listener("peer", peer)
            peer.connect()
            try:
                assert peer.connected_frame.headers["version"] == "1.1"
                peer.subscribe("/queue/v11", "s", ack="client-individual")
                peer.send("/queue/v11", "one")
                message = peer.message()
                peer.with_receipt(conn.nack, message.headers["message-id"], "s")
                again = peer.message()
                assert again.headers["redelivered"] == "true"
                peer.with_receipt(conn.ack, again.headers["message-id"], "s")
            finally:
                peer.close()

        await in_thread(scenario)
        assert instance.router.queue_depth("/queue/v11") == 0
