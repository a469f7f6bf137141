"""Our STOMP client against RabbitMQ's STOMP (TCP 61613) and Web-STOMP (``/ws`` on
15674) plugins, guest/guest, virtual host ``/``.

Skipped when RabbitMQ or a plugin is not reachable; ``./scripts/test`` enables the
plugins when RabbitMQ is installed. Queues outlive a run in RabbitMQ, so each check
looks for a unique marker and ignores anything an earlier run left behind.
"""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest

from fullduplex.stomp import Client, ConnectionLost, ReceivedMessage, Subscription

pytestmark = pytest.mark.interop

TIMEOUT = 5.0
URLS = {
    "tcp": ("tcp://127.0.0.1:61613", 61613),
    "ws": ("ws://127.0.0.1:15674/ws", 15674),
}


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def client_for(transport: str) -> Client:
    url, port = URLS[transport]
    if not _reachable(port):
        plugin = "rabbitmq_stomp" if transport == "tcp" else "rabbitmq_web_stomp"
        pytest.skip(
            f"RabbitMQ {transport} STOMP is not reachable on 127.0.0.1:{port} "
            f"(rabbitmq-plugins enable {plugin})"
        )
    return Client(url, login="guest", passcode="guest", host="/", reconnect=False)


async def until(sub: Subscription, body: bytes) -> ReceivedMessage:
    """The message whose body is ``body``, skipping leftovers of earlier runs."""
    while True:
        message = await asyncio.wait_for(sub.get(), TIMEOUT)
        if message.body == body:
            return message


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_connect_and_topic_round_trip(transport: str) -> None:
    async with client_for(transport) as client:
        assert client.version == "1.2"
        assert client.connected_frame is not None
        assert (client.connected_frame.server or "").startswith("RabbitMQ")
        sub = await client.subscribe("/topic/x")
        marker = uuid.uuid4().hex.encode()
        await client.send("/topic/x", marker, headers={"x-custom": "a:b"}, receipt=True)
        message = await until(sub, marker)
        assert message.header("x-custom") == "a:b"
        assert message.destination == "/topic/x"


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_queue_round_trip_with_ack_nack_and_receipts(transport: str) -> None:
    async with client_for(transport) as client:
        sub = await client.subscribe("/queue/x", ack="client-individual")
        marker = uuid.uuid4().hex.encode()
        await client.send("/queue/x", marker, content_type="text/plain", receipt=True)
        first = await until(sub, marker)
        assert first.ack_id
        await client.nack(first, receipt=True)  # RabbitMQ requeues on NACK
        again = await until(sub, marker)
        assert again.redelivered
        await client.ack(again, receipt=True)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_transaction_and_disconnect(transport: str) -> None:
    client = client_for(transport)
    await client.connect()
    sub = await client.subscribe("/topic/x")
    marker = uuid.uuid4().hex.encode()
    async with client.transaction() as tx:
        tx.send("/topic/x", marker)
    await until(sub, marker)
    # RabbitMQ 3.10 closes without a RECEIPT for DISCONNECT: disconnect() ends anyway.
    await client.disconnect(timeout=TIMEOUT)
    assert not client.connected
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(sub.get(), TIMEOUT)
