"""Tests for the I/O-free broker engine."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fullduplex.stomp.destinations import Router
from fullduplex.stomp.errors import DestinationError
from fullduplex.stomp.frames import Frame, FrameParser, encode
from fullduplex.stomp.session import (
    Abort,
    Ack,
    Begin,
    ClientSession,
    Close,
    Commit,
    Connected,
    ConnectRequest,
    Disconnect,
    Message,
    Nack,
    Receipt,
    Send,
    ServerSession,
    Subscribe,
    Unsubscribe,
)


class FakeSession:
    """A subscriber that records what it is given."""

    def __init__(self, version: str = "1.2") -> None:
        self.version = version
        self.received: list[bytes] = []
        self.on_deliver: Callable[[], None] | None = None

    def deliver(self, data: bytes) -> None:
        self.received.append(data)
        if self.on_deliver is not None:
            self.on_deliver()

    def frames(self) -> list[Frame]:
        items = FrameParser(version=self.version).feed(b"".join(self.received))
        self.received.clear()
        return [item for item in items if isinstance(item, Frame)]

    def bodies(self) -> list[bytes]:
        return [frame.body for frame in self.frames()]


def sessions(router: Router, count: int, host: str | None = None) -> list[FakeSession]:
    result = [FakeSession() for _ in range(count)]
    for session in result:
        router.connect(session, host)
    return result


def publish(router: Router, sender: FakeSession, destination: str, *bodies: bytes) -> None:
    for body in bodies:
        router.send(sender, destination, body)


# -- topics ------------------------------------------------------------------------------


def test_topic_fans_out_with_per_subscriber_headers() -> None:
    router = Router()
    a, b, c, sender = sessions(router, 4)
    router.subscribe(a, "sa", "/topic/news")
    router.subscribe(b, "sb", "/topic/news", "client")
    router.subscribe(c, "sc", "/topic/news", "client-individual")
    router.send(
        sender,
        "/topic/news",
        b"hello",
        [
            ("destination", "/topic/news"),
            ("content-type", "text/plain"),
            ("receipt", "r-1"),
            ("content-length", "5"),
            ("message-id", "forged"),
            ("x-custom", "a:b"),
        ],
    )
    (fa,) = a.frames()
    (fb,) = b.frames()
    (fc,) = c.frames()
    assert fa == Frame(
        "MESSAGE",
        [
            ("subscription", "sa"),
            ("destination", "/topic/news"),
            ("message-id", "m-1"),
            ("content-type", "text/plain"),
            ("x-custom", "a:b"),
            ("content-length", "5"),
        ],
        b"hello",
    )
    assert fb.headers[:2] == [("subscription", "sb"), ("ack", "a-1")]
    assert fc.headers[:2] == [("subscription", "sc"), ("ack", "a-2")]
    assert fa.headers[1:] == fb.headers[2:] == fc.headers[2:]
    assert sender.received == []
    assert router.stats.published == 1
    assert router.stats.delivered == 3
    assert router.subscriber_count("/topic/news") == 3


def test_topic_message_without_subscribers_is_dropped() -> None:
    router = Router()
    (sender,) = sessions(router, 1)
    publish(router, sender, "/topic/void", b"x")
    late = FakeSession()
    router.connect(late)
    router.subscribe(late, "s", "/topic/void")
    assert late.received == []
    assert router.stats.published == 1 and router.stats.delivered == 0


def test_messages_are_encoded_for_each_subscriber_version() -> None:
    router = Router()
    old, new = FakeSession("1.0"), FakeSession("1.2")
    for session in (old, new):
        router.connect(session)
        router.subscribe(session, "s:1", "/topic/t")
    router.send(new, "/topic/t", b"", [("k", "a:b"), ("multi", "line\nvalue")])
    assert old.received == [
        b"MESSAGE\nsubscription:s:1\ndestination:/topic/t\nmessage-id:m-1\nk:a:b\n\n\x00"
    ]
    (frame,) = new.frames()
    assert frame.headers == [
        ("subscription", "s:1"),
        ("destination", "/topic/t"),
        ("message-id", "m-1"),
        ("k", "a:b"),
        ("multi", "line\nvalue"),
    ]


def test_topic_nack_and_unsubscribe_do_not_redeliver() -> None:
    router = Router()
    a, b = sessions(router, 2)
    router.subscribe(a, "s", "/topic/t", "client-individual")
    router.subscribe(b, "s", "/topic/t", "client")
    publish(router, a, "/topic/t", b"1", b"2")
    ack_ids = [frame.get("ack") for frame in a.frames()]
    b.frames()
    router.nack(a, ack_ids[0] or "")
    assert router.unacked(a) == 1
    router.unsubscribe(a, "s")
    assert router.unacked(a) == 0
    router.disconnect(b)
    assert a.received == b.received == []
    assert router.stats.redelivered == 0
    assert router.subscriber_count("/topic/t") == 0


# -- queues ------------------------------------------------------------------------------


def test_queue_round_robin_between_competing_consumers() -> None:
    router = Router()
    a, b, c, sender = sessions(router, 4)
    for session in (a, b, c):
        router.subscribe(session, "q", "/queue/work")
    publish(router, sender, "/queue/work", *(str(i).encode() for i in range(7)))
    assert a.bodies() == [b"0", b"3", b"6"]
    assert b.bodies() == [b"1", b"4"]
    assert c.bodies() == [b"2", b"5"]
    assert router.subscriber_count("/queue/work") == 3


def test_queue_keeps_a_backlog_until_someone_subscribes() -> None:
    router = Router()
    sender, consumer = sessions(router, 2)
    publish(router, sender, "/queue/later", b"1", b"2")
    assert router.queue_depth("/queue/later") == 2
    router.subscribe(consumer, "0", "/queue/later")
    assert consumer.bodies() == [b"1", b"2"]
    assert router.queue_depth("/queue/later") == 0


def test_backlog_overflow_drops_the_oldest() -> None:
    router = Router(backlog_limit=3)
    sender, consumer = sessions(router, 2)
    publish(router, sender, "/queue/q", b"1", b"2", b"3", b"4", b"5")
    assert router.queue_depth("/queue/q") == 3
    assert router.stats.dropped_backlog == 2
    router.subscribe(consumer, "0", "/queue/q")
    assert consumer.bodies() == [b"3", b"4", b"5"]


def test_empty_queue_without_consumers_is_forgotten() -> None:
    router = Router()
    (consumer,) = sessions(router, 1)
    router.subscribe(consumer, "0", "/queue/q")
    router.unsubscribe(consumer, "0")
    assert router.subscriber_count("/queue/q") == 0
    assert router.queue_depth("/queue/q") == 0


# -- acknowledgement ---------------------------------------------------------------------


def ack_ids(session: FakeSession) -> list[str]:
    return [frame.get("ack") or "" for frame in session.frames()]


def test_auto_ack_needs_no_ack() -> None:
    router = Router()
    sender, consumer = sessions(router, 2)
    router.subscribe(consumer, "0", "/queue/q")
    publish(router, sender, "/queue/q", b"1")
    (frame,) = consumer.frames()
    assert frame.get("ack") is None
    assert router.unacked(consumer) == 0


def test_client_ack_is_cumulative() -> None:
    router = Router()
    sender, consumer = sessions(router, 2)
    router.subscribe(consumer, "0", "/queue/q", "client")
    router.subscribe(consumer, "1", "/queue/other", "client")
    publish(router, sender, "/queue/q", b"1", b"2", b"3")
    publish(router, sender, "/queue/other", b"x")
    first, second, third, other = ack_ids(consumer)
    router.ack(consumer, second)
    # 1 and 2 settled; 3 and the other subscription's message are not.
    assert router.unacked(consumer) == 2
    with pytest.raises(DestinationError, match="unknown ack id"):
        router.ack(consumer, first)
    router.ack(consumer, third)
    router.ack(consumer, other)
    assert router.unacked(consumer) == 0


def test_client_individual_ack_settles_one() -> None:
    router = Router()
    sender, consumer = sessions(router, 2)
    router.subscribe(consumer, "0", "/queue/q", "client-individual")
    publish(router, sender, "/queue/q", b"1", b"2", b"3")
    first, second, third = ack_ids(consumer)
    router.ack(consumer, second)
    assert router.unacked(consumer) == 2
    router.ack(consumer, first)
    router.ack(consumer, third)
    assert router.unacked(consumer) == 0


def test_nack_redelivers_to_the_next_consumer_first_in_line() -> None:
    router = Router()
    a, b, sender = sessions(router, 3)
    router.subscribe(a, "0", "/queue/q", "client-individual")
    router.subscribe(b, "0", "/queue/q", "client-individual")
    publish(router, sender, "/queue/q", b"1", b"2")
    (a_ack,) = ack_ids(a)
    b_frames = b.frames()
    router.set_congested(b, True)
    publish(router, sender, "/queue/q", b"3")  # a takes it: b is congested
    router.set_congested(b, False)
    router.nack(a, a_ack)
    # The round-robin turn is b's: it gets message 1 again, marked redelivered.
    (again,) = b.frames()
    assert again.body == b"1"
    assert again.get("redelivered") == "true"
    assert again.get("message-id") == "m-1"
    assert again.get("ack") not in (a_ack, b_frames[0].get("ack"))
    assert [f.body for f in a.frames()] == [b"3"]
    assert router.stats.redelivered == 1


def test_client_nack_is_cumulative_and_keeps_order() -> None:
    router = Router()
    sender, consumer = sessions(router, 2)
    router.subscribe(consumer, "0", "/queue/q", "client")
    publish(router, sender, "/queue/q", b"1", b"2", b"3")
    _, second, _ = ack_ids(consumer)
    router.unsubscribe(consumer, "0")  # requeues 1, 2, 3
    router.subscribe(consumer, "0", "/queue/q", "client")
    frames = consumer.frames()
    assert [f.body for f in frames] == [b"1", b"2", b"3"]
    assert all(f.get("redelivered") == "true" for f in frames)
    router.nack(consumer, frames[1].get("ack") or "")
    # 1 and 2 come straight back, in order, ahead of 3 which is still unacked.
    assert consumer.bodies() == [b"1", b"2"]
    assert router.unacked(consumer) == 3
    with pytest.raises(DestinationError):
        router.ack(consumer, second)


def test_disconnect_redelivers_unacked_messages_in_order() -> None:
    router = Router()
    a, b, sender = sessions(router, 3)
    router.subscribe(a, "0", "/queue/q", "client")
    publish(router, sender, "/queue/q", b"1", b"2")
    router.set_congested(a, True)
    publish(router, sender, "/queue/q", b"3")
    router.subscribe(b, "0", "/queue/q", "client-individual")
    assert b.bodies() == [b"3"]
    router.set_congested(b, True)
    publish(router, sender, "/queue/q", b"4")  # nobody can take it
    router.disconnect(a)
    router.disconnect(a)  # idempotent
    router.set_congested(a, False)  # unknown now: ignored
    assert router.queue_depth("/queue/q") == 3
    router.set_congested(b, False)
    frames = b.frames()
    assert [f.body for f in frames] == [b"1", b"2", b"4"]
    assert [f.get("redelivered") for f in frames] == ["true", "true", None]


def test_1_1_and_1_0_acks_name_the_message_id() -> None:
    router = Router()
    sender = FakeSession()
    v11, v10 = FakeSession("1.1"), FakeSession("1.0")
    for session in (sender, v11, v10):
        router.connect(session)
    router.subscribe(v11, "s", "/queue/a", "client-individual")
    router.subscribe(v10, "first", "/queue/b", "client")
    router.subscribe(v10, "second", "/queue/c", "client")
    publish(router, sender, "/queue/a", b"a")
    publish(router, sender, "/queue/c", b"c")
    (message,) = v11.frames()
    with pytest.raises(DestinationError):
        router.ack(v11, message.get("message-id") or "", subscription="other")
    router.ack(v11, message.get("message-id") or "", subscription="s")
    (message,) = v10.frames()
    router.ack(v10, message.get("message-id") or "")
    assert router.unacked(v11) == router.unacked(v10) == 0
    with pytest.raises(DestinationError, match="unknown ack id"):
        router.ack(v10, "m-404")


def test_prefetch_limit_per_consumer() -> None:
    router = Router(max_unacked=1)
    a, b, sender = sessions(router, 3)
    router.subscribe(a, "0", "/queue/q", "client-individual")
    router.subscribe(b, "0", "/queue/q", "client-individual")
    publish(router, sender, "/queue/q", b"1", b"2", b"3")
    (a_ack,) = ack_ids(a)
    assert b.bodies() == [b"2"]
    assert router.queue_depth("/queue/q") == 1
    router.ack(a, a_ack)
    assert a.bodies() == [b"3"]


# -- transactions ------------------------------------------------------------------------


def test_transactional_sends_wait_for_commit() -> None:
    router = Router()
    sender, consumer = sessions(router, 2)
    router.subscribe(consumer, "0", "/topic/t")
    router.begin(sender, "tx")
    router.send(sender, "/topic/t", b"1", transaction="tx")
    router.send(sender, "/topic/t", b"2", transaction="tx")
    assert consumer.received == []
    router.commit(sender, "tx")
    assert consumer.bodies() == [b"1", b"2"]
    router.begin(sender, "tx")  # the name is free again
    router.send(sender, "/topic/t", b"3", transaction="tx")
    router.abort(sender, "tx")
    assert consumer.received == []


def test_aborted_acks_leave_messages_unacked() -> None:
    router = Router()
    sender, consumer = sessions(router, 2)
    router.subscribe(consumer, "0", "/queue/q", "client-individual")
    publish(router, sender, "/queue/q", b"1", b"2")
    first, second = ack_ids(consumer)
    router.begin(consumer, "tx")
    router.ack(consumer, first, transaction="tx")
    router.nack(consumer, second, transaction="tx")
    assert router.unacked(consumer) == 2
    router.abort(consumer, "tx")
    assert router.unacked(consumer) == 2
    assert consumer.received == []
    router.begin(consumer, "tx2")
    router.ack(consumer, first, transaction="tx2")
    router.nack(consumer, second, transaction="tx2")
    router.commit(consumer, "tx2")
    # The ACK settled 1; the NACK sent 2 back, and this consumer is the only one.
    assert consumer.bodies() == [b"2"]
    assert router.unacked(consumer) == 1


def test_transactional_ack_already_settled_at_commit_is_skipped() -> None:
    router = Router()
    sender, consumer = sessions(router, 2)
    router.subscribe(consumer, "0", "/queue/q", "client")
    publish(router, sender, "/queue/q", b"1", b"2")
    first, second = ack_ids(consumer)
    router.begin(consumer, "tx")
    router.ack(consumer, first, transaction="tx")
    router.ack(consumer, second)  # cumulative: settles 1 as well
    router.commit(consumer, "tx")
    assert router.unacked(consumer) == 0


def test_transaction_errors() -> None:
    router = Router()
    (session,) = sessions(router, 1)
    router.begin(session, "tx")
    with pytest.raises(DestinationError, match="already started"):
        router.begin(session, "tx")
    calls: list[Callable[[], None]] = [
        lambda: router.commit(session, "nope"),
        lambda: router.abort(session, "nope"),
        lambda: router.send(session, "/topic/t", b"", transaction="nope"),
    ]
    for call in calls:
        with pytest.raises(DestinationError, match="unknown transaction"):
            call()


def test_disconnect_aborts_open_transactions() -> None:
    router = Router()
    sender, consumer = sessions(router, 2)
    router.subscribe(consumer, "0", "/topic/t")
    router.begin(sender, "tx")
    router.send(sender, "/topic/t", b"1", transaction="tx")
    router.disconnect(sender)
    assert consumer.received == []


# -- slow subscribers --------------------------------------------------------------------


def test_congested_topic_subscriber_misses_messages_and_they_are_counted() -> None:
    router = Router()
    fast, slow, sender = sessions(router, 3)
    router.subscribe(fast, "0", "/topic/t")
    router.subscribe(slow, "0", "/topic/t")
    router.set_congested(slow, True)
    publish(router, sender, "/topic/t", b"1", b"2")
    router.set_congested(slow, False)
    publish(router, sender, "/topic/t", b"3")
    assert fast.bodies() == [b"1", b"2", b"3"]
    assert slow.bodies() == [b"3"]
    assert router.dropped(slow) == 2
    assert router.dropped(fast) == 0
    assert router.stats.dropped_slow == 2


def test_congested_queue_consumer_gets_no_new_messages() -> None:
    router = Router()
    a, b, sender = sessions(router, 3)
    router.subscribe(a, "0", "/queue/q")
    router.subscribe(b, "0", "/queue/q")
    router.set_congested(a, True)
    publish(router, sender, "/queue/q", b"1", b"2")
    assert b.bodies() == [b"1", b"2"]
    router.set_congested(b, True)
    publish(router, sender, "/queue/q", b"3")
    assert router.queue_depth("/queue/q") == 1
    router.set_congested(a, False)
    assert a.bodies() == [b"3"]


def test_congestion_signalled_from_inside_deliver() -> None:
    router = Router()
    a, b, sender = sessions(router, 3)
    router.subscribe(a, "0", "/queue/q")
    router.subscribe(b, "0", "/queue/q")
    # a's buffer fills up as soon as it is given one message.
    a.on_deliver = lambda: router.set_congested(a, True)
    publish(router, sender, "/queue/q", b"1")
    router.set_congested(b, True)
    publish(router, sender, "/queue/q", b"2", b"3")
    b.on_deliver = None
    a.on_deliver = None
    router.set_congested(b, False)
    assert a.bodies() == [b"1"]
    assert b.bodies() == [b"2", b"3"]


def test_publishing_from_inside_deliver_keeps_order() -> None:
    router = Router()
    consumer, sender = sessions(router, 2)
    router.subscribe(consumer, "0", "/queue/q")

    def echo_once() -> None:
        consumer.on_deliver = None
        router.send(sender, "/queue/q", b"echo")

    consumer.on_deliver = echo_once
    publish(router, sender, "/queue/q", b"1")
    assert consumer.bodies() == [b"1", b"echo"]


def test_unsubscribed_from_inside_deliver_gets_nothing_more() -> None:
    router = Router()
    first, second, sender = sessions(router, 3)
    router.subscribe(first, "0", "/topic/t")
    router.subscribe(second, "0", "/topic/t", "client")
    first.on_deliver = lambda: router.unsubscribe(second, "0")
    publish(router, sender, "/topic/t", b"1")
    assert first.bodies() == [b"1"]
    assert second.received == []
    assert router.unacked(second) == 0


# -- virtual hosts, backplane, errors ----------------------------------------------------


def test_virtual_hosts_are_isolated() -> None:
    router = Router()
    (a,) = sessions(router, 1, host="red")
    (b,) = sessions(router, 1, host="blue")
    (c,) = sessions(router, 1)
    for session in (a, b, c):
        router.subscribe(session, "0", "/topic/t")
    publish(router, a, "/topic/t", b"red")
    publish(router, b, "/queue/q", b"blue")
    assert a.bodies() == [b"red"]
    assert b.received == c.received == []
    assert router.queue_depth("/queue/q", "blue") == 1
    assert router.queue_depth("/queue/q") == 0
    assert router.subscriber_count("/topic/t", "red") == 1


def test_allowed_virtual_hosts() -> None:
    router = Router(hosts=["/", "prod"], default_host="/")
    router.connect(FakeSession(), "prod")
    router.connect(FakeSession())
    with pytest.raises(DestinationError, match="unknown virtual host"):
        router.connect(FakeSession(), "test")


def test_backplane_publish_and_receive() -> None:
    published: list[tuple[str, str, list[tuple[str, str]], bytes]] = []
    router = Router(publish=lambda *args: published.append(args))
    local, sender = sessions(router, 2, host="vh")
    router.subscribe(local, "0", "/topic/t")
    router.send(sender, "/topic/t", b"out", [("k", "v"), ("receipt", "r")])
    router.send(sender, "/queue/q", b"queues stay local")
    assert published == [("vh", "/topic/t", [("k", "v")], b"out")]
    router.receive_remote("vh", "/topic/t", [("k", "w"), ("message-id", "x")], b"in")
    assert len(published) == 1
    frames = local.frames()
    assert [f.body for f in frames] == [b"out", b"in"]
    assert frames[1].get_all("message-id") == ["m-3"]
    with pytest.raises(DestinationError, match="not a topic"):
        router.receive_remote("vh", "/queue/q", [], b"")


def test_injected_message_ids() -> None:
    ids = iter(["node1-a", "node1-b"])
    router = Router(message_ids=lambda: next(ids))
    consumer, sender = sessions(router, 2)
    router.subscribe(consumer, "0", "/topic/t")
    publish(router, sender, "/topic/t", b"1", b"2")
    assert [f.get("message-id") for f in consumer.frames()] == ["node1-a", "node1-b"]


@pytest.mark.parametrize(
    "destination", ["/foo/bar", "/topic/", "/queue/", "queue/a", "/queue/a\nb", "/topic/a\r"]
)
def test_invalid_destinations(destination: str) -> None:
    router = Router()
    (session,) = sessions(router, 1)
    with pytest.raises(DestinationError, match="invalid destination"):
        router.send(session, destination, b"")
    with pytest.raises(DestinationError, match="invalid destination"):
        router.subscribe(session, "0", destination)


def test_subscription_errors() -> None:
    router = Router()
    (session,) = sessions(router, 1)
    router.connect(session)  # connecting twice changes nothing
    router.subscribe(session, "0", "/topic/t")
    with pytest.raises(DestinationError, match="duplicate subscription"):
        router.subscribe(session, "0", "/queue/q")
    with pytest.raises(DestinationError, match="invalid ack mode"):
        router.subscribe(session, "1", "/queue/q", "sometimes")
    with pytest.raises(DestinationError, match="unknown subscription"):
        router.unsubscribe(session, "9")
    stranger = FakeSession()
    with pytest.raises(DestinationError, match="not connected") as info:
        router.send(stranger, "/topic/t", b"")
    assert info.value.code == "STOMP_DESTINATION_ERROR"


# -- with real sessions ------------------------------------------------------------------


def test_dispatch_session_events() -> None:
    router = Router()
    sender, consumer = sessions(router, 2)
    router.dispatch(consumer, Subscribe("0", "/queue/q", "client-individual", []))
    router.dispatch(sender, Begin("t"))
    router.dispatch(sender, Send("/queue/q", b"1", [], "t"))
    router.dispatch(sender, Commit("t"))
    router.dispatch(sender, Begin("u"))
    router.dispatch(sender, Abort("u"))
    router.dispatch(sender, Send("/queue/q", b"2", []))
    first, second = ack_ids(consumer)
    router.dispatch(consumer, Nack(second))
    assert consumer.bodies() == [b"2"]
    router.dispatch(consumer, Ack(first))
    router.dispatch(consumer, Unsubscribe("0"))
    router.dispatch(consumer, Disconnect(None))
    router.dispatch(sender, Close("bye"))
    router.dispatch(sender, ConnectRequest("1.2", None, None, None, (0, 0)))  # ignored
    assert router.queue_depth("/queue/q") == 1


def test_broker_loop_with_real_sessions() -> None:
    router = Router()
    server_ids = iter(["s-1", "s-2"])

    def serve(server: ServerSession, client: ClientSession) -> None:
        """What the broker does with each batch: events in order, then receipts."""
        server.receive_data(b"".join(client.data_to_send()), 0.0)
        for event in server.events_received():
            if isinstance(event, ConnectRequest):
                server.accept(next(server_ids), 0.0)
                router.connect(server, event.host)
                continue
            try:
                router.dispatch(server, event)
            except DestinationError as exc:
                server.send_error(exc, getattr(event, "receipt", None))
                router.disconnect(server)
                continue
            receipt = getattr(event, "receipt", None)
            if receipt is not None:
                server.send_receipt(receipt)
            if isinstance(event, Disconnect):
                server.close()

    pairs = []
    for version in ("1.1", "1.2"):
        client, server = ClientSession("/", versions=(version,)), ServerSession()
        client.connect(0.0)
        serve(server, client)
        client.receive_data(b"".join(server.data_to_send()), 0.0)
        (connected,) = client.events_received()
        assert isinstance(connected, Connected) and connected.version == version
        pairs.append((client, server))
    (c11, s11), (c12, s12) = pairs
    c11.subscribe("/queue/jobs", "q", ack="client-individual", receipt="sub")
    serve(s11, c11)
    c12.send("/queue/jobs", b"job:1", headers=[("k", "a:b")], receipt="sent")
    serve(s12, c12)
    c11.receive_data(b"".join(s11.data_to_send()), 0.0)
    c12.receive_data(b"".join(s12.data_to_send()), 0.0)
    assert c12.events_received() == [Receipt("sent")]
    receipt, message = c11.events_received()
    assert receipt == Receipt("sub")
    assert isinstance(message, Message)
    assert (message.body, message.subscription) == (b"job:1", "q")
    assert ("k", "a:b") in message.headers
    c11.ack(message)
    c11.disconnect(receipt="bye")
    serve(s11, c11)
    assert router.stats.redelivered == 0
    c11.receive_data(b"".join(s11.data_to_send()), 0.0)
    assert c11.events_received() == [Receipt("bye"), Close("disconnected")]
    assert s11.closed
    # An engine refusal becomes an ERROR frame that echoes the receipt.
    c12.send("/elsewhere", b"", receipt="r-bad")
    serve(s12, c12)
    c12.receive_data(b"".join(s12.data_to_send()), 0.0)
    error, close = c12.events_received()
    assert getattr(error, "receipt_id", None) == "r-bad"
    assert getattr(error, "message", None) == "invalid destination"
    assert isinstance(close, Close)
    assert encode(Frame("SEND")) == b"SEND\n\n\x00"
