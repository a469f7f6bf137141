"""The in-process backplane: the contract suite, plus what is specific to it."""

from __future__ import annotations

import pytest

from fullduplex.pubsub import (
    Backplane,
    MemoryBackplane,
    MemoryHub,
    MemoryRoomStore,
    create_backplane,
)

from .contract import BackplaneContract, Inbox


class TestMemoryBackplane(BackplaneContract):
    """Nodes of one cluster share a hub and a room store."""

    def setup_method(self) -> None:
        super().setup_method()
        self.hub = MemoryHub()
        self.store = MemoryRoomStore()

    async def make_node(self) -> Backplane:
        return MemoryBackplane(hub=self.hub, store=self.store)


async def test_instances_without_a_shared_hub_are_separate() -> None:
    a, b = MemoryBackplane(), MemoryBackplane()
    on_a, on_b = Inbox(), Inbox()
    await a.subscribe("c", on_a)
    await b.subscribe("c", on_b)
    await a.publish("c", b"a")
    assert on_a.data == [b"a"]  # delivered before publish() returns
    assert on_b.data == []
    assert a.room_store() is not b.room_store()


async def test_unsubscribing_the_last_subscription_forgets_the_channel() -> None:
    backplane = MemoryBackplane()
    sub = await backplane.subscribe("c", Inbox())
    assert "c" in backplane.hub.channels
    await sub.unsubscribe()
    assert backplane.hub.channels == {}
    assert backplane.status()["subscriptions"] == 0


async def test_the_store_forgets_empty_rooms_beyond_max_rooms() -> None:
    store = MemoryRoomStore(max_rooms=2)
    await store.add_member("busy", "a", "a", "n")
    await store.append_history("quiet", {"n": 1}, 10)
    await store.append_history("new", {"n": 2}, 10)
    assert store.rooms == 2
    assert await store.history("quiet") == []  # the empty one went
    assert await store.members("busy") == ["a"]
    assert await store.history("new") == [{"n": 2}]


def test_create_backplane() -> None:
    assert isinstance(create_backplane("memory"), MemoryBackplane)
    assert isinstance(create_backplane(), MemoryBackplane)
    with pytest.raises(ValueError, match="unknown backplane"):
        create_backplane("carrier-pigeon://")
