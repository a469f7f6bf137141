"""The assembled application: HTTP routes, the page, /echo, and the ``serve`` command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import pytest

import fullduplex
from fullduplex.apps.app import build_app
from fullduplex.cli import build_parser
from fullduplex.pubsub import MemoryBackplane

from .support import TIMEOUT, ChatClient, http_get, running


async def test_healthz_reports_the_backplane() -> None:
    async with running() as srv:
        answer = await srv.get("/healthz")
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "application/json"
        body = answer.json()
        assert body["status"] == "ok"
        assert body["backplane"]["kind"] == "memory"
        assert body["backplane"]["healthy"] is True


async def test_healthz_is_503_when_the_backplane_is_down() -> None:
    backplane = MemoryBackplane()
    app = build_app(backplane=backplane)
    await backplane.close()
    answer = app.healthz(None)  # type: ignore[arg-type]
    assert answer.status == 503


async def test_the_page_and_its_assets() -> None:
    async with running() as srv:
        for path, ctype, marker in [
            ("/", "text/html; charset=utf-8", b"<title>fullduplex chat</title>"),
            ("/index.html", "text/html; charset=utf-8", b'<script src="app.js">'),
            ("/app.js", "charset=utf-8", b"new WebSocket("),
            ("/style.css", "text/css; charset=utf-8", b"@media (max-width"),
        ]:
            answer = await srv.get(path)
            assert answer.status == 200, path
            assert answer.headers["Content-Type"].endswith(ctype), answer.headers
            assert marker in answer.body
        # No user data is ever written as HTML.
        script = (await srv.get("/app.js")).body
        assert b"innerHTML" not in script and b"insertAdjacentHTML" not in script


async def test_unknown_paths_are_404_and_endpoints_426() -> None:
    async with running() as srv:
        assert (await srv.get("/nope")).status == 404
        assert (await srv.get("/web/../../etc/passwd")).status == 404
        assert (await srv.get("/chat")).status == 426
        with pytest.raises(fullduplex.InvalidStatus) as caught:
            await fullduplex.connect(srv.url("/nope"))
        assert caught.value.status == 404


async def test_echo_endpoint() -> None:
    async with running() as srv:
        async with fullduplex.connect(srv.url("/echo")) as conn:
            await conn.send("héllo")
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == "héllo"
            await conn.send(b"\x00\xff")
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == b"\x00\xff"
        stats = (await srv.get("/stats")).json()["endpoints"]["echo"]
        assert stats["messages_in"] == stats["messages_out"] == 2
        assert stats["bytes_in"] == stats["bytes_out"] == len("héllo".encode()) + 2
        assert stats["connections_total"] == 1


async def test_stats_count_connections_messages_and_bytes() -> None:
    async with running() as srv:
        before = (await srv.get("/stats")).json()
        assert before["endpoints"]["chat"]["connections"] == 0
        assert before["backplane"]["kind"] == "memory"
        a = await srv.joined("lobby", "ada")
        b = await srv.joined("lobby", "bob")
        await a.say("hi")
        await a.expect("presence")
        await a.expect("message")
        await b.expect("message")
        during = (await srv.get("/stats")).json()
        chat = during["endpoints"]["chat"]
        assert chat["connections"] == 2
        assert chat["connections_total"] == 2
        assert chat["messages_in"] == 3  # two joins, one message
        assert chat["bytes_in"] > 0
        # welcome+joined+presence for ada, the same for bob, bob's presence to ada,
        # and the message to both.
        assert chat["messages_out"] == 9
        assert chat["bytes_out"] > chat["bytes_in"]
        assert during["rooms"] == 1
        assert during["totals"]["connections"] == 2
        await a.close()
        await b.expect("presence", event="leave")
        await b.close()
        for _ in range(100):  # the handler finishes just after the close
            after = (await srv.get("/stats")).json()
            if after["endpoints"]["chat"]["connections"] == 0:
                break
        assert after["endpoints"]["chat"]["connections"] == 0
        assert after["endpoints"]["chat"]["connections_total"] == 2


async def test_stomp_broker_is_mounted() -> None:
    async with running() as srv:
        assert (await srv.get("/stomp")).status == 426
        async with fullduplex.connect(srv.url("/stomp"), subprotocols=["v12.stomp"]) as conn:
            assert conn.subprotocol == "v12.stomp"

            async def frame() -> str:
                while True:
                    data = await asyncio.wait_for(conn.recv(), TIMEOUT)
                    text = data if isinstance(data, str) else data.decode()
                    if text.strip("\r\n"):  # skip heart-beats
                        return text

            await conn.send("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\x00")
            assert (await frame()).startswith("CONNECTED\n")
            await conn.send("SUBSCRIBE\nid:0\ndestination:/topic/news\n\n\x00")
            await conn.send("SEND\ndestination:/topic/news\n\nhello\x00")
            message = await frame()
            assert message.startswith("MESSAGE\n") and message.endswith("\n\nhello\x00")
        stats = (await srv.get("/stats")).json()
        assert stats["endpoints"]["stomp"]["connections_total"] == 1
        assert stats["stomp"]["published"] == 1


async def test_stomp_can_be_left_out() -> None:
    async with running(stomp=False) as srv:
        assert srv.app.stomp is None
        assert (await srv.get("/stomp")).status == 404


def test_serve_command_options() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.backplane) == ("127.0.0.1", 8765, "memory")
    args = build_parser().parse_args(["serve", "--port", "0", "--backplane", "memory"])
    assert args.port == 0


def test_serve_command_refuses_unknown_backplanes() -> None:
    from fullduplex.cli import main

    with pytest.raises(SystemExit, match="unknown backplane"):
        main(["serve", "--port", "0", "--backplane", "carrier-pigeon"])


async def test_serve_command_runs_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fullduplex",
        "serve",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("listening on http://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        page = await http_get(f"http://127.0.0.1:{port}/")
        assert page.status == 200 and b"fullduplex chat" in page.body
        conn = await fullduplex.connect(f"ws://127.0.0.1:{port}/chat")
        assert "welcome" in await asyncio.wait_for(conn.recv(), TIMEOUT)
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(fullduplex.ConnectionClosedOK) as closed:
            await asyncio.wait_for(conn.recv(), TIMEOUT)
        assert closed.value.code == fullduplex.CloseCode.GOING_AWAY
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0
        assert proc.stderr is not None
        errors = await proc.stderr.read()
        assert b"Traceback" not in errors, errors.decode()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def test_serve_app_over_tls() -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with running(ssl=server_context) as srv:
        client = await ChatClient.open(srv.url("/chat", "wss"), ssl=client_context)
        await client.join("secure", "ada")
        await client.close()
