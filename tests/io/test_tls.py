"""``wss://`` with a throw-away certificate authority: echo, verification, host names."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import fullduplex
from fullduplex import Connection

trustme = pytest.importorskip("trustme")

TIMEOUT = 5.0


async def wait(awaitable: Awaitable[Any], timeout: float = TIMEOUT) -> Any:
    return await asyncio.wait_for(asyncio.ensure_future(awaitable), timeout)


async def echo(conn: Connection) -> None:
    async for message in conn:
        await conn.send(message)


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


def server_context(ca: Any, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def client_context(ca: Any) -> ssl.SSLContext:
    context = ssl.create_default_context()  # verification and host name checks on
    ca.configure_trust(context)
    return context


@asynccontextmanager
async def tls_server(ca: Any, *names: str, **kwargs: Any) -> AsyncIterator[fullduplex.Server]:
    context = server_context(ca, *(names or ("127.0.0.1", "localhost")))
    async with fullduplex.serve(echo, "127.0.0.1", 0, ssl=context, **kwargs) as server:
        yield server


async def round_trip(conn: Connection) -> None:
    await conn.send("secret text")
    assert await wait(conn.recv()) == "secret text"
    await conn.send(b"\x00secret bytes")
    assert await wait(conn.recv()) == b"\x00secret bytes"


async def test_wss_echo_with_a_trusted_certificate(ca: Any) -> None:
    async with tls_server(ca) as server:
        for host in ("localhost", "127.0.0.1"):
            async with fullduplex.connect(
                f"wss://{host}:{server.port}/", ssl=client_context(ca)
            ) as conn:
                await round_trip(conn)
                assert conn.protocol is not None and conn.protocol.transport is not None
                ssl_object = conn.protocol.transport.get_extra_info("ssl_object")
                assert ssl_object is not None
                assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
            assert conn.close_code == 1000


async def test_server_side_sees_a_tls_transport(ca: Any) -> None:
    seen: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def handler(conn: Connection) -> None:
        assert conn.protocol is not None and conn.protocol.transport is not None
        seen.set_result(conn.protocol.transport.get_extra_info("ssl_object"))
        await echo(conn)

    context = server_context(ca, "localhost")
    async with fullduplex.serve(handler, "127.0.0.1", 0, ssl=context) as server:
        async with fullduplex.connect(
            f"wss://localhost:{server.port}/", ssl=client_context(ca)
        ) as conn:
            await round_trip(conn)
            assert await wait(seen) is not None


async def test_big_messages_cross_tls_intact(ca: Any) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    async with tls_server(ca, max_size=None) as server:
        async with fullduplex.connect(
            f"wss://localhost:{server.port}/", ssl=client_context(ca), max_size=None
        ) as conn:
            await conn.send(payload)
            assert await wait(conn.recv()) == payload


# A failed TLS handshake currently costs the server close_timeout + 1 s at shutdown
# (see test_failed_tls_handshakes_leave_nothing_behind), hence the short close_timeout
# and the grouping of failures on one server.


async def test_verification_refuses_an_untrusted_ca(ca: Any) -> None:
    other = trustme.CA()
    async with tls_server(ca, close_timeout=0.1) as server:
        url = f"wss://localhost:{server.port}/"
        # No ssl=: the system trust store, which has never heard of this CA.
        with pytest.raises(ssl.SSLCertVerificationError):
            await wait(fullduplex.connect(url))
        with pytest.raises(ssl.SSLCertVerificationError):
            await wait(fullduplex.connect(url, ssl=ssl.create_default_context()))
        with pytest.raises(ssl.SSLCertVerificationError):
            await wait(fullduplex.connect(url, ssl=client_context(other)))
        # The server is unharmed.
        async with fullduplex.connect(url, ssl=client_context(ca)) as conn:
            await round_trip(conn)


async def test_host_name_mismatch_fails_and_server_hostname_overrides(ca: Any) -> None:
    async with tls_server(ca, "ws.example", close_timeout=0.1) as server:
        for host in ("localhost", "127.0.0.1"):
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                await wait(
                    fullduplex.connect(f"wss://{host}:{server.port}/", ssl=client_context(ca))
                )
            assert "match" in str(info.value).lower()
        async with fullduplex.connect(
            f"wss://127.0.0.1:{server.port}/",
            ssl=client_context(ca),
            server_hostname="ws.example",
        ) as conn:
            await round_trip(conn)
        # The override is what gets checked: a wrong one fails.
        with pytest.raises(ssl.SSLCertVerificationError):
            await wait(
                fullduplex.connect(
                    f"wss://127.0.0.1:{server.port}/",
                    ssl=client_context(ca),
                    server_hostname="other.example",
                )
            )


async def test_failed_tls_handshakes_leave_nothing_behind(ca: Any) -> None:
    loop = asyncio.get_running_loop()
    server = await fullduplex.serve(
        echo, "127.0.0.1", 0, ssl=server_context(ca, "localhost"), close_timeout=0.5
    )
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await wait(fullduplex.connect(f"wss://localhost:{server.port}/"))
    finally:
        start = loop.time()
        await wait(server.close())
        elapsed = loop.time() - start
    assert elapsed < 0.4, f"close() took {elapsed:.2f}s with no connection open"


async def test_tls_client_against_a_plain_server_fails_quickly() -> None:
    async with fullduplex.serve(echo, "127.0.0.1", 0) as server:
        with pytest.raises((ssl.SSLError, OSError, fullduplex.HandshakeError)):
            await wait(
                fullduplex.connect(
                    f"wss://localhost:{server.port}/",
                    ssl=ssl.create_default_context(),
                    open_timeout=2,
                )
            )


async def test_plain_client_against_a_tls_server_fails_quickly(ca: Any) -> None:
    async with tls_server(ca, close_timeout=0.1) as server:
        with pytest.raises((fullduplex.HandshakeError, OSError)):
            await wait(fullduplex.connect(f"ws://localhost:{server.port}/", open_timeout=2))
        async with fullduplex.connect(
            f"wss://localhost:{server.port}/", ssl=client_context(ca)
        ) as conn:
            await round_trip(conn)


async def test_graceful_close_over_tls(ca: Any) -> None:
    server = await fullduplex.serve(
        echo, "127.0.0.1", 0, ssl=server_context(ca, "localhost"), close_timeout=1
    )
    port = server.port
    conn = await fullduplex.connect(f"wss://localhost:{port}/", ssl=client_context(ca))
    await round_trip(conn)
    await wait(server.close())
    with pytest.raises(fullduplex.ConnectionClosedOK) as info:
        await wait(conn.recv())
    assert info.value.code == 1001
    await wait(conn.wait_closed())
    # Still known once closed (asyncio's TLS transport forgets them then).
    assert conn.remote_address[:2] == ("127.0.0.1", port)
    assert conn.local_address[0] == "127.0.0.1"
