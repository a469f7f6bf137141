"""The Redis backplane against a real redis-server: the contract suite, and outages."""

from __future__ import annotations

import pytest

from fullduplex.pubsub import Backplane, BackplaneError, create_backplane

from .contract import BackplaneContract, Inbox, wait_healthy
from .servers import RedisServer

redis = pytest.importorskip("redis", reason="redis-py is not installed (the [redis] extra)")

from fullduplex.pubsub.redis import RedisBackplane  # noqa: E402


@pytest.fixture(scope="module")
def server() -> RedisServer:
    with RedisServer() as bus:
        yield bus


class TestRedisBackplane(BackplaneContract):
    """Nodes of one cluster share one redis-server."""

    @pytest.fixture(autouse=True)
    def _server(self, server: RedisServer) -> None:
        self.server = server

    async def make_node(self) -> Backplane:
        node = RedisBackplane(self.server.url, prefix=self.prefix)
        await node.start()
        return node


def test_create_backplane_parses_redis_urls() -> None:
    node = create_backplane("redis://:secret@127.0.0.1:6390/3?prefix=x:")
    assert isinstance(node, RedisBackplane)
    assert node.prefix == "x:"
    assert node.status()["url"] == "redis://***@127.0.0.1:6390/3?prefix=x:"
    assert node.status()["healthy"] is False and node.status()["state"] == "new"


async def test_an_unreachable_server_is_reported_at_start() -> None:
    with RedisServer() as bus:
        url = bus.url
    node = RedisBackplane(url)
    with pytest.raises(BackplaneError, match="cannot reach"):
        await node.start()
    await node.close()


async def test_outage_refuses_then_recovers_and_restores_members() -> None:
    with RedisServer() as bus:
        a = RedisBackplane(bus.url, ping_interval=0)
        b = RedisBackplane(bus.url, ping_interval=0)
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
            assert a.status()["state"] == "reconnecting" and a.status()["outages"] == 1
            with pytest.raises(BackplaneError, match="unavailable"):
                await a.publish("room:x", b"lost")
            with pytest.raises(BackplaneError):
                await a.room_store().members("x")
            assert a.status()["refused"] == 2  # the publication and the store read

            bus.start()  # empty: no persistence
            await wait_healthy(True, a, b)
            assert a.status()["reconnects"] == 1 and a.status()["down_for"] is None
            # b resubscribed; a restored its member in the fresh server.
            assert await b.room_store().members("x") == ["Ada"]
            await a.publish("room:x", b"after")
            assert await on_b.wait_for(2) == [b"before", b"after"]
        finally:
            await a.close()
            await b.close()


async def test_the_liveness_ping_works_with_and_without_subscriptions() -> None:
    with RedisServer() as bus:
        node = RedisBackplane(bus.url, ping_interval=0)
        await node.start()
        try:
            sub = node._sub
            await node._command(sub, node._pongs, "PING")  # subscribed to nothing
            await node.subscribe("c", Inbox())
            await node._command(sub, node._pongs, "PING")  # in subscribe mode
            assert node.healthy
        finally:
            await node.close()
