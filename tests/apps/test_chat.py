"""The /chat endpoint, spoken to with the Python client (docs/chat-protocol.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

import fullduplex
from fullduplex.apps.chat import ChatPolicy, TokenBucket, canonical
from fullduplex.pubsub import MemoryBackplane, MemoryHub, MemoryRoomStore

from .support import ChatClient, running


async def test_welcome_describes_the_server_and_its_limits() -> None:
    async with running() as srv:
        client = await srv.client()
        welcome = client.welcome
        assert welcome["server"] == "fullduplex"
        assert welcome["protocol"] == 1
        assert isinstance(welcome["node"], str)
        limits = welcome["limits"]
        assert limits["history_size"] == 50
        assert limits["max_text"] == 2000
        assert limits["rate_burst"] == 10
        await client.close()


async def test_join_answers_joined_then_presence() -> None:
    async with running() as srv:
        client = await srv.client()
        await client.send(type="join", room="Lobby", nick="张三")
        joined = await client.expect("joined", room="lobby", nick="张三")
        assert joined["members"] == ["张三"]
        assert joined["history"] == []
        await client.expect("presence", event="join", nick="张三", members=["张三"])
        await client.close()


async def test_messages_reach_everyone_in_the_room_once() -> None:
    async with running() as srv:
        a = await srv.joined("lobby", "张三")
        b = await srv.joined("lobby", "李四")
        await a.expect("presence", event="join", nick="李四", members=["张三", "李四"])
        await a.say("你好 <b>&amp;</b>")
        for client in (a, b):
            msg = await client.expect(
                "message", room="lobby", nick="张三", text="你好 <b>&amp;</b>"
            )
            assert isinstance(msg["ts"], int) and msg["ts"] > 1_600_000_000_000
            assert isinstance(msg["id"], str)
        await b.say("hi")
        first = await a.expect("message", nick="李四", text="hi")
        second = await b.expect("message", nick="李四", text="hi")
        assert first["id"] == second["id"]
        # Nothing was delivered twice: the next thing each sees is the next message.
        await a.say("next")
        await a.expect("message", text="next")
        await b.expect("message", text="next")
        await a.close()
        await b.close()


async def test_other_rooms_do_not_see_messages() -> None:
    async with running() as srv:
        a = await srv.joined("one", "ada")
        b = await srv.joined("two", "ada")  # the same nick in another room is fine
        await a.say("in one")
        await b.say("in two")
        await a.expect("message", text="in one")
        await b.expect("message", text="in two")
        await a.close()
        await b.close()


async def test_history_is_sent_on_joining_and_bounded() -> None:
    async with running(chat_policy=ChatPolicy(history_size=3)) as srv:
        a = await srv.joined("lobby", "ada")
        for i in range(5):
            await a.say(f"m{i}")
            await a.expect("message", text=f"m{i}")
        b = await srv.client()
        await b.send(type="join", room="lobby", nick="bob")
        joined = await b.expect("joined")
        assert [m["text"] for m in joined["history"]] == ["m2", "m3", "m4"]
        assert all(m["type"] == "message" and m["nick"] == "ada" for m in joined["history"])
        await a.close()
        await b.close()


async def test_presence_on_join_leave_and_disconnect() -> None:
    async with running() as srv:
        a = await srv.joined("lobby", "ada")
        b = await srv.joined("lobby", "bob")
        await a.expect("presence", event="join", nick="bob", members=["ada", "bob"])
        await b.send(type="leave")
        await b.expect("left", room="lobby")
        await a.expect("presence", event="leave", nick="bob", members=["ada"])
        # After leaving, messages need a new join.
        await b.say("anyone?")
        await b.expect("error", code="not_joined")
        await b.join("lobby", "bob")
        await a.expect("presence", event="join", nick="bob", members=["ada", "bob"])
        await b.close()
        await a.expect("presence", event="leave", nick="bob", members=["ada"])
        await a.close()


async def test_nicknames_are_unique_per_room_ignoring_case() -> None:
    async with running() as srv:
        a = await srv.joined("lobby", "Ada")
        b = await srv.client()
        for taken in ("ada", "ADA", "Ａｄａ"):  # the last one in full-width letters
            await b.send(type="join", room="LOBBY", nick=taken)
            await b.expect("error", code="nick_taken")
        await b.join("lobby", "Bob")
        await a.expect("presence", event="join", nick="Bob")
        # Once Ada is gone, her nick is free.
        await a.close()
        await b.expect("presence", event="leave", nick="Ada")
        c = await srv.joined("lobby", "ada")
        await c.close()
        await b.close()


async def test_switching_rooms_leaves_the_first_one() -> None:
    async with running() as srv:
        a = await srv.joined("one", "ada")
        b = await srv.joined("one", "bob")
        await a.expect("presence", event="join", nick="bob")
        await b.send(type="join", room="one", nick="bob")
        await b.expect("error", code="already_joined")
        await b.send(type="join", room="two", nick="bob")
        await b.expect("joined", room="two", members=["bob"])
        await b.expect("presence", event="join", nick="bob")
        await a.expect("presence", event="leave", nick="bob", members=["ada"])
        await a.close()
        await b.close()


async def test_typing_is_relayed() -> None:
    async with running() as srv:
        a = await srv.joined("lobby", "ada")
        b = await srv.joined("lobby", "bob")
        await a.expect("presence", event="join", nick="bob")
        await b.send(type="typing")
        await a.expect("typing", room="lobby", nick="bob")
        await b.expect("typing", nick="bob")
        await a.close()
        await b.close()


async def test_commands_before_joining_are_refused() -> None:
    async with running() as srv:
        client = await srv.client()
        for kind in ("message", "typing", "leave"):
            await client.send(type=kind, text="x")
            await client.expect("error", code="not_joined")
        await client.close()


# --------------------------------------------------------------------------
# Bad input: an error (or a close) for the sender, nothing for anyone else.

LONG = "x" * 2001
BAD_INPUT: list[tuple[str, str | dict[str, Any], str]] = [
    ("not json", "{", "invalid_json"),
    ("trailing garbage", '{"type": "typing"} x', "invalid_json"),
    ("deep nesting", "[" * 15000, "invalid_json"),
    ("array", "[1, 2]", "invalid_message"),
    ("string", '"join"', "invalid_message"),
    ("no type", {"text": "hi"}, "invalid_message"),
    ("numeric type", {"type": 1}, "invalid_message"),
    ("unknown type", {"type": "dance"}, "unknown_type"),
    ("no text", {"type": "message"}, "invalid_text"),
    ("numeric text", {"type": "message", "text": 5}, "invalid_text"),
    ("list text", {"type": "message", "text": ["a"]}, "invalid_text"),
    ("blank text", {"type": "message", "text": " \n "}, "invalid_text"),
    ("control character", {"type": "message", "text": "a\x00b"}, "invalid_text"),
    ("lone surrogate", '{"type": "message", "text": "a\\ud800b"}', "invalid_text"),
    ("long text", {"type": "message", "text": LONG}, "text_too_long"),
    ("no room", {"type": "join", "nick": "eve"}, "invalid_room"),
    ("numeric room", {"type": "join", "room": 7, "nick": "eve"}, "invalid_room"),
    ("empty room", {"type": "join", "room": "", "nick": "eve"}, "invalid_room"),
    ("long room", {"type": "join", "room": "r" * 33, "nick": "eve"}, "invalid_room"),
    ("slash in room", {"type": "join", "room": "a/b", "nick": "eve"}, "invalid_room"),
    ("no nick", {"type": "join", "room": "x"}, "invalid_nick"),
    ("null nick", {"type": "join", "room": "x", "nick": None}, "invalid_nick"),
    ("long nick", {"type": "join", "room": "x", "nick": "n" * 25}, "invalid_nick"),
    ("markup nick", {"type": "join", "room": "x", "nick": "<script>"}, "invalid_nick"),
    ("space in nick", {"type": "join", "room": "x", "nick": "a b"}, "invalid_nick"),
    ("nick starting with -", {"type": "join", "room": "x", "nick": "-ab"}, "invalid_nick"),
    ("nick with newline", {"type": "join", "room": "x", "nick": "ab\n"}, "invalid_nick"),
]


async def _room_of_two(srv: Any) -> tuple[ChatClient, ChatClient]:
    good = await srv.joined("lobby", "good")
    bad = await srv.joined("lobby", "bad")
    await good.expect("presence", event="join", nick="bad")
    return good, bad


async def _still_works(good: ChatClient, *others: ChatClient) -> None:
    await good.say("still here")
    for client in (good, *others):
        await client.expect("message", nick="good", text="still here")


@pytest.mark.parametrize(
    ("payload", "code"), [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT]
)
async def test_bad_input_gets_an_error_and_disturbs_no_one(
    payload: str | dict[str, Any], code: str
) -> None:
    async with running() as srv:
        good, bad = await _room_of_two(srv)
        raw = payload if isinstance(payload, str) else json.dumps(payload)
        await bad.send_raw(raw)
        error = await bad.expect("error", code=code)
        assert isinstance(error["message"], str) and error["message"]
        # The sender stays in the room and keeps working, and so does everyone else.
        await _still_works(good, bad)
        await bad.say("me too")
        await good.expect("message", nick="bad", text="me too")
        await good.close()
        await bad.close()


async def test_binary_frames_close_1003() -> None:
    async with running() as srv:
        good, bad = await _room_of_two(srv)
        await bad.send_raw(b'{"type": "message", "text": "hi"}')
        code, _ = await bad.closed()
        assert code == fullduplex.CloseCode.UNSUPPORTED_DATA
        await good.expect("presence", event="leave", nick="bad", members=["good"])
        await _still_works(good)
        await good.close()


async def test_oversized_messages_close_1009() -> None:
    async with running() as srv:
        good, bad = await _room_of_two(srv)
        big = json.dumps({"type": "message", "text": "x" * 20_000})
        await bad.send_raw(big)
        code, _ = await bad.closed()
        assert code == fullduplex.CloseCode.MESSAGE_TOO_BIG
        await good.expect("presence", event="leave", nick="bad", members=["good"])
        await _still_works(good)
        stats = (await srv.get("/stats")).json()
        assert stats["endpoints"]["chat"]["connections"] == 1
        await good.close()


async def test_flooding_is_rate_limited_then_closed_1008() -> None:
    async with running() as srv:
        good, bad = await _room_of_two(srv)
        with contextlib.suppress(fullduplex.ConnectionClosed):
            for i in range(80):
                await bad.say(f"spam {i}")
        errors = 0
        try:
            while True:
                message = await bad.next()
                if message["type"] == "error":
                    assert message["code"] == "rate_limited"
                    errors += 1
        except fullduplex.ConnectionClosed as exc:
            assert exc.code == fullduplex.CloseCode.POLICY_VIOLATION
            assert exc.reason == "rate limit exceeded"
        assert errors >= 1
        # The room saw the burst allowance, not the flood.
        spam = 0
        while True:
            message = await good.next()
            if message["type"] == "presence":
                assert message == {
                    "type": "presence",
                    "room": "lobby",
                    "event": "leave",
                    "nick": "bad",
                    "members": ["good"],
                }
                break
            assert message["type"] == "message" and message["nick"] == "bad"
            spam += 1
        assert 9 <= spam <= 14  # the join took one token of the 10
        await _still_works(good)
        await good.close()


# --------------------------------------------------------------------------
# Several nodes sharing a backplane: the shape a Redis or NATS deployment has.


async def test_two_nodes_share_rooms_through_the_backplane() -> None:
    hub, store = MemoryHub(), MemoryRoomStore()
    async with (
        running(backplane=MemoryBackplane(hub, store)) as one,
        running(backplane=MemoryBackplane(hub, store)) as two,
    ):
        a = await one.joined("lobby", "ada")
        b = await two.joined("lobby", "bob")
        await a.expect("presence", event="join", nick="bob", members=["ada", "bob"])
        c = await two.client()
        await c.send(type="join", room="lobby", nick="ADA")
        await c.expect("error", code="nick_taken")
        await a.say("from one")
        await b.say("from two")
        for client in (a, b):
            await client.expect("message", nick="ada", text="from one")
            await client.expect("message", nick="bob", text="from two")
        # Each node subscribed once to the room's channel.
        assert len(hub.channels["room:lobby"]) == 2
        await b.close()
        await a.expect("presence", event="leave", nick="bob", members=["ada"])
        assert len(hub.channels["room:lobby"]) == 1  # node two let go of the room
        await a.close()
        await c.close()


async def test_a_node_unsubscribes_when_its_last_member_leaves() -> None:
    backplane = MemoryBackplane()
    async with running(backplane=backplane) as srv:
        a = await srv.joined("lobby", "ada")
        b = await srv.joined("lobby", "bob")
        assert len(backplane.hub.channels["room:lobby"]) == 1
        await a.close()
        await b.expect("presence", event="leave", nick="ada")
        assert "room:lobby" in backplane.hub.channels
        await b.send(type="leave")
        await b.expect("left")
        assert "room:lobby" not in backplane.hub.channels
        assert srv.app.chat.rooms == []
        await b.close()


async def test_server_shutdown_closes_clients_with_1001() -> None:
    async with running() as srv:
        a = await srv.joined("lobby", "ada")
    code, _ = await a.closed()
    assert code == fullduplex.CloseCode.GOING_AWAY
    assert not srv.app.backplane.healthy


# --------------------------------------------------------------------------
# Units


def test_token_bucket() -> None:
    bucket = TokenBucket(3, 2.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5)  # one token back after half a second
    assert not bucket.take(0.5)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_canonical_folds_case_and_width() -> None:
    assert canonical("Ada") == canonical("ADA") == canonical("Ａｄａ") == "ada"
    assert canonical("张三") == "张三"


async def test_the_close_timeout_does_not_matter_for_a_quiet_room() -> None:
    async with running() as srv:
        a = await srv.joined("quiet", "ada")
        await asyncio.wait_for(a.close(), 2)


async def test_congested_members_miss_events_and_are_counted() -> None:
    async with running() as srv:
        a = await srv.joined("lobby", "ada")
        b = await srv.joined("lobby", "bob")
        await a.expect("presence", event="join", nick="bob")
        [bob_on_server] = [
            conn for conn in srv.server.connections if conn.remote_address == b.conn.local_address
        ]
        proto = bob_on_server.protocol
        assert proto is not None
        proto.pause_writing()  # what the transport does when its buffer is full
        await a.say("while bob is slow")
        await a.expect("message", text="while bob is slow")
        proto.resume_writing()
        await a.say("after")
        await a.expect("message", text="after")
        await b.expect("message", text="after")  # the first one was skipped for bob
        chat = (await srv.get("/stats")).json()["endpoints"]["chat"]
        assert chat["skipped"] == 1
        await a.close()
        await b.close()
