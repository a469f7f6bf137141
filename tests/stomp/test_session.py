"""Tests for the sans-I/O STOMP session, server and client roles."""

from __future__ import annotations

from typing import Any

import pytest

from fullduplex.errors import InvalidState
from fullduplex.stomp.errors import StompProtocolError
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
    Error,
    Event,
    Message,
    Nack,
    Receipt,
    Send,
    ServerSession,
    State,
    StompSession,
    Subscribe,
    Unsubscribe,
    negotiate_heartbeat,
    negotiate_version,
    parse_heartbeat,
)

# -- helpers -----------------------------------------------------------------------------


def frames_out(session: StompSession, version: str = "1.2") -> list[Frame]:
    parser = FrameParser(version=version)
    items = parser.feed(b"".join(session.data_to_send()))
    return [item for item in items if isinstance(item, Frame)]


def connect_frame(*headers: tuple[str, str], command: str = "CONNECT") -> bytes:
    return encode(Frame(command, list(headers)))


def connected_server(version: str = "1.2", **kwargs: Any) -> ServerSession:
    server = ServerSession(**kwargs)
    server.receive_data(connect_frame(("accept-version", version), ("host", "/")), 0.0)
    server.events_received()
    server.accept("s-1", 0.0)
    server.data_to_send()
    return server


def feed(session: StompSession, *frames: Frame, now: float = 0.0) -> list[Event]:
    session.receive_data(b"".join(encode(f, session.version) for f in frames), now)
    return session.events_received()


def error_of(server: ServerSession) -> Frame:
    (frame,) = frames_out(server)
    assert frame.command == "ERROR"
    assert server.closed
    return frame


def pump(client: ClientSession, server: ServerSession, now: float = 0.0) -> None:
    while True:
        to_server = b"".join(client.data_to_send())
        to_client = b"".join(server.data_to_send())
        if not to_server and not to_client:
            return
        server.receive_data(to_server, now)
        client.receive_data(to_client, now)


def connected_pair(
    client_kwargs: dict[str, Any] | None = None, server_kwargs: dict[str, Any] | None = None
) -> tuple[ClientSession, ServerSession]:
    client = ClientSession("/", **(client_kwargs or {}))
    server = ServerSession(**(server_kwargs or {}))
    client.connect(0.0)
    pump(client, server)
    (request,) = server.events_received()
    assert isinstance(request, ConnectRequest)
    server.accept("s-1", 0.0)
    pump(client, server)
    (connected,) = client.events_received()
    assert isinstance(connected, Connected)
    return client, server


# -- negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_version", "supported", "expected"),
    [
        (None, ("1.0", "1.1", "1.2"), "1.0"),
        ("1.0", ("1.0", "1.1", "1.2"), "1.0"),
        ("1.1", ("1.0", "1.1", "1.2"), "1.1"),
        ("1.0,1.1,1.2", ("1.0", "1.1", "1.2"), "1.2"),
        ("1.2, 1.1", ("1.0", "1.1", "1.2"), "1.2"),
        ("2.0,1.1", ("1.0", "1.1", "1.2"), "1.1"),
        ("1.0,1.1,1.2", ("1.1",), "1.1"),
        ("2.0", ("1.0", "1.1", "1.2"), None),
        (None, ("1.2",), None),
        ("1.2", ("1.0", "1.1"), None),
    ],
)
def test_version_negotiation(
    accept_version: str | None, supported: tuple[str, ...], expected: str | None
) -> None:
    assert negotiate_version(accept_version, supported) == expected


@pytest.mark.parametrize(
    ("mine", "theirs", "expected"),
    [
        ((0, 0), (1000, 1000), (0, 0)),
        ((1000, 1000), (0, 0), (0, 0)),
        ((1000, 0), (0, 5000), (5000, 0)),
        ((0, 1000), (5000, 0), (0, 5000)),
        ((1000, 2000), (3000, 500), (1000, 3000)),
        ((4000, 4000), (1000, 1000), (4000, 4000)),
    ],
)
def test_heartbeat_negotiation(
    mine: tuple[int, int], theirs: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert negotiate_heartbeat(mine, theirs) == expected
    # Each side computes the mirror image of the other.
    assert negotiate_heartbeat(theirs, mine) == expected[::-1]


def test_parse_heartbeat() -> None:
    assert parse_heartbeat(None) == (0, 0)
    assert parse_heartbeat("10, 20") == (10, 20)
    for bad in ("1", "a,b", "-1,0", "1,2,3", ""):
        with pytest.raises(StompProtocolError, match="invalid heart-beat"):
            parse_heartbeat(bad)


def test_versions_must_be_known() -> None:
    with pytest.raises(ValueError):
        ServerSession(versions=())
    with pytest.raises(ValueError):
        ClientSession(versions=("1.2", "2.0"))


# -- server: connecting ------------------------------------------------------------------


def test_connect_request_and_connected_frame() -> None:
    server = ServerSession(heartbeat=(5000, 10000), server="fullduplex/0.1")
    data = connect_frame(
        ("accept-version", "1.1,1.2"),
        ("host", "vh"),
        ("login", "bob"),
        ("passcode", "a:b"),
        ("heart-beat", "1000,2000"),
    )
    server.receive_data(data, 1.0)
    (request,) = server.events_received()
    assert isinstance(request, ConnectRequest)
    assert request == ConnectRequest(
        version="1.2",
        host="vh",
        login="bob",
        passcode="a:b",
        heartbeat=(1000, 2000),
        headers=request.headers,
    )
    assert server.state is State.CONNECTING
    assert server.data_to_send() == []
    assert server.tick(1.0) is None
    server.accept("sess-7", 1.0, headers=[("x-extra", "1")])
    assert server.state.name == "CONNECTED"  # mypy keeps the narrowed state
    assert (server.host, server.login, server.session_id) == ("vh", "bob", "sess-7")
    (connected,) = frames_out(server)
    assert connected.headers == [
        ("version", "1.2"),
        ("heart-beat", "5000,10000"),
        ("session", "sess-7"),
        ("server", "fullduplex/0.1"),
        ("x-extra", "1"),
    ]
    # Server sends every max(5000, 2000) ms, expects data every max(10000, 1000) ms.
    assert (server.send_interval, server.receive_interval) == (5.0, 10.0)


def test_stomp_command_and_no_server_header() -> None:
    server = ServerSession(server=None)
    server.receive_data(connect_frame(("accept-version", "1.2"), command="STOMP"), 0.0)
    (request,) = server.events_received()
    assert isinstance(request, ConnectRequest)
    assert request.heartbeat == (0, 0)
    server.accept("s", 0.0)
    (connected,) = frames_out(server)
    assert connected.get("server") is None


def test_unsupported_version_answers_with_supported_ones() -> None:
    server = ServerSession()
    server.receive_data(connect_frame(("accept-version", "2.0,3.1")), 0.0)
    error = error_of(server)
    assert error.get("version") == "1.0,1.1,1.2"
    assert error.get("message") == "unsupported protocol version"
    assert b"1.0 1.1 1.2" in error.body
    (close,) = server.events_received()
    assert isinstance(close, Close)
    assert close.error is not None and close.error.code == "STOMP_VERSION"


def test_missing_accept_version_means_1_0() -> None:
    server = ServerSession()
    server.receive_data(connect_frame(("login", "x")), 0.0)
    (request,) = server.events_received()
    assert isinstance(request, ConnectRequest)
    assert request.version == "1.0"
    assert request.host is None


def test_bad_heartbeat_header_is_an_error() -> None:
    server = ServerSession()
    server.receive_data(connect_frame(("heart-beat", "soon")), 0.0)
    assert error_of(server).get("message") == "invalid heart-beat header"


def test_reject() -> None:
    server = ServerSession()
    server.receive_data(connect_frame(("accept-version", "1.2")), 0.0)
    server.events_received()
    server.reject("access refused", "bad login or passcode")
    error = error_of(server)
    assert error.get("message") == "access refused"
    assert error.body == b"bad login or passcode"
    (close,) = server.events_received()
    assert isinstance(close, Close) and close.error is not None
    assert close.error.code == "STOMP_CONNECT_REJECTED"


def test_accept_and_reject_need_a_pending_connect() -> None:
    server = ServerSession()
    with pytest.raises(InvalidState):
        server.accept("s", 0.0)
    with pytest.raises(InvalidState):
        server.reject("no")


def test_frames_behind_connect_wait_for_accept_and_use_the_negotiated_version() -> None:
    server = ServerSession()
    data = connect_frame(("accept-version", "1.0")) + b"SEND\ndestination:/q/a\\cb\n\nhi\x00"
    server.receive_data(data, 0.0)
    assert [type(e) for e in server.events_received()] == [ConnectRequest]
    server.accept("s", 0.0)
    (send,) = server.events_received()
    assert isinstance(send, Send)
    # 1.0 has no escaping: the backslash stays.
    assert send.destination == "/q/a\\cb"


def test_too_much_data_before_connected() -> None:
    server = ServerSession(max_frame_size=100)
    server.receive_data(connect_frame(("accept-version", "1.2")), 0.0)
    server.receive_data(b"SEND\n" + b"x" * 200, 0.0)
    assert error_of(server).get("message") == "too much data before CONNECTED"


# -- server: frame validation ------------------------------------------------------------


def test_frames_before_connect_are_errors() -> None:
    server = ServerSession()
    server.receive_data(encode(Frame("SEND", [("destination", "/q"), ("receipt", "r1")])), 0.0)
    error = error_of(server)
    assert error.get("message") == "unexpected frame"
    assert error.get("receipt-id") == "r1"
    assert b"DISCONNECTED" in error.body


@pytest.mark.parametrize(
    ("command", "message"),
    [("FOO", "unknown command"), ("CONNECT", "unexpected frame"), ("MESSAGE", "unexpected frame")],
)
def test_unknown_and_misplaced_commands(command: str, message: str) -> None:
    server = connected_server()
    feed(server, Frame(command, [("destination", "/q"), ("message-id", "1"), ("id", "1")]))
    assert error_of(server).get("message") == message


@pytest.mark.parametrize(
    ("version", "command", "headers", "missing"),
    [
        ("1.2", "SEND", [], "destination"),
        ("1.2", "SEND", [("destination", "")], "destination"),
        ("1.0", "SEND", [], "destination"),
        ("1.2", "SUBSCRIBE", [("destination", "/q")], "id"),
        ("1.1", "SUBSCRIBE", [("id", "1")], "destination"),
        ("1.0", "SUBSCRIBE", [("id", "1")], "destination"),
        ("1.2", "UNSUBSCRIBE", [("destination", "/q")], "id"),
        ("1.1", "UNSUBSCRIBE", [], "id"),
        ("1.0", "UNSUBSCRIBE", [], "id"),
        ("1.2", "ACK", [("message-id", "1"), ("subscription", "1")], "id"),
        ("1.1", "ACK", [("id", "1"), ("subscription", "1")], "message-id"),
        ("1.1", "ACK", [("message-id", "1")], "subscription"),
        ("1.0", "ACK", [], "message-id"),
        ("1.2", "NACK", [], "id"),
        ("1.1", "NACK", [("message-id", "1")], "subscription"),
        ("1.2", "BEGIN", [], "transaction"),
        ("1.2", "COMMIT", [], "transaction"),
        ("1.0", "ABORT", [], "transaction"),
    ],
)
def test_required_headers(
    version: str, command: str, headers: list[tuple[str, str]], missing: str
) -> None:
    server = connected_server(version)
    (close,) = feed(server, Frame(command, [*headers, ("receipt", "r-9")]))
    error = error_of(server)
    assert error.get("message") == f"missing {missing} header"
    assert error.get("receipt-id") == "r-9"
    assert error.get("content-type") == "text/plain"
    assert missing.encode() in error.body
    assert isinstance(close, Close)
    assert isinstance(close.error, StompProtocolError)


def test_nack_does_not_exist_in_1_0() -> None:
    server = connected_server("1.0")
    feed(server, Frame("NACK", [("message-id", "1")]))
    error = error_of(server)
    assert error.get("message") == "unknown command"
    assert b"STOMP 1.0" in error.body


def test_only_send_may_carry_a_body() -> None:
    server = connected_server()
    feed(server, Frame("BEGIN", [("transaction", "t")], b"oops"))
    assert error_of(server).get("message") == "unexpected body"


@pytest.mark.parametrize(("version", "ack"), [("1.2", "sometimes"), ("1.0", "client-individual")])
def test_invalid_ack_mode(version: str, ack: str) -> None:
    server = connected_server(version)
    feed(server, Frame("SUBSCRIBE", [("destination", "/q"), ("id", "1"), ("ack", ack)]))
    assert error_of(server).get("message") == "invalid ack mode"


def test_malformed_bytes_close_with_error() -> None:
    server = connected_server()
    server.receive_data(b"SEND\nno colon here\n\n\x00", 0.0)
    error = error_of(server)
    assert error.get("message") == "malformed header"
    assert error.get("receipt-id") is None
    server.receive_data(b"SEND\n\n\x00", 0.0)
    assert server.data_to_send() == []
    assert [type(e) for e in server.events_received()] == [Close]


# -- server: events, receipts, ordering --------------------------------------------------


def test_events_in_order() -> None:
    server = connected_server()
    events = feed(
        server,
        Frame("SUBSCRIBE", [("destination", "/queue/a"), ("id", "0"), ("receipt", "r1")]),
        Frame("SEND", [("destination", "/queue/a"), ("transaction", "t"), ("k", "a:b")], b"x"),
        Frame("ACK", [("id", "a-1"), ("transaction", "t")]),
        Frame("NACK", [("id", "a-2")]),
        Frame("BEGIN", [("transaction", "t")]),
        Frame("COMMIT", [("transaction", "t")]),
        Frame("ABORT", [("transaction", "u"), ("receipt", "r2")]),
        Frame("UNSUBSCRIBE", [("id", "0")]),
    )
    assert events == [
        Subscribe("0", "/queue/a", "auto", events[0].headers, "r1"),  # type: ignore[union-attr]
        Send(
            "/queue/a",
            b"x",
            [
                ("destination", "/queue/a"),
                ("transaction", "t"),
                ("k", "a:b"),
                ("content-length", "1"),
            ],
            "t",
        ),
        Ack("a-1", None, "t"),
        Nack("a-2"),
        Begin("t"),
        Commit("t"),
        Abort("u", "r2"),
        Unsubscribe("0"),
    ]


def test_1_1_and_1_0_ack_fields() -> None:
    server = connected_server("1.1")
    (ack,) = feed(server, Frame("ACK", [("message-id", "m-1"), ("subscription", "s")]))
    assert ack == Ack("m-1", "s")
    (nack,) = feed(server, Frame("NACK", [("message-id", "m-2"), ("subscription", "s")]))
    assert nack == Nack("m-2", "s")
    server = connected_server("1.0")
    (ack,) = feed(server, Frame("ACK", [("message-id", "m-1")]))
    assert ack == Ack("m-1")


def test_1_0_subscription_ids_default_to_the_destination() -> None:
    server = connected_server("1.0")
    subscribe, by_destination, by_id = feed(
        server,
        Frame("SUBSCRIBE", [("destination", "/topic/t")]),
        Frame("UNSUBSCRIBE", [("destination", "/topic/t")]),
        Frame("UNSUBSCRIBE", [("id", "x")]),
    )
    assert isinstance(subscribe, Subscribe)
    assert (subscribe.id, subscribe.ack) == ("/topic/t", "auto")
    assert by_destination == Unsubscribe("/topic/t")
    assert by_id == Unsubscribe("x")


def test_receipts_are_sent_on_request() -> None:
    server = connected_server()
    server.send_receipt("r-1")
    (receipt,) = frames_out(server)
    assert receipt == Frame("RECEIPT", [("receipt-id", "r-1")])


def test_disconnect_lets_earlier_receipts_go_first() -> None:
    server = connected_server()
    events = feed(
        server,
        Frame("SEND", [("destination", "/q"), ("receipt", "r-1")]),
        Frame("DISCONNECT", [("receipt", "bye")]),
        Frame("SEND", [("destination", "/q")]),
    )
    assert [type(e) for e in events] == [Send, Disconnect]
    assert events[1] == Disconnect("bye")
    assert server.state is State.DISCONNECTING
    assert server.data_to_send() == []
    # The layer above handles the events in order...
    server.deliver(b"MESSAGE\n\n\x00")  # no more MESSAGEs after DISCONNECT
    server.send_receipt("r-1")
    server.send_receipt("bye")
    server.close("client disconnected")
    assert frames_out(server) == [
        Frame("RECEIPT", [("receipt-id", "r-1")]),
        Frame("RECEIPT", [("receipt-id", "bye")]),
    ]
    assert server.events_received() == [Close("client disconnected")]
    assert server.closed
    server.close()
    server.send_receipt("late")
    assert server.data_to_send() == []
    assert server.events_received() == []


def test_disconnect_without_receipt() -> None:
    server = connected_server()
    assert feed(server, Frame("DISCONNECT")) == [Disconnect(None)]
    assert server.data_to_send() == []


def test_send_error_from_the_layer_above() -> None:
    server = connected_server()
    error = StompProtocolError("no such queue", "the queue\nis gone", headers=[("x", "1")])
    server.send_error(error, receipt="r-3")
    frame = error_of(server)
    assert frame.headers == [
        ("message", "no such queue"),
        ("content-type", "text/plain"),
        ("receipt-id", "r-3"),
        ("x", "1"),
        ("content-length", "17"),
    ]
    server.send_error(error)
    assert server.data_to_send() == []


def test_error_message_header_is_one_line() -> None:
    server = connected_server("1.0")
    server.send_error(StompProtocolError("two\nlines"))
    assert error_of(server).get("message") == "two lines"


def test_deliver_only_when_connected() -> None:
    server = ServerSession()
    server.deliver(b"MESSAGE\n\n\x00")
    assert server.data_to_send() == []
    server = connected_server()
    server.deliver(b"MESSAGE\n\n\x00")
    assert server.data_to_send() == [b"MESSAGE\n\n\x00"]


def test_eof_closes_once() -> None:
    server = connected_server()
    server.receive_eof()
    server.receive_eof()
    assert server.events_received() == [Close("connection closed by peer")]
    assert server.state is State.CLOSED


# -- heart-beats --------------------------------------------------------------------------


def heartbeat_server(client_heartbeat: str, server_heartbeat: tuple[int, int]) -> ServerSession:
    server = ServerSession(heartbeat=server_heartbeat)
    server.receive_data(
        connect_frame(("accept-version", "1.2"), ("heart-beat", client_heartbeat)), 0.0
    )
    server.events_received()
    server.accept("s", 0.0)
    server.data_to_send()
    return server


def test_no_heartbeats_means_no_deadline() -> None:
    server = heartbeat_server("0,0", (1000, 1000))
    assert server.tick(100.0) is None
    assert server.data_to_send() == []


def test_heartbeats_are_sent_when_idle() -> None:
    server = heartbeat_server("0,1000", (1000, 0))
    assert server.send_interval == 1.0 and server.receive_interval == 0.0
    assert server.tick(0.4) == pytest.approx(0.9)
    assert server.data_to_send() == []
    assert server.tick(1.0) == pytest.approx(1.5)
    assert server.data_to_send() == [b"\n"]
    assert server.tick(1.5) == pytest.approx(2.0)
    assert server.data_to_send() == []


def test_outgoing_data_postpones_heartbeats() -> None:
    server = heartbeat_server("0,1000", (1000, 0))
    server.tick(0.5)
    server.deliver(b"MESSAGE\n\n\x00")  # somewhere in (0.5, 1.0]
    server.data_to_send()
    # Assumed sent at 0.5 (the previous tick): nothing due until 1.5.
    assert server.tick(1.0) == pytest.approx(1.5)
    assert server.data_to_send() == []
    assert server.tick(1.5) == pytest.approx(2.0)
    assert server.data_to_send() == [b"\n"]


def test_silent_peer_is_declared_dead_after_the_grace_period() -> None:
    server = heartbeat_server("1000,0", (0, 1000))
    # 1.0 s interval × 1.5 + 0.5 s slack = 2.0 s.
    assert server.tick(0.0) == pytest.approx(2.0)
    server.receive_data(b"\n", 1.5)
    assert server.events_received() == []
    assert server.tick(3.4) == pytest.approx(3.5)
    assert not server.closed
    assert server.tick(3.5) is None
    assert server.closed
    (close,) = server.events_received()
    assert isinstance(close, Close) and "heart-beat" in close.reason
    server.receive_data(b"\n", 4.0)
    assert server.events_received() == []


def test_grace_and_slack_are_configurable() -> None:
    server = ServerSession(heartbeat=(0, 1000), heartbeat_grace=2.0, heartbeat_slack=0.0)
    server.receive_data(connect_frame(("heart-beat", "1000,0")), 0.0)
    server.accept("s", 0.0)
    assert server.tick(0.0) == pytest.approx(2.0)


def test_empty_data_is_not_liveness() -> None:
    server = heartbeat_server("1000,0", (0, 1000))
    server.receive_data(b"", 1.9)
    assert server.tick(2.0) is None
    assert server.closed


# -- client ------------------------------------------------------------------------------


def test_client_connect_frame() -> None:
    client = ClientSession(
        "vh",
        login="u",
        passcode="p:w",
        heartbeat=(100, 200),
        headers=[("client-id", "c")],
        versions=("1.1", "1.2"),
    )
    client.connect(0.0)
    (frame,) = frames_out(client)
    assert frame == Frame(
        "CONNECT",
        [
            ("accept-version", "1.1,1.2"),
            ("host", "vh"),
            ("login", "u"),
            ("passcode", "p:w"),
            ("heart-beat", "100,200"),
            ("client-id", "c"),
        ],
    )
    assert client.state is State.CONNECTING
    with pytest.raises(InvalidState):
        client.connect(0.0)


def test_client_stomp_command_and_minimal_headers() -> None:
    client = ClientSession(command="STOMP")
    client.connect(0.0)
    (frame,) = frames_out(client)
    assert frame == Frame("STOMP", [("accept-version", "1.0,1.1,1.2"), ("heart-beat", "0,0")])
    with pytest.raises(ValueError):
        ClientSession(command="HELLO")


def test_client_server_pair_end_to_end() -> None:
    client, server = connected_pair({"heartbeat": (1000, 4000)}, {"heartbeat": (2000, 3000)})
    assert client.version == server.version == "1.2"
    assert (client.session_id, client.server) == ("s-1", "fullduplex")
    assert (client.send_interval, client.receive_interval) == (3.0, 4.0)
    assert (server.send_interval, server.receive_interval) == (4.0, 3.0)
    client.subscribe("/queue/a", "0", ack="client-individual", receipt="r1")
    client.send(
        "/queue/a",
        b"\x00hi",
        headers=[("k", "a:b\nc")],
        content_type="text/plain",
        transaction="t",
        receipt="r2",
    )
    pump(client, server)
    subscribe, send = server.events_received()
    assert subscribe == Subscribe("0", "/queue/a", "client-individual", subscribe.headers, "r1")  # type: ignore[union-attr]
    assert isinstance(send, Send)
    assert (send.body, send.transaction, send.receipt) == (b"\x00hi", "t", "r2")
    assert send.headers[:3] == [
        ("destination", "/queue/a"),
        ("content-type", "text/plain"),
        ("k", "a:b\nc"),
    ]
    server.send_receipt("r1")
    server.deliver(
        encode(
            Frame(
                "MESSAGE",
                [
                    ("subscription", "0"),
                    ("ack", "a-1"),
                    ("destination", "/queue/a"),
                    ("message-id", "m-1"),
                ],
                b"hi",
            )
        )
    )
    pump(client, server)
    receipt, message = client.events_received()
    assert receipt == Receipt("r1")
    assert isinstance(message, Message)
    assert (message.destination, message.message_id, message.subscription, message.ack) == (
        "/queue/a",
        "m-1",
        "0",
        "a-1",
    )
    client.ack(message, transaction="t", receipt="r3")
    client.nack(message)
    client.begin("t", receipt="r4")
    client.commit("t")
    client.abort("u")
    client.unsubscribe("0", receipt="r5")
    pump(client, server)
    assert server.events_received() == [
        Ack("a-1", None, "t", "r3"),
        Nack("a-1"),
        Begin("t", "r4"),
        Commit("t"),
        Abort("u"),
        Unsubscribe("0", "r5"),
    ]
    client.disconnect(receipt="bye")
    assert client.state is State.DISCONNECTING
    pump(client, server)
    (disconnect,) = server.events_received()
    assert disconnect == Disconnect("bye")
    server.send_receipt("bye")
    server.close()
    pump(client, server)
    assert client.events_received() == [Receipt("bye"), Close("disconnected")]
    assert client.closed and server.closed


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_client_ack_headers_before_1_2(version: str) -> None:
    client, _server = connected_pair({"versions": (version,)}, {"versions": (version,)})
    message = Message("/queue/a", "m-1", "0", None, b"", [])
    client.ack(message)
    (frame,) = frames_out(client, version)
    assert frame == Frame("ACK", [("message-id", "m-1"), ("subscription", "0")])
    client.ack(Message("/queue/a", "m-2", None, None, b"", []))
    (frame,) = frames_out(client, version)
    assert frame == Frame("ACK", [("message-id", "m-2")])
    if version == "1.0":
        with pytest.raises(ValueError):
            client.nack(message)
        with pytest.raises(ValueError):
            client.subscribe("/q", "1", ack="client-individual")


def test_client_ack_needs_an_ack_header_in_1_2() -> None:
    client, _ = connected_pair()
    with pytest.raises(ValueError, match="no ack header"):
        client.ack(Message("/queue/a", "m-1", "0", None, b"", []))


def test_client_methods_need_a_connection() -> None:
    client = ClientSession()
    with pytest.raises(InvalidState):
        client.send("/q")
    with pytest.raises(InvalidState):
        client.disconnect()


def test_client_disconnect_without_receipt_closes_at_once() -> None:
    client, _ = connected_pair()
    client.disconnect()
    assert client.events_received() == [Close("disconnected")]
    assert frames_out(client) == [Frame("DISCONNECT")]


def test_client_in_disconnecting_waits_for_its_own_receipt() -> None:
    client, server = connected_pair()
    client.send("/q", receipt="r-1")
    client.disconnect(receipt="r-2")
    server.receive_data(b"".join(client.data_to_send()), 0.0)
    server.events_received()
    server.send_receipt("r-1")
    client.receive_data(b"".join(server.data_to_send()), 0.0)
    message = Frame("MESSAGE", [("destination", "/q"), ("message-id", "1"), ("subscription", "0")])
    client.receive_data(encode(message), 0.0)
    server.send_receipt("r-2")
    client.receive_data(b"".join(server.data_to_send()), 0.0)
    events = client.events_received()
    assert [type(e) for e in events] == [Receipt, Message, Receipt, Close]


def test_client_connected_defaults_to_1_0() -> None:
    client = ClientSession()
    client.connect(0.0)
    assert feed(client, Frame("CONNECTED")) == [Connected("1.0", None, None, (0, 0), [])]
    assert client.version == "1.0"
    # The parser now reads 1.0: no unescaping.
    (message,) = feed(client, Frame("MESSAGE", [("destination", "/q\\c"), ("message-id", "1")]))
    assert isinstance(message, Message)
    assert message.destination == "/q\\c"
    assert message.subscription is None


def test_client_refuses_a_version_it_did_not_offer() -> None:
    client = ClientSession(versions=("1.2",))
    client.connect(0.0)
    client.data_to_send()
    (close,) = feed(client, Frame("CONNECTED", [("version", "1.1")]))
    assert isinstance(close, Close) and close.reason == "unsupported protocol version"
    # A client never answers with ERROR.
    assert client.data_to_send() == []


def test_client_error_frame() -> None:
    client = ClientSession()
    client.connect(0.0)
    events = feed(client, Frame("ERROR", [("message", "bad login"), ("receipt-id", "r")], b"why"))
    assert events == [
        Error("bad login", b"why", events[0].headers, "r"),  # type: ignore[union-attr]
        Close("server error: bad login"),
    ]
    assert client.closed


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (Frame("SEND", [("destination", "/q")]), "unknown command"),
        (
            Frame("MESSAGE", [("destination", "/q"), ("message-id", "1")]),
            "missing subscription header",
        ),
        (Frame("RECEIPT"), "missing receipt-id header"),
        (Frame("CONNECTED"), "unexpected frame"),
    ],
)
def test_client_closes_on_bad_server_frames(frame: Frame, reason: str) -> None:
    client, _ = connected_pair()
    (close,) = feed(client, frame)
    assert close == Close(reason, close.error)  # type: ignore[union-attr]


def test_client_receiving_before_connect_closes() -> None:
    client = ClientSession()
    (close,) = feed(client, Frame("CONNECTED"))
    assert isinstance(close, Close) and close.reason == "unexpected frame"


def test_client_heartbeats_and_timeout() -> None:
    client, _server = connected_pair({"heartbeat": (1000, 1000)}, {"heartbeat": (1000, 1000)})
    assert client.tick(1.0) == pytest.approx(1.5)
    assert client.data_to_send() == [b"\n"]
    assert client.tick(3.0) is None
    assert client.events_received() == [Close("heart-beat timeout: no data received from the peer")]
