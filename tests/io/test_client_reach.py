"""Client reach: HTTP CONNECT proxies, proxy settings from the environment, Unix sockets."""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import fullduplex
from fullduplex.client import _proxy_for
from fullduplex.errors import InvalidResponse, InvalidURI
from fullduplex.io.client import parse_uri
from support import running, url, wait


class Proxy:
    """A minimal HTTP CONNECT proxy on 127.0.0.1 that records what it was asked."""

    def __init__(self, *, refuse: bool = False, credentials: str | None = None) -> None:
        self.refuse = refuse
        self.credentials = credentials
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.requests.append(lines[0])
            auth = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in lines[1:]
                    if line.lower().startswith("proxy-authorization:")
                ),
                None,
            )
            self.authorizations.append(auth)
            expected = (
                None
                if self.credentials is None
                else "Basic " + base64.b64encode(self.credentials.encode()).decode()
            )
            if self.refuse or auth != expected:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                await writer.drain()
                return
            host, port = lines[0].split()[1].rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                finally:
                    dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def proxy_server(**kwargs: object) -> AsyncIterator[Proxy]:
    proxy = Proxy(**kwargs)  # type: ignore[arg-type]
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        await server.wait_closed()


async def test_connect_through_an_explicit_proxy() -> None:
    async with running() as server, proxy_server() as proxy:
        async with fullduplex.connect(url(server), proxy=f"http://127.0.0.1:{proxy.port}") as conn:
            await conn.send("through the tunnel")
            assert await wait(conn.recv()) == "through the tunnel"
        assert proxy.requests == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"]


async def test_proxy_credentials_are_sent_in_proxy_authorization() -> None:
    async with running() as server, proxy_server(credentials="ann:s3cret") as proxy:
        async with fullduplex.connect(
            url(server), proxy=f"http://ann:s3cret@127.0.0.1:{proxy.port}"
        ) as conn:
            await conn.send("ok")
            assert await wait(conn.recv()) == "ok"
    assert proxy.authorizations == ["Basic " + base64.b64encode(b"ann:s3cret").decode()]


async def test_a_refusing_proxy_fails_the_connection_clearly() -> None:
    async with running() as server, proxy_server(refuse=True) as proxy:
        with pytest.raises(InvalidResponse, match="407"):
            await wait(fullduplex.connect(url(server), proxy=f"http://127.0.0.1:{proxy.port}"))


async def test_only_http_proxies_are_supported() -> None:
    async with running() as server:
        with pytest.raises(InvalidURI):
            await wait(fullduplex.connect(url(server), proxy="socks5://127.0.0.1:1080"))


def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("https_proxy", "http://secure-proxy.example:3129")
    monkeypatch.setenv("no_proxy", "internal.example")
    assert _proxy_for(parse_uri("ws://chat.example/")) == "http://proxy.example:3128"
    assert _proxy_for(parse_uri("wss://chat.example/")) == "http://secure-proxy.example:3129"
    assert _proxy_for(parse_uri("ws://internal.example/")) is None
    # Loopback is never proxied, whatever the environment says.
    assert _proxy_for(parse_uri("ws://127.0.0.1:9001/")) is None
    assert _proxy_for(parse_uri("ws://localhost/")) is None
    assert _proxy_for(parse_uri("ws://[::1]/")) is None


async def test_proxy_none_connects_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("all_proxy", "http://127.0.0.1:9/")  # would fail if used
    async with running() as server:
        async with fullduplex.connect(url(server), proxy=None) as conn:
            await conn.send("direct")
            assert await wait(conn.recv()) == "direct"


async def test_serve_and_connect_over_a_unix_socket() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "ws.sock")
        seen: list[str] = []

        async def handler(conn: fullduplex.Connection) -> None:
            assert conn.request is not None
            seen.append(conn.request.path)
            async for message in conn:
                await conn.send(message)

        async with fullduplex.serve(handler, unix=path):
            async with fullduplex.connect("ws://localhost/over/unix?x=1", unix=path) as conn:
                await conn.send(b"\x00unix")
                assert await wait(conn.recv()) == b"\x00unix"
        assert seen == ["/over/unix?x=1"]
