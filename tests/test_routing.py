"""``fullduplex.routing.Router``: WebSocket endpoints, HTTP routes and static files on one port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import fullduplex
from fullduplex import Connection, InvalidStatus
from fullduplex.http import json_response, response
from fullduplex.protocol.handshake import Request
from fullduplex.routing import Router

TIMEOUT = 5.0


async def wait(awaitable: Awaitable[Any], timeout: float = TIMEOUT) -> Any:
    return await asyncio.wait_for(asyncio.ensure_future(awaitable), timeout)


async def echo(conn: Connection) -> None:
    async for message in conn:
        await conn.send(message)


async def shout(conn: Connection) -> None:
    async for message in conn:
        assert isinstance(message, str)
        await conn.send(message.upper())


async def whoami(conn: Connection) -> None:
    assert conn.request is not None
    await conn.send(f"{conn.request.path} {conn.subprotocol}")


async def plain(port: int, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP request; (status, headers with lower-case names, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = await wait(reader.read())
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers, body


@pytest.fixture
def web(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<h1>app</h1>")
    (tmp_path / "app.js").write_text("start()")
    return tmp_path


def make_router(web: Path) -> Router:
    router = Router()
    router.websocket("/echo", echo)
    router.websocket("/shout", shout)
    router.websocket("/who", whoami, subprotocols=["v2", "v1"])
    router.http("/healthz", lambda request: response(200, "OK\n"))

    async def stats(request: Request) -> Any:
        await asyncio.sleep(0)
        return json_response(200, {"path": request.path})

    router.http("/stats", stats)
    router.static("/", web)
    return router


@asynccontextmanager
async def routed(web: Path, **kwargs: Any) -> AsyncIterator[fullduplex.Server]:
    router = make_router(web)
    async with fullduplex.serve(
        router.handler,
        "127.0.0.1",
        0,
        process_request=router.process_request,
        select_subprotocol=router.select_subprotocol,
        **kwargs,
    ) as server:
        yield server


def url(server: fullduplex.Server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def test_websocket_endpoints_by_path(web: Path) -> None:
    async with routed(web) as server:
        async with fullduplex.connect(url(server, "/echo")) as conn:
            await conn.send("hello")
            assert await wait(conn.recv()) == "hello"
        async with fullduplex.connect(url(server, "/shout?loud=1")) as conn:
            await conn.send("hello")
            assert await wait(conn.recv()) == "HELLO"


async def test_endpoint_subprotocols_are_chosen_per_path(web: Path) -> None:
    async with routed(web) as server:
        async with fullduplex.connect(url(server, "/who"), subprotocols=["v1", "v2"]) as conn:
            assert conn.subprotocol == "v2"  # the endpoint's preference
            assert await wait(conn.recv()) == "/who v2"
        async with fullduplex.connect(url(server, "/who"), subprotocols=["v0"]) as conn:
            assert conn.subprotocol is None
            assert await wait(conn.recv()) == "/who None"
        # /echo declares no subprotocols: none is chosen.
        async with fullduplex.connect(url(server, "/echo"), subprotocols=["v2"]) as conn:
            assert conn.subprotocol is None


async def test_upgrade_to_an_unknown_path_gets_404(web: Path) -> None:
    async with routed(web) as server:
        for path in ("/nope", "/echo/", "/ECHO", "/index.html", "/healthz"):
            with pytest.raises(InvalidStatus) as info:
                await wait(fullduplex.connect(url(server, path)))
            assert info.value.status == 404, path
        async with fullduplex.connect(url(server, "/echo")):
            pass


async def test_plain_get_to_an_unknown_path_gets_404(web: Path) -> None:
    async with routed(web) as server:
        status, _, body = await plain(server.port, "/nothing-here")
    assert status == 404
    assert b"/nothing-here" in body


async def test_plain_get_on_a_websocket_path_gets_426(web: Path) -> None:
    async with routed(web) as server:
        status, headers, _ = await plain(server.port, "/echo")
    assert status == 426
    assert headers["upgrade"].lower() == "websocket"


async def test_http_routes_sync_and_async(web: Path) -> None:
    async with routed(web) as server:
        status, _, body = await plain(server.port, "/healthz")
        assert (status, body) == (200, b"OK\n")
        status, headers, body = await plain(server.port, "/stats?x=1")
        assert status == 200
        assert headers["content-type"] == "application/json"
        assert body == b'{"path":"/stats?x=1"}'


async def test_static_mount(web: Path) -> None:
    async with routed(web) as server:
        status, headers, body = await plain(server.port, "/")
        assert (status, body) == (200, b"<h1>app</h1>")
        assert headers["content-type"].startswith("text/html")
        status, _, body = await plain(server.port, "/app.js")
        assert (status, body) == (200, b"start()")
        status, _, _ = await plain(server.port, "/../" + web.name + "/app.js")
        assert status == 404


async def test_static_mount_under_a_prefix(web: Path) -> None:
    router = Router()
    router.static("/assets", web)
    router.websocket("/ws", echo)
    async with fullduplex.serve(
        router.handler, "127.0.0.1", 0, process_request=router.process_request
    ) as server:
        assert (await plain(server.port, "/assets/app.js"))[2] == b"start()"
        assert (await plain(server.port, "/assets"))[2] == b"<h1>app</h1>"
        assert (await plain(server.port, "/app.js"))[0] == 404
        async with fullduplex.connect(url(server, "/ws")) as conn:
            await conn.send(b"\x01")
            assert await wait(conn.recv()) == b"\x01"


def test_paths_lists_websocket_endpoints(web: Path) -> None:
    assert make_router(web).paths == ["/echo", "/shout", "/who"]


async def test_handler_without_process_request_closes_unknown_paths_with_1008() -> None:
    router = Router()
    router.websocket("/echo", echo)
    async with fullduplex.serve(router.handler, "127.0.0.1", 0) as server:
        async with fullduplex.connect(url(server, "/elsewhere")) as conn:
            with pytest.raises(fullduplex.ConnectionClosedError) as info:
                await wait(conn.recv())
            assert info.value.code == 1008
