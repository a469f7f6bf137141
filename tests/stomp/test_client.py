"""Our STOMP client against our broker over WebSocket and TCP, and against fakes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fullduplex.errors import InvalidState
from fullduplex.stomp import (
    Broker,
    Client,
    ConnectionLost,
    Frame,
    FrameParser,
    ReceivedMessage,
    ServerError,
    encode,
)

TIMEOUT = 5.0
TRANSPORTS = ["ws", "tcp"]


@contextlib.asynccontextmanager
async def broker_at(ws_port: int = 0, tcp_port: int = 0, **options: Any) -> AsyncIterator[Any]:
    broker = Broker(**options)
    ws = await broker.serve_websocket("127.0.0.1", ws_port)
    tcp = await broker.serve_tcp("127.0.0.1", tcp_port)
    broker.urls = {  # type: ignore[attr-defined]
        "ws": f"ws://127.0.0.1:{ws.port}/stomp",
        "tcp": f"tcp://127.0.0.1:{tcp.sockets[0].getsockname()[1]}",
    }
    try:
        yield broker
    finally:
        await broker.close()


def url(broker: Any, transport: str) -> str:
    return str(broker.urls[transport])


# -- connecting ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connect_with_credentials_host_and_heartbeats(transport: str) -> None:
    seen: list[tuple[Any, ...]] = []

    async def authenticate(login: Any, passcode: Any, host: Any) -> bool:
        seen.append((login, passcode, host))
        return passcode == "pw"

    async with broker_at(authenticate=authenticate, heartbeat=(1000, 2000)) as broker:
        client = Client(
            url(broker, transport),
            login="me",
            passcode="pw",
            host="vh",
            heartbeat=(3000, 500),
            reconnect=False,
        )
        assert not client.connected
        await client.connect()
        assert client.connected and client.version == "1.2" and client.session_id
        assert client.connected_frame is not None
        assert client.connected_frame.heartbeat == (1000, 2000)
        session = client._session
        assert session is not None
        assert (session.send_interval, session.receive_interval) == (3.0, 1.0)
        assert seen == [("me", "pw", "vh")]
        await client.disconnect()
        assert not client.connected


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refused_connect_raises_and_is_not_retried(transport: str) -> None:
    attempts = 0

    def authenticate(login: Any, passcode: Any, host: Any) -> bool:
        nonlocal attempts
        attempts += 1
        return False

    async with broker_at(authenticate=authenticate) as broker:
        client = Client(url(broker, transport), login="x", passcode="y")
        with pytest.raises(ServerError, match="access refused") as info:
            await client.connect()
        assert info.value.body
        assert attempts == 1
        assert client._reconnector is None


async def test_bad_urls_and_unreachable_brokers() -> None:
    with pytest.raises(ValueError):
        Client("http://127.0.0.1/")
    async with broker_at() as broker:
        port = int(url(broker, "tcp").rsplit(":", 1)[1])
    with pytest.raises(OSError):
        await Client(f"stomp://127.0.0.1:{port}", reconnect=False).connect()
    client = Client(f"stomp://127.0.0.1:{port}")
    with pytest.raises(InvalidState):
        client.send("/topic/x", "not connected")


# -- messaging -----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_callbacks_sync_and_async_and_iteration(transport: str) -> None:
    async with broker_at() as broker:
        async with Client(url(broker, transport), reconnect=False) as client:
            got: list[str] = []
            done = asyncio.Event()

            def on_message(message: ReceivedMessage) -> None:
                got.append("sync:" + message.text)

            async def on_message_async(message: ReceivedMessage) -> None:
                await asyncio.sleep(0)
                got.append("async:" + message.text)
                done.set()

            await client.subscribe("/topic/cb", on_message)
            await client.subscribe("/topic/cb", on_message_async)
            iterated = await client.subscribe("/topic/cb")
            await client.send("/topic/cb", "hello", receipt=True)
            await asyncio.wait_for(done.wait(), TIMEOUT)
            assert sorted(got) == ["async:hello", "sync:hello"]
            async for message in iterated:
                assert message.text == "hello"
                assert message.header("content-type") == "text/plain;charset=utf-8"
                await iterated.unsubscribe()
            # Iteration ended with the unsubscription; nothing more is delivered to it.
            await client.send("/topic/cb", "again", receipt=True)
            assert not iterated._queue


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_send_options_and_receipt_errors(transport: str) -> None:
    errors: list[ServerError] = []
    async with broker_at() as broker:
        client = Client(url(broker, transport), reconnect=False, on_error=errors.append)
        await client.connect()
        sub = await client.subscribe("/queue/opts", headers={"x-sub": "1"}, id="mine")
        assert sub.id == "mine"
        with pytest.raises(ValueError):
            await client.subscribe("/queue/opts", id="mine")
        await client.send(
            "/queue/opts",
            b"\x01\x02",
            headers=[("a", "1"), ("b", "two")],
            content_type="application/x-test",
            receipt=True,
        )
        message = await asyncio.wait_for(sub.get(), TIMEOUT)
        assert message.body == b"\x01\x02"
        assert (message.header("a"), message.header("b")) == ("1", "two")
        assert message.header("content-type") == "application/x-test"
        # The broker refuses a destination: the receipt future fails with the ERROR.
        with pytest.raises(ServerError, match="invalid destination"):
            await client.send("/elsewhere", "x", receipt=True)
        assert errors and errors[0].message == "invalid destination"
        assert client.last_error is errors[0]
        # The connection is gone (no reconnection asked): the subscription ends.
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(sub.get(), TIMEOUT)
        assert not client.connected


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_ack_nack_and_transactions(transport: str) -> None:
    async with broker_at() as broker:
        async with Client(url(broker, transport), reconnect=False) as client:
            sub = await client.subscribe("/queue/acks", ack="client-individual")
            await client.send("/queue/acks", "a", receipt=True)
            first = await asyncio.wait_for(sub.get(), TIMEOUT)
            await client.nack(first, receipt=True)
            again = await asyncio.wait_for(sub.get(), TIMEOUT)
            assert again.redelivered and again.text == "a"
            await client.ack(again, receipt=True)

            topic = await client.subscribe("/topic/tx")
            async with client.transaction() as tx:
                tx.send("/topic/tx", "1")
                tx.send("/topic/tx", "2")
                assert not topic._queue
            texts = [(await asyncio.wait_for(topic.get(), TIMEOUT)).text for _ in range(2)]
            assert texts == ["1", "2"]
            with pytest.raises(KeyError):
                async with client.transaction() as tx:
                    tx.send("/topic/tx", "never")
                    raise KeyError("abort")
            tx = await client.begin("named")
            assert tx.id == "named"
            tx.send("/topic/tx", "3")
            await tx.commit()
            assert (await asyncio.wait_for(topic.get(), TIMEOUT)).text == "3"
            assert not topic._queue


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_disconnect_waits_for_everything_sent_before(transport: str) -> None:
    async with broker_at() as broker:
        receiver = await Client(url(broker, transport), reconnect=False).connect()
        sub = await receiver.subscribe("/queue/ordered")
        sender = await Client(url(broker, transport), reconnect=False).connect()
        for i in range(200):
            sender.send("/queue/ordered", str(i))
        await sender.disconnect()
        assert broker.stats.published == 200
        texts = [(await asyncio.wait_for(sub.get(), TIMEOUT)).text for _ in range(200)]
        assert texts == [str(i) for i in range(200)]
        await receiver.disconnect()
        await receiver.disconnect()  # harmless twice


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_reconnects_and_restores_subscriptions_after_broker_restart(transport: str) -> None:
    connected = asyncio.Event()
    async with broker_at() as broker:
        target = url(broker, transport)
        ws_port = int(broker.urls["ws"].split(":")[2].split("/")[0])
        tcp_port = int(broker.urls["tcp"].rsplit(":", 1)[1])
        client = Client(
            target,
            reconnect_delay=0.05,
            on_connect=lambda c: connected.set(),
        )
        await client.connect()
        assert client.connections == 1
        topic = await client.subscribe("/topic/restart")
        queue = await client.subscribe("/queue/restart", ack="client-individual")
        await client.send("/queue/restart", "before", receipt=True)
        before = await asyncio.wait_for(queue.get(), TIMEOUT)
        connected.clear()
    # The broker is gone; a new one comes up on the same ports.
    async with broker_at(ws_port, tcp_port):
        await asyncio.wait_for(connected.wait(), TIMEOUT)
        assert client.connections == 2 and client.connected
        await client.wait_connected(TIMEOUT)
        await client.ack(before)  # from the old connection: dropped, not an error
        await client.send("/topic/restart", "after", receipt=True)
        await client.send("/queue/restart", "queued", receipt=True)
        assert (await asyncio.wait_for(topic.get(), TIMEOUT)).text == "after"
        message = await asyncio.wait_for(queue.get(), TIMEOUT)
        assert message.text == "queued" and message.ack_id
        await client.ack(message, receipt=True)
        await client.disconnect()


async def test_gives_up_after_reconnect_attempts() -> None:
    async with broker_at() as broker:
        client = Client(url(broker, "tcp"), reconnect_delay=0.01, reconnect_attempts=2)
        await client.connect()
        sub = await client.subscribe("/topic/x")
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(sub.get(), TIMEOUT)
    assert not client.connected


# -- heart-beats ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_client_heartbeats_keep_an_idle_connection(transport: str) -> None:
    async with broker_at(heartbeat=(0, 40), heartbeat_slack=0.05) as broker:
        client = Client(url(broker, transport), heartbeat=(40, 0), reconnect=False)
        await client.connect()
        (peer,) = broker.peers
        beats = 0
        enough = asyncio.Event()
        receive = peer.receive

        def counting(data: bytes) -> None:
            nonlocal beats
            beats += data.count(b"\n")
            if beats >= 10:
                enough.set()
            receive(data)

        peer.receive = counting  # type: ignore[method-assign]
        # Ten beats take about 0.4 s, more than twice the 0.11 s the broker tolerates.
        await asyncio.wait_for(enough.wait(), TIMEOUT)
        assert client.connected and broker.peers == {peer}
        await client.disconnect()


async def test_client_drops_a_silent_server() -> None:
    """A fake server that answers CONNECTED with heart-beats, then never beats."""
    connected = asyncio.Event()

    async def fake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = FrameParser()
        while True:
            data = await reader.read(4096)
            if not data:
                break
            parser.feed_data(data)
            frame = parser.next_frame()
            if isinstance(frame, Frame) and frame.command == "CONNECT":
                connected.set()
                reply = Frame("CONNECTED", [("version", "1.2"), ("heart-beat", "50,0")])
                writer.write(encode(reply))
        writer.close()

    server = await asyncio.start_server(fake, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        client = Client(
            f"tcp://127.0.0.1:{port}", heartbeat=(0, 50), heartbeat_slack=0.05, reconnect=False
        )
        await client.connect()
        loop = asyncio.get_running_loop()
        start = loop.time()
        lost = asyncio.Event()
        original = client._closed

        def closed(event: Any) -> None:
            lost.set()
            original(event)

        client._closed = closed  # type: ignore[method-assign]
        await asyncio.wait_for(lost.wait(), TIMEOUT)
        assert 0.1 <= loop.time() - start < 2
        assert not client.connected
        await client.disconnect()
