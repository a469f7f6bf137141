"""The NATS backplane against a real nats-server: the contract suite, and outages."""

from __future__ import annotations

import pytest

from fullduplex.pubsub import Backplane, BackplaneError, create_backplane

from .contract import BackplaneContract, Inbox, wait_healthy
from .servers import NatsServer

nats = pytest.importorskip("nats", reason="nats-py is not installed (the [nats] extra)")

from fullduplex.pubsub.nats import NatsBackplane, subject_token  # noqa: E402


@pytest.fixture(scope="module")
def server() -> NatsServer:
    with NatsServer() as bus:
        yield bus


class TestNatsBackplane(BackplaneContract):
    """Nodes of one cluster share one nats-server (with JetStream)."""

    @pytest.fixture(autouse=True)
    def _server(self, server: NatsServer) -> None:
        self.server = server

    async def make_node(self) -> Backplane:
        node = NatsBackplane(self.server.url, prefix="p" + self.prefix.strip(":"))
        await node.start()
        return node


def test_channels_map_to_single_subject_tokens() -> None:
    assert subject_token("room:lobby") == "room:lobby"
    assert subject_token("room:a.b") == "room:a%2Eb"
    assert subject_token("stomp:/:/topic/*>") == "stomp:/:/topic/%2A%3E"
    assert subject_token("room:é x") == "room:%C3%A9%20x"
    assert subject_token("") == "%"


def test_create_backplane_parses_nats_urls() -> None:
    node = create_backplane("nats://u:pw@127.0.0.1:4333?prefix=demo")
    assert isinstance(node, NatsBackplane)
    assert node.prefix == "demo"
    assert node.status()["url"] == "nats://u:***@127.0.0.1:4333?prefix=demo"
    with pytest.raises(ValueError, match="prefix"):
        create_backplane("nats://127.0.0.1:4333?prefix=a.b")


async def test_without_jetstream_the_store_is_per_node() -> None:
    with NatsServer(jetstream=False) as bus:
        a, b = NatsBackplane(bus.url), NatsBackplane(bus.url)
        await a.start()
        await b.start()
        try:
            assert a.status()["store"] == "memory"
            assert await a.room_store().add_member("r", "ada", "Ada", "a")
            assert await b.room_store().members("r") == []  # the documented limit
            inbox = Inbox()
            await b.subscribe("c", inbox)
            await a.publish("c", b"fan-out still works")
            assert await inbox.wait_for(1) == [b"fan-out still works"]
        finally:
            await a.close()
            await b.close()


async def test_outage_refuses_then_recovers() -> None:
    with NatsServer() as bus:
        a, b = NatsBackplane(bus.url), NatsBackplane(bus.url)
        await a.start()
        await b.start()
        try:
            on_b = Inbox()
            await b.subscribe("room:x", on_b)
            assert await a.room_store().add_member("x", "ada", "Ada", "a")
            await a.publish("room:x", b"before")
            await on_b.wait_for(1)

            bus.kill()
            await wait_healthy(False, a, b)
            assert b.status()["state"] == "reconnecting"
            with pytest.raises(BackplaneError, match="unavailable"):
                await a.publish("room:x", b"lost")

            bus.start()  # same port, same JetStream directory
            await wait_healthy(True, a, b)
            assert await b.room_store().members("x") == ["Ada"]
            await a.publish("room:x", b"after")
            assert await on_b.wait_for(2) == [b"before", b"after"]
        finally:
            await a.close()
            await b.close()
