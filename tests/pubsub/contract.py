"""The contract every backplane keeps, as one suite to run against each implementation.

Subclass :class:`BackplaneContract` in ``test_<impl>.py`` and define
:meth:`~BackplaneContract.make_node`: a new backplane *node* connected to the same
cluster as the other nodes of the test (same hub, same Redis or NATS server).
Channels are prefixed per test, so a shared server needs no cleaning between tests.

"Nothing arrives" is checked without sleeping: a *witness* subscription on the
same channel receives a later message; since messages from one publisher on one
channel keep their order, anything due before it would have arrived by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fullduplex.pubsub import Backplane, BackplaneClosed, RoomStore

TIMEOUT = 5.0


class Inbox:
    """A subscription callback recording ``(channel, data)`` and waking waiters."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()

    def __call__(self, channel: str, data: bytes) -> None:
        self.received.append((channel, data))
        self._changed.set()

    @property
    def data(self) -> list[bytes]:
        return [data for _, data in self.received]

    async def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[bytes]:
        """Wait until at least ``count`` messages arrived; return all of them."""

        async def wait() -> None:
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)
        return self.data


async def wait_healthy(healthy: bool, *nodes: Any, timeout: float = 10.0) -> None:
    """Wait until every node's health is ``healthy`` (its own event, with a deadline)."""
    for node in nodes:
        await asyncio.wait_for(node.wait_healthy(healthy), timeout)


class BackplaneContract:
    """Tests every :class:`~fullduplex.pubsub.Backplane` must pass."""

    def setup_method(self) -> None:
        self.prefix = f"t{secrets.token_hex(4)}:"

    async def make_node(self) -> Backplane:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def channel(self, name: str) -> str:
        return self.prefix + name

    @contextlib.asynccontextmanager
    async def nodes(self, count: int = 1) -> AsyncIterator[list[Backplane]]:
        made = [await self.make_node() for _ in range(count)]
        try:
            yield made
        finally:
            for node in made:
                await node.close()

    # ---------------------------------------------------------- pub/sub

    async def test_publish_reaches_a_subscriber(self) -> None:
        async with self.nodes() as (node,):
            inbox = Inbox()
            await node.subscribe(self.channel("a"), inbox)
            await node.publish(self.channel("a"), b"hello")
            assert await inbox.wait_for(1) == [b"hello"]
            assert inbox.received[0][0] == self.channel("a")

    async def test_the_publisher_receives_its_own_message_once(self) -> None:
        async with self.nodes() as (node,):
            inbox = Inbox()
            await node.subscribe(self.channel("a"), inbox)
            await node.publish(self.channel("a"), b"one")
            await node.publish(self.channel("a"), b"two")
            assert await inbox.wait_for(2) == [b"one", b"two"]

    async def test_messages_cross_nodes_once_per_subscription(self) -> None:
        async with self.nodes(2) as (a, b):
            on_a, on_b, on_b2 = Inbox(), Inbox(), Inbox()
            await a.subscribe(self.channel("room"), on_a)
            await b.subscribe(self.channel("room"), on_b)
            await b.subscribe(self.channel("room"), on_b2)
            await a.publish(self.channel("room"), b"from a")
            await b.publish(self.channel("room"), b"from b")
            for inbox in (on_a, on_b, on_b2):
                assert await inbox.wait_for(2) == [b"from a", b"from b"]

    async def test_a_node_without_subscription_receives_nothing(self) -> None:
        async with self.nodes(2) as (a, b):
            other, witness = Inbox(), Inbox()
            await a.subscribe(self.channel("x"), other)
            await b.subscribe(self.channel("room"), witness)
            await a.publish(self.channel("room"), b"m")
            await witness.wait_for(1)
            await a.publish(self.channel("x"), b"marker")
            assert await other.wait_for(1) == [b"marker"]

    async def test_channels_are_separate(self) -> None:
        async with self.nodes() as (node,):
            one, two = Inbox(), Inbox()
            await node.subscribe(self.channel("one"), one)
            await node.subscribe(self.channel("two"), two)
            await node.publish(self.channel("one"), b"1")
            await node.publish(self.channel("two"), b"2")
            await node.publish(self.channel("one"), b"end")
            await node.publish(self.channel("two"), b"end")
            assert await one.wait_for(2) == [b"1", b"end"]
            assert await two.wait_for(2) == [b"2", b"end"]

    async def test_order_is_kept_per_publisher_and_channel(self) -> None:
        async with self.nodes(2) as (a, b):
            inbox = Inbox()
            await b.subscribe(self.channel("seq"), inbox)
            sent = [str(i).encode() for i in range(200)]
            for item in sent:
                await a.publish(self.channel("seq"), item)
            assert await inbox.wait_for(len(sent)) == sent

    @pytest.mark.parametrize(
        "payload", [b"", bytes(range(256)), "张三 👋".encode(), b"x" * 100_000]
    )
    async def test_data_is_opaque_bytes(self, payload: bytes) -> None:
        async with self.nodes(2) as (a, b):
            inbox = Inbox()
            await b.subscribe(self.channel("bin"), inbox)
            await a.publish(self.channel("bin"), payload)
            [got] = await inbox.wait_for(1)
            assert got == payload and type(got) is bytes

    async def test_unsubscribe_stops_delivery(self) -> None:
        async with self.nodes(2) as (a, b):
            gone, witness = Inbox(), Inbox()
            sub = await b.subscribe(self.channel("c"), gone)
            await b.subscribe(self.channel("c"), witness)
            await a.publish(self.channel("c"), b"before")
            await gone.wait_for(1)
            assert sub.active
            await sub.unsubscribe()
            assert not sub.active
            await sub.unsubscribe()  # idempotent
            await a.publish(self.channel("c"), b"after")
            assert await witness.wait_for(2) == [b"before", b"after"]
            assert gone.data == [b"before"]

    async def test_a_failing_callback_does_not_affect_others(self) -> None:
        async with self.nodes() as (node,):
            calls = 0

            def broken(channel: str, data: bytes) -> None:
                nonlocal calls
                calls += 1
                raise RuntimeError("boom")

            inbox = Inbox()
            await node.subscribe(self.channel("c"), broken)
            await node.subscribe(self.channel("c"), inbox)
            await node.publish(self.channel("c"), b"1")
            await node.publish(self.channel("c"), b"2")
            assert await inbox.wait_for(2) == [b"1", b"2"]
            assert calls == 2

    async def test_callbacks_may_unsubscribe_while_delivering(self) -> None:
        async with self.nodes() as (node,):
            inbox = Inbox()
            subs = []

            def once(channel: str, data: bytes) -> None:
                inbox(channel, data)
                for sub in subs:
                    asyncio.get_running_loop().create_task(sub.unsubscribe())

            subs.append(await node.subscribe(self.channel("c"), once))
            witness = Inbox()
            await node.subscribe(self.channel("c"), witness)
            await node.publish(self.channel("c"), b"1")
            await witness.wait_for(1)
            await subs[0].unsubscribe()
            await node.publish(self.channel("c"), b"2")
            await witness.wait_for(2)
            assert inbox.data == [b"1"]

    async def test_close(self) -> None:
        node = await self.make_node()
        inbox = Inbox()
        sub = await node.subscribe(self.channel("c"), inbox)
        assert node.healthy
        status = node.status()
        assert status["healthy"] is True and isinstance(status["kind"], str)
        await node.close()
        await node.close()  # idempotent
        assert not node.healthy
        assert node.status()["healthy"] is False
        assert not sub.active
        with pytest.raises(BackplaneClosed):
            await node.publish(self.channel("c"), b"x")
        with pytest.raises(BackplaneClosed):
            await node.subscribe(self.channel("c"), inbox)

    async def test_closing_one_node_leaves_the_others_working(self) -> None:
        async with self.nodes(2) as (a, b):
            on_a, on_b = Inbox(), Inbox()
            await a.subscribe(self.channel("c"), on_a)
            await b.subscribe(self.channel("c"), on_b)
            await a.close()
            await b.publish(self.channel("c"), b"still here")
            assert await on_b.wait_for(1) == [b"still here"]
            assert on_a.data == []

    # -------------------------------------------------------- room store

    def room(self, name: str) -> str:
        return self.prefix + name

    @staticmethod
    def store_of(node: Backplane) -> RoomStore:
        return node.room_store()

    async def test_store_nicks_are_unique_across_nodes(self) -> None:
        async with self.nodes(2) as (a, b):
            sa, sb = self.store_of(a), self.store_of(b)
            room = self.room("lobby")
            assert await sa.add_member(room, "ada", "Ada", "node-a")
            assert not await sb.add_member(room, "ada", "ADA", "node-b")
            assert await sb.add_member(room, "bob", "Bob", "node-b")
            assert await sa.members(room) == ["Ada", "Bob"]
            assert await sb.members(room) == ["Ada", "Bob"]
            # Another room is another namespace.
            assert await sb.add_member(self.room("other"), "ada", "ada", "node-b")

    async def test_store_remove_member(self) -> None:
        async with self.nodes() as (node,):
            store = self.store_of(node)
            room = self.room("r")
            await store.add_member(room, "a", "a", "n")
            await store.add_member(room, "b", "b", "n")
            await store.remove_member(room, "a")
            await store.remove_member(room, "a")  # harmless
            await store.remove_member(self.room("never"), "a")
            assert await store.members(room) == ["b"]
            assert await store.add_member(room, "a", "A", "n")  # free again
            assert await store.members(room) == ["b", "A"]
            assert await store.members(self.room("empty")) == []

    async def test_store_history_is_bounded_and_oldest_first(self) -> None:
        async with self.nodes(2) as (a, b):
            room = self.room("h")
            for i in range(8):
                await self.store_of(a if i % 2 else b).append_history(
                    room, {"n": i, "text": "张三"}, limit=5
                )
            history = await self.store_of(a).history(room)
            assert history == [{"n": i, "text": "张三"} for i in range(3, 8)]
            assert await self.store_of(b).history(self.room("none")) == []
