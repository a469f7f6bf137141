"""The broker over real sockets: raw STOMP peers (WebSocket and TCP) and our client.

Each test starts its broker on free loopback ports and stops it; waits are on events
and frames with timeouts, never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

import fullduplex
from fullduplex.protocol.connection import State as WSState
from fullduplex.routing import Router
from fullduplex.stomp import (
    HEARTBEAT,
    SUBPROTOCOLS,
    Broker,
    Client,
    Frame,
    FrameParser,
    ServerError,
    encode,
)

TIMEOUT = 5.0
TRANSPORTS = ["ws", "tcp"]


# -- helpers -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(broker: Broker | None = None, **options: Any) -> AsyncIterator[Running]:
    broker = broker if broker is not None else Broker(**options)
    ws = await broker.serve_websocket("127.0.0.1", 0)
    tcp = await broker.serve_tcp("127.0.0.1", 0)
    try:
        yield Running(broker, ws.port, tcp.sockets[0].getsockname()[1])
    finally:
        await broker.close()


class Running:
    def __init__(self, broker: Broker, ws_port: int, tcp_port: int) -> None:
        self.broker = broker
        self.ws_port = ws_port
        self.tcp_port = tcp_port

    def url(self, transport: str) -> str:
        if transport == "ws":
            return f"ws://127.0.0.1:{self.ws_port}/stomp"
        return f"tcp://127.0.0.1:{self.tcp_port}"

    def client(self, transport: str, **options: Any) -> Client:
        options.setdefault("reconnect", False)
        return Client(self.url(transport), **options)

    async def raw(self, transport: str, **options: Any) -> RawPeer:
        if transport == "ws":
            options.setdefault("subprotocols", list(SUBPROTOCOLS))
            conn = await fullduplex.connect(self.url("ws"), max_size=None, **options)
            return RawPeer(ws=conn)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.tcp_port)
        return RawPeer(reader=reader, writer=writer)


class RawPeer:
    """A STOMP peer that writes the bytes it is told to and parses what comes back."""

    def __init__(self, *, ws: Any = None, reader: Any = None, writer: Any = None) -> None:
        self.ws = ws
        self.reader = reader
        self.writer = writer
        self.parser = FrameParser(max_frame_size=1 << 24)
        self.messages: list[str | bytes] = []  # raw WebSocket messages, for type checks
        self.heartbeats = 0

    async def send(self, data: bytes | str) -> None:
        if self.ws is not None:
            await self.ws.send(data)
        else:
            self.writer.write(data.encode() if isinstance(data, str) else data)

    async def send_frame(self, command: str, headers: list[tuple[str, str]], body: bytes = b""):
        await self.send(encode(Frame(command, headers, body)))

    async def _read_more(self) -> bool:
        if self.ws is not None:
            try:
                data = await self.ws.recv()
            except fullduplex.ConnectionClosed:
                return False
            self.messages.append(data)
            self.parser.feed_data(data.encode() if isinstance(data, str) else data)
            return True
        try:
            data = await self.reader.read(65536)
        except ConnectionResetError:
            return False
        if not data:
            return False
        self.parser.feed_data(data)
        return True

    async def frame(self, timeout: float = TIMEOUT) -> Frame:
        async def next_frame() -> Frame:
            while True:
                item = self.parser.next_frame()
                if item is HEARTBEAT:
                    self.heartbeats += 1
                    continue
                if item is not None:
                    assert isinstance(item, Frame)
                    return item
                if not await self._read_more():
                    raise EOFError("connection closed")

        return await asyncio.wait_for(next_frame(), timeout)

    async def wait_heartbeats(self, count: int, timeout: float = TIMEOUT) -> None:
        async def loop() -> None:
            while self.heartbeats < count:
                item = self.parser.next_frame()
                if item is HEARTBEAT:
                    self.heartbeats += 1
                elif item is None and not await self._read_more():
                    raise EOFError("connection closed")

        await asyncio.wait_for(loop(), timeout)

    async def closed(self, timeout: float = TIMEOUT) -> None:
        """Wait until the broker closes the connection (frames before are dropped)."""

        async def loop() -> None:
            while await self._read_more():
                pass

        await asyncio.wait_for(loop(), timeout)
        if self.writer is not None:
            await self.close()

    async def connect(self, *headers: tuple[str, str], command: str = "CONNECT") -> Frame:
        head = [("accept-version", "1.0,1.1,1.2"), ("host", "/"), *headers]
        await self.send_frame(command, head)
        return await self.frame()

    async def abort(self) -> None:
        """Drop the connection (a WebSocket whose receive queue is full could not
        complete a closing handshake before its close timeout)."""
        if self.ws is not None:
            self.ws.protocol.abort()
            await self.ws.wait_closed()
        else:
            await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        else:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


def header(frame: Frame, name: str) -> str | None:
    return frame.get(name)


# -- connecting ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connected_headers(transport: str) -> None:
    async with running(heartbeat=(5000, 6000)) as run:
        peer = await run.raw(transport)
        connected = await peer.connect(("heart-beat", "1000,2000"))
        assert connected.command == "CONNECTED"
        assert connected.get("version") == "1.2"
        assert connected.get("server", "").startswith("fullduplex/")
        assert connected.get("session")
        assert connected.get("heart-beat") == "5000,6000"
        await peer.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_stomp_command_and_version_negotiation(transport: str) -> None:
    async with running() as run:
        peer = await run.raw(transport)
        await peer.send_frame("STOMP", [("accept-version", "1.0,1.1"), ("host", "x")])
        connected = await peer.frame()
        assert connected.get("version") == "1.1"
        await peer.close()
        peer = await run.raw(transport)
        await peer.send_frame("CONNECT", [("accept-version", "2.0")])
        error = await peer.frame()
        assert error.command == "ERROR"
        assert error.get("version") == "1.0,1.1,1.2"
        await peer.closed()


async def test_subprotocols_negotiated_and_optional() -> None:
    async with running() as run:
        for offered, chosen in [
            (list(SUBPROTOCOLS), "v12.stomp"),
            (["v10.stomp"], "v10.stomp"),
            (["v11.stomp", "v12.stomp"], "v12.stomp"),
            ([], None),  # stomp.py offers none: still served
        ]:
            peer = await run.raw("ws", subprotocols=offered)
            assert peer.ws.subprotocol == chosen
            assert (await peer.connect()).command == "CONNECTED"
            await peer.close()


async def test_other_paths_get_404() -> None:
    async with running() as run:
        with pytest.raises(fullduplex.InvalidStatus) as info:
            await fullduplex.connect(f"ws://127.0.0.1:{run.ws_port}/other")
        assert info.value.status == 404


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_authenticate_hook_refuses_with_error_then_close(transport: str) -> None:
    seen: list[tuple[Any, ...]] = []

    def authenticate(login: str | None, passcode: str | None, host: str | None) -> bool:
        seen.append((login, passcode, host))
        return (login, passcode) == ("alice", "secret")

    async with running(authenticate=authenticate) as run:
        peer = await run.raw(transport)
        error = await peer.connect(("login", "alice"), ("passcode", "wrong"))
        assert error.command == "ERROR"
        assert error.get("message") == "access refused"
        assert error.body
        await peer.closed()
        if transport == "ws":
            await peer.ws.wait_closed()
            assert peer.ws.close_code == 1002
        peer = await run.raw(transport)
        ok = await peer.connect(("login", "alice"), ("passcode", "secret"))
        assert ok.command == "CONNECTED"
        assert seen == [("alice", "wrong", "/"), ("alice", "secret", "/")]
        await peer.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_async_authenticate_and_pipelined_frames(transport: str) -> None:
    gate = asyncio.Event()

    async def authenticate(login: str | None, passcode: str | None, host: str | None) -> bool:
        await gate.wait()
        return login == "bob"

    async with running(authenticate=authenticate) as run:
        peer = await run.raw(transport)
        # CONNECT, SUBSCRIBE and SEND in one write: the two last wait for the verdict.
        data = b"".join(
            [
                encode(Frame("CONNECT", [("accept-version", "1.2"), ("login", "bob")])),
                encode(Frame("SUBSCRIBE", [("destination", "/topic/t"), ("id", "0")])),
                encode(Frame("SEND", [("destination", "/topic/t")], b"early")),
            ]
        )
        await peer.send(data)
        gate.set()
        assert (await peer.frame()).command == "CONNECTED"
        message = await peer.frame()
        assert message.command == "MESSAGE" and message.body == b"early"
        await peer.close()


async def test_virtual_hosts_partition_destinations() -> None:
    async with running(virtual_hosts=["/", "other"]) as run:
        a = await run.client("tcp", host="/").connect()
        b = await run.client("tcp", host="other").connect()
        sub_a = await a.subscribe("/topic/news")
        sub_b = await b.subscribe("/topic/news")
        await b.send("/topic/news", "for other", receipt=True)
        assert (await asyncio.wait_for(sub_b.get(), TIMEOUT)).text == "for other"
        await a.send("/topic/news", "for root", receipt=True)
        assert (await asyncio.wait_for(sub_a.get(), TIMEOUT)).text == "for root"
        assert not sub_a._queue and not sub_b._queue
        with pytest.raises(ServerError, match="unknown virtual host"):
            await run.client("tcp", host="nope").connect()
        await a.disconnect()
        await b.disconnect()


# -- mounting ------------------------------------------------------------------------


async def test_mounted_on_a_router_with_one_line() -> None:
    broker = Broker()
    router = Router()
    router.websocket("/stomp", broker.handler, SUBPROTOCOLS)  # the one line
    async with fullduplex.serve(
        router.handler,
        process_request=router.process_request,
        select_subprotocol=router.select_subprotocol,
    ) as server:
        url = f"ws://127.0.0.1:{server.port}/stomp"
        async with Client(url, reconnect=False) as client:
            assert client._link is not None and client._link.ws.subprotocol == "v12.stomp"
            sub = await client.subscribe("/queue/mounted")
            await client.send("/queue/mounted", b"x" * 1_500_000, receipt=True)
            message = await asyncio.wait_for(sub.get(), TIMEOUT)
            assert len(message.body) == 1_500_000
    await broker.close()


async def test_callback_server_listener_factory() -> None:
    broker = Broker()
    async with fullduplex.serve_callbacks(broker.listener, subprotocols=SUBPROTOCOLS) as server:
        async with Client(f"ws://127.0.0.1:{server.port}/", reconnect=False) as client:
            sub = await client.subscribe("/topic/t")
            await client.send("/topic/t", "hi", receipt=True)
            assert (await asyncio.wait_for(sub.get(), TIMEOUT)).text == "hi"
    await broker.close()


# -- WebSocket framing ---------------------------------------------------------------


async def test_websocket_text_binary_batching_and_splitting() -> None:
    async with running() as run:
        sub = await run.raw("ws")
        await sub.connect()
        await sub.send_frame("SUBSCRIBE", [("destination", "/topic/t"), ("id", "s")])
        pub = await run.raw("ws")
        await pub.connect()
        # Several frames in one binary message, then a frame split over three text ones.
        frames = [
            encode(Frame("SEND", [("destination", "/topic/t")], b"caf\xc3\xa9")),
            encode(Frame("SEND", [("destination", "/topic/t")], b"\x00\xff\xfe")),
            encode(Frame("SEND", [("destination", "/topic/t"), ("receipt", "r1")], b"")),
        ]
        # Make sure the SUBSCRIBE is in place first.
        await sub.send_frame("SEND", [("destination", "/topic/t")], b"first")
        first = await sub.frame()
        assert first.body == b"first"
        await pub.send(b"".join(frames[:2]))
        last = frames[2].decode()
        for part in (last[:3], last[3:20], last[20:]):
            await pub.send(part)
        assert (await pub.frame()).get("receipt-id") == "r1"
        bodies = [(await sub.frame()).body for _ in range(3)]
        assert bodies == [b"caf\xc3\xa9", b"\x00\xff\xfe", b""]
        # Valid UTF-8 frames came as text messages, the other one as binary.
        kinds = [type(m) for m in sub.messages]
        assert kinds == [str, str, str, bytes, str]
        await sub.close()
        await pub.close()


# -- topics and queues -----------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_topic_fan_out_with_headers(transport: str) -> None:
    async with running() as run:
        clients = [await run.client(transport).connect() for _ in range(3)]
        subs = [await c.subscribe("/topic/fan") for c in clients]
        await clients[0].send(
            "/topic/fan",
            b"\x00binary\x00",
            headers={"x-user": "a:b\\c\nd", "priority": "9"},
            content_type="application/octet-stream",
            receipt=True,
        )
        for sub in subs:
            message = await asyncio.wait_for(sub.get(), TIMEOUT)
            assert message.body == b"\x00binary\x00"
            assert message.header("x-user") == "a:b\\c\nd"  # escaped and unescaped
            assert message.header("priority") == "9"
            assert message.header("content-type") == "application/octet-stream"
            assert message.header("destination") == "/topic/fan"
            assert message.header("subscription") == sub.id
            assert message.message_id
            assert message.header("receipt") is None and message.header("transaction") is None
        for c in clients:
            await c.disconnect()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_queue_competing_consumers_and_backlog(transport: str) -> None:
    async with running(backlog_limit=3) as run:
        producer = await run.client(transport).connect()
        for i in range(5):
            producer.send("/queue/work", f"m{i}")
        await producer.send("/queue/work", "m5", receipt=True)
        assert run.broker.router.queue_depth("/queue/work") == 3
        assert run.broker.stats.dropped_backlog == 3
        a = await run.client(transport).connect()
        b = await run.client(transport).connect()
        sub_a = await a.subscribe("/queue/work")
        sub_b = await b.subscribe("/queue/work")
        # The backlog (newest three) went to the first consumer.
        got = [(await asyncio.wait_for(sub_a.get(), TIMEOUT)).text for _ in range(3)]
        assert got == ["m3", "m4", "m5"]
        for i in range(4):
            await producer.send("/queue/work", f"n{i}", receipt=True)
        got_a = [(await asyncio.wait_for(sub_a.get(), TIMEOUT)).text for _ in range(2)]
        got_b = [(await asyncio.wait_for(sub_b.get(), TIMEOUT)).text for _ in range(2)]
        assert sorted(got_a + got_b) == ["n0", "n1", "n2", "n3"]
        assert len(got_a) == len(got_b) == 2
        for c in (producer, a, b):
            await c.disconnect()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_ack_modes_nack_and_redelivery(transport: str) -> None:
    async with running() as run:
        producer = await run.client(transport).connect()
        consumer = await run.client(transport).connect()
        individual = await consumer.subscribe("/queue/ind", ack="client-individual")
        for i in range(3):
            await producer.send("/queue/ind", f"i{i}", receipt=True)
        msgs = [await asyncio.wait_for(individual.get(), TIMEOUT) for _ in range(3)]
        assert all(m.ack_id for m in msgs)
        await consumer.ack(msgs[1], receipt=True)
        await consumer.nack(msgs[0], receipt=True)
        again = await asyncio.wait_for(individual.get(), TIMEOUT)
        assert again.text == "i0" and again.redelivered
        await consumer.ack(again, receipt=True)
        assert run.broker.router.unacked(_peer(run.broker, consumer)) == 1  # i2

        cumulative = await consumer.subscribe("/queue/cum", ack="client")
        for i in range(3):
            await producer.send("/queue/cum", f"c{i}", receipt=True)
        msgs = [await asyncio.wait_for(cumulative.get(), TIMEOUT) for _ in range(3)]
        await consumer.ack(msgs[1], receipt=True)  # settles c0 and c1
        assert run.broker.router.unacked(_peer(run.broker, consumer)) == 2  # i2, c2

        # Disconnecting hands unsettled queue messages to another consumer.
        other = await run.client(transport).connect()
        other_ind = await other.subscribe("/queue/ind", ack="auto")
        other_cum = await other.subscribe("/queue/cum", ack="auto")
        await consumer.disconnect()
        m = await asyncio.wait_for(other_ind.get(), TIMEOUT)
        assert (m.text, m.redelivered, m.ack_id) == ("i2", True, None)
        m = await asyncio.wait_for(other_cum.get(), TIMEOUT)
        assert (m.text, m.redelivered) == ("c2", True)
        await other.disconnect()
        await producer.disconnect()


def _peer(broker: Broker, client: Client) -> Any:
    for peer in broker.peers:
        if peer.session.session_id == client.session_id:
            return peer
    raise AssertionError("no such peer")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_receipt_for_every_frame(transport: str) -> None:
    async with running() as run:
        peer = await run.raw(transport)
        await peer.connect()
        frames = [
            ("SUBSCRIBE", [("destination", "/queue/r"), ("id", "s"), ("ack", "client")]),
            ("SEND", [("destination", "/queue/r")]),
            ("BEGIN", [("transaction", "t")]),
            ("SEND", [("destination", "/queue/r"), ("transaction", "t")]),
            ("ABORT", [("transaction", "t")]),
            ("BEGIN", [("transaction", "t2")]),
            ("COMMIT", [("transaction", "t2")]),
        ]
        for i, (command, headers) in enumerate(frames):
            await peer.send_frame(command, [*headers, ("receipt", f"r{i}")])
        seen = []
        message = None
        while len(seen) < len(frames):
            frame = await peer.frame()
            if frame.command == "MESSAGE":
                message = frame
            else:
                assert frame.command == "RECEIPT"
                seen.append(frame.get("receipt-id"))
        assert seen == [f"r{i}" for i in range(len(frames))]
        assert message is not None
        await peer.send_frame("NACK", [("id", message.get("ack") or ""), ("receipt", "n")])
        redelivered = await peer.frame()
        receipt = await peer.frame()
        if redelivered.command == "RECEIPT":
            redelivered, receipt = receipt, redelivered
        assert receipt.get("receipt-id") == "n" and redelivered.get("redelivered") == "true"
        await peer.send_frame("ACK", [("id", redelivered.get("ack") or ""), ("receipt", "a")])
        assert (await peer.frame()).get("receipt-id") == "a"
        await peer.send_frame("UNSUBSCRIBE", [("id", "s"), ("receipt", "u")])
        assert (await peer.frame()).get("receipt-id") == "u"
        await peer.send_frame("DISCONNECT", [("receipt", "bye")])
        assert (await peer.frame()).get("receipt-id") == "bye"
        await peer.closed()
        if transport == "ws":
            await peer.ws.wait_closed()
            assert peer.ws.close_code == 1000


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_transactions_commit_abort_and_acks(transport: str) -> None:
    async with running() as run:
        client = await run.client(transport).connect()
        topic = await client.subscribe("/topic/tx")
        queue = await client.subscribe("/queue/tx", ack="client-individual")
        tx = await client.begin()
        tx.send("/topic/tx", "one")
        tx.send("/topic/tx", "two")
        await client.send("/topic/tx", "outside", receipt=True)
        assert (await asyncio.wait_for(topic.get(), TIMEOUT)).text == "outside"
        await tx.commit()
        assert [(await asyncio.wait_for(topic.get(), TIMEOUT)).text for _ in range(2)] == [
            "one",
            "two",
        ]
        tx = await client.begin()
        tx.send("/topic/tx", "aborted")
        await tx.abort()
        await client.send("/queue/tx", "q", receipt=True)
        m = await asyncio.wait_for(queue.get(), TIMEOUT)
        # An ACK in an aborted transaction leaves the message unacknowledged.
        with contextlib.suppress(RuntimeError):
            async with client.transaction() as tx:
                tx.ack(m)
                raise RuntimeError("roll back")
        assert run.broker.router.unacked(_peer(run.broker, client)) == 1
        async with client.transaction() as tx:
            tx.ack(m)
        assert run.broker.router.unacked(_peer(run.broker, client)) == 0
        assert not topic._queue  # "aborted" never came
        await client.disconnect()


# -- errors --------------------------------------------------------------------------


MALFORMED = [
    (b"FOO\n\n\x00", "unknown command"),
    (b"SEND\n\nbody\x00", "missing destination header"),
    (b"SEND\ndestination:/topic/a\nx:bad\\tescape\n\n\x00", "invalid header escape"),
    (b"SEND\ndestination:/nowhere/a\n\n\x00", "invalid destination"),
    (b"ACK\nid:nope\n\n\x00", "unknown ack id"),
    (b"SEND\ndestination:/topic/a\ncontent-length:x\n\n\x00", None),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("data", "message"), MALFORMED)
async def test_error_on_malformed_frames_leaves_others_alone(
    transport: str, data: bytes, message: str | None
) -> None:
    async with running() as run:
        bystander = await run.client(transport).connect()
        sub = await bystander.subscribe("/topic/a")
        peer = await run.raw(transport)
        await peer.connect()
        await peer.send(data.replace(b"\n\n", b"\nreceipt:bad\n\n", 1))
        error = await peer.frame()
        assert error.command == "ERROR"
        if message is not None:
            assert error.get("message") == message
        assert error.body  # an explanation
        assert error.get("receipt-id") in ("bad", None)
        await peer.closed()
        await bystander.send("/topic/a", "still here", receipt=True)
        assert (await asyncio.wait_for(sub.get(), TIMEOUT)).text == "still here"
        await bystander.disconnect()


# -- heart-beats ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_silent_client_is_disconnected(transport: str) -> None:
    async with running(heartbeat=(0, 50), heartbeat_slack=0.05) as run:
        peer = await run.raw(transport)
        connected = await peer.connect(("heart-beat", "50,0"))
        assert connected.get("heart-beat") == "0,50"
        loop = asyncio.get_running_loop()
        start = loop.time()
        await peer.closed(timeout=3)
        elapsed = loop.time() - start
        assert 0.1 <= elapsed < 2
        if transport == "ws":
            await peer.ws.wait_closed()
            assert peer.ws.close_code == 1011
        assert not run.broker.peers


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_broker_sends_heartbeats_and_any_traffic_counts(transport: str) -> None:
    async with running(heartbeat=(40, 200), heartbeat_slack=0.2) as run:
        peer = await run.raw(transport)
        # The broker beats every 40 ms and wants traffic every 200 ms (dead after 0.5 s).
        await peer.connect(("heart-beat", "200,40"))
        await peer.wait_heartbeats(3)
        # Keep talking with frames only (no EOLs): the broker keeps us.
        for i in range(8):
            await peer.send_frame("SEND", [("destination", "/topic/hb"), ("receipt", f"r{i}")])
            assert (await peer.frame()).get("receipt-id") == f"r{i}"
            await peer.wait_heartbeats(peer.heartbeats + 1)
        assert len(run.broker.peers) == 1
        await peer.close()


# -- slow subscribers ----------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_slow_subscriber_misses_topic_messages_others_do_not(transport: str) -> None:
    async with running(write_limit=32 * 1024) as run:
        fast = await run.client(transport).connect()
        fast_sub = await fast.subscribe("/topic/flood")
        slow = await run.raw(transport)
        await slow.connect()
        await slow.send_frame(
            "SUBSCRIBE", [("destination", "/topic/flood"), ("id", "s"), ("receipt", "ok")]
        )
        assert (await slow.frame()).command == "RECEIPT"
        if slow.ws is not None:
            slow.ws.protocol.pause_reading()
        else:
            slow.writer.transport.pause_reading()
        slow_peer = next(p for p in run.broker.peers if p.session.session_id != fast.session_id)
        # Fresh random bodies: permessage-deflate would shrink repeated ones to nothing.
        producer = await run.client(transport).connect()
        sent = 0
        while not slow_peer.congested:
            await producer.send("/topic/flood", os.urandom(16384), receipt=True)
            sent += 1
            assert sent < 2000, "the slow subscriber never became congested"
        for _ in range(20):
            await producer.send("/topic/flood", os.urandom(16384), receipt=True)
        sent += 20
        for _ in range(sent):
            await asyncio.wait_for(fast_sub.get(), TIMEOUT)
        assert run.broker.stats.dropped_slow >= 20
        assert run.broker.router.dropped(slow_peer) >= 20
        # Reading again drains the buffer and delivery resumes.
        if slow.ws is not None:
            slow.ws.protocol.resume_reading()
        else:
            slow.writer.transport.resume_reading()
        received = 0
        while True:
            frame = await slow.frame()
            received += 1
            if frame.body == b"after":
                break
            if not slow_peer.congested and received >= 1:
                await producer.send("/topic/flood", "after")
        assert received < sent
        for c in (fast, producer):
            await c.disconnect()
        await slow.abort()


# -- backplane hook ------------------------------------------------------------------


async def test_publish_hook_and_receive_remote() -> None:
    published: list[tuple[str, str, list[tuple[str, str]], bytes]] = []
    broker = Broker(publish=lambda *args: published.append(args))
    assert Broker().router._publish_hook is None
    async with running(broker) as run:
        client = await run.client("tcp").connect()
        sub = await client.subscribe("/topic/x")
        await client.send("/topic/x", b"local", headers={"k": "v"}, receipt=True)
        await client.send("/queue/q", b"queued", receipt=True)
        assert published == [("/", "/topic/x", [("k", "v")], b"local")]
        broker.receive_remote("/", "/topic/x", [("k", "remote")], b"from afar")
        bodies = [(await asyncio.wait_for(sub.get(), TIMEOUT)).body for _ in range(2)]
        assert bodies == [b"local", b"from afar"]
        assert len(published) == 1  # remote messages are not published again
        await client.disconnect()


# -- sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_one_mebibyte_bodies(transport: str) -> None:
    async with running() as run:
        client = await run.client(transport).connect()
        sub = await client.subscribe("/queue/big")
        body = bytes(range(256)) * 4096
        await client.send("/queue/big", body, receipt=True)
        assert (await asyncio.wait_for(sub.get(), TIMEOUT)).body == body
        too_big = await run.raw(transport)
        await too_big.connect()
        # Refused from the header, before the body arrives.
        await too_big.send(b"SEND\ndestination:/queue/big\ncontent-length:6000000\n\n" + body[:9])
        error = await too_big.frame()
        assert error.command == "ERROR"
        assert error.get("message") == "body too large"
        await too_big.closed()
        await client.disconnect()


async def test_broker_close_closes_connections() -> None:
    run_ctx = running()
    run = await run_ctx.__aenter__()
    peer = await run.raw("ws")
    await peer.connect()
    tcp = await run.raw("tcp")
    await tcp.connect()
    await run_ctx.__aexit__(None, None, None)
    await peer.closed()
    await tcp.closed()
    assert peer.ws.close_code == 1001
    assert peer.ws.state is WSState.CLOSED
