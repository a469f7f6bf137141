"""The opening handshake as the server sees it. RFC 6455 §4.1, §4.2, §4.4."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fullduplex

from .rawclient import TEXT, accept_key, open_tcp, raw_client, upgrade_headers
from .support import assert_echo, echo_server


def _without(headers: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() != name.lower()]


def _replace(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [*_without(headers, name), (name, value)]


async def _answer(port: int, request: bytes) -> Any:
    """Send a raw request and return the response head; the server must answer it."""
    peer = await open_tcp(port)
    try:
        await peer.send(request)
        return await peer.read_http()
    finally:
        await peer.aclose()


def _request(headers: list[tuple[str, str]], start_line: str = "GET / HTTP/1.1") -> bytes:
    return ("\r\n".join([start_line, *(f"{k}: {v}" for k, v in headers), "", ""])).encode()


async def test_accept_key_of_the_rfc_example() -> None:
    # §1.3: key "dGhlIHNhbXBsZSBub25jZQ==" gives "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    async with echo_server() as server:
        headers = upgrade_headers(server.port, "dGhlIHNhbXBsZSBub25jZQ==")
        response = await _answer(server.port, _request(headers))
        assert response.status == 101, response
        assert response.get("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert "websocket" in response.tokens("Upgrade")
        assert "upgrade" in response.tokens("Connection")
        assert response.get("Sec-WebSocket-Protocol") is None
        assert response.get("Sec-WebSocket-Extensions") is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Connection", "keep-alive, Upgrade"),
        ("Connection", "upgrade"),
        ("Upgrade", "WebSocket"),
        ("upgrade", "websocket"),  # header names are case-insensitive
        ("SEC-WEBSOCKET-VERSION", "13"),
    ],
)
async def test_lenient_spellings_are_accepted(name: str, value: str) -> None:
    async with echo_server() as server:
        headers = _replace(upgrade_headers(server.port), name, value)
        async with raw_client(server.port, headers=headers) as peer:
            await assert_echo(peer)


async def test_version_8_gets_426_with_the_supported_version() -> None:
    # §4.4: "the server MUST abort the WebSocket handshake ... and instead send an
    # appropriate HTTP error code (such as 426 Upgrade Required) and a
    # |Sec-WebSocket-Version| header field indicating the version(s) the server is
    # capable of understanding."
    async with echo_server() as server:
        headers = _replace(upgrade_headers(server.port), "Sec-WebSocket-Version", "8")
        response = await _answer(server.port, _request(headers))
        assert response.status == 426, response
        assert "13" in response.tokens("Sec-WebSocket-Version"), response


@pytest.mark.parametrize("header", ["Sec-WebSocket-Key", "Host"])
async def test_missing_required_header_gets_400(header: str) -> None:
    # §4.2.1: missing fields -> "an appropriate error code (such as 400 Bad Request)".
    async with echo_server() as server:
        headers = _without(upgrade_headers(server.port), header)
        response = await _answer(server.port, _request(headers))
        assert response.status == 400, response


@pytest.mark.parametrize("key", ["c2hvcnQ=", "not base64 at all!", "AAAAAAAAAAAAAAAAAAAAAAAA"])
async def test_key_that_is_not_16_base64_bytes_gets_400(key: str) -> None:
    # §4.1: the key is "a randomly selected 16-byte value that has been base64-encoded".
    async with echo_server() as server:
        headers = _replace(upgrade_headers(server.port), "Sec-WebSocket-Key", key)
        response = await _answer(server.port, _request(headers))
        assert response.status == 400, response


async def test_missing_version_is_refused() -> None:
    async with echo_server() as server:
        headers = _without(upgrade_headers(server.port), "Sec-WebSocket-Version")
        response = await _answer(server.port, _request(headers))
        assert response.status in (400, 426), response


@pytest.mark.parametrize(
    "headers",
    [
        [("Host", "127.0.0.1")],
        [("Host", "127.0.0.1"), ("Connection", "Upgrade"), ("Upgrade", "h2c")],
    ],
    ids=["plain-get", "other-upgrade"],
)
async def test_plain_get_without_websocket_upgrade_is_refused(
    headers: list[tuple[str, str]],
) -> None:
    # 426 is the usual answer; §4.2.1 also allows 400. RFC 7231 §6.5.15: "The server
    # MUST send an Upgrade header field in a 426 response".
    async with echo_server() as server:
        response = await _answer(server.port, _request(headers))
        assert response.status in (400, 426), response
        if response.status == 426:
            assert "websocket" in response.tokens("Upgrade"), response


@pytest.mark.parametrize("start_line", ["POST / HTTP/1.1", "GET / HTTP/1.0"])
async def test_wrong_method_or_http_version_is_refused(start_line: str) -> None:
    # §4.1: "The method of the request MUST be GET, and the HTTP version MUST be at
    # least 1.1."
    async with echo_server() as server:
        request = _request(upgrade_headers(server.port), start_line)
        response = await _answer(server.port, request)
        assert 400 <= response.status <= 505, response


async def test_request_line_that_is_not_http_gets_400() -> None:
    async with echo_server() as server:
        response = await _answer(server.port, b"HELLO THERE\r\n\r\n")
        assert response.status == 400, response


async def test_subprotocol_is_chosen_from_the_clients_offer() -> None:
    seen: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def handler(conn: Any) -> None:
        seen.set_result(conn.subprotocol)
        async for message in conn:
            await conn.send(message)

    async with echo_server(handler, subprotocols=["b"]) as server:
        headers = [*upgrade_headers(server.port), ("Sec-WebSocket-Protocol", "a, b")]
        async with raw_client(server.port, headers=headers) as peer:
            await assert_echo(peer, TEXT, b"speaking b")
        assert await asyncio.wait_for(seen, 5) == "b"
        # §4.1: the client fails the connection if the server picks something the
        # client did not offer, so it must be exactly one of the offered values.
        response = await _answer(server.port, _request(headers))
        assert response.status == 101
        assert response.get("Sec-WebSocket-Protocol") == "b"


async def test_subprotocol_offered_in_separate_header_lines() -> None:
    async with echo_server(subprotocols=["b"]) as server:
        headers = [
            *upgrade_headers(server.port),
            ("Sec-WebSocket-Protocol", "a"),
            ("Sec-WebSocket-Protocol", "b"),
        ]
        response = await _answer(server.port, _request(headers))
        assert response.status == 101
        assert response.get("Sec-WebSocket-Protocol") == "b"


async def test_no_subprotocol_header_when_nothing_matches_or_nothing_offered() -> None:
    # §4.2.2: the server either picks one of the client's values or sends no header.
    async with echo_server(subprotocols=["b"]) as server:
        for extra in ([], [("Sec-WebSocket-Protocol", "x, y")]):
            response = await _answer(server.port, _request([*upgrade_headers(server.port), *extra]))
            if response.status == 101:
                assert response.get("Sec-WebSocket-Protocol") is None, response
            else:
                assert extra and 400 <= response.status < 500, response


async def test_our_client_negotiates_the_subprotocol() -> None:
    seen: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def handler(conn: Any) -> None:
        seen.set_result(conn.subprotocol)
        await conn.send(conn.subprotocol)

    async with echo_server(handler, subprotocols=["b"]) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with fullduplex.connect(url, subprotocols=["a", "b"]) as conn:
            assert conn.subprotocol == "b"
            assert await asyncio.wait_for(conn.recv(), 5) == "b"
        assert await asyncio.wait_for(seen, 5) == "b"


async def test_request_path_reaches_the_handler() -> None:
    seen: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def handler(conn: Any) -> None:
        seen.set_result(conn.request.path)

    async with echo_server(handler) as server:
        async with raw_client(server.port, path="/room/42?user=ada") as peer:
            assert await asyncio.wait_for(seen, 5) == "/room/42?user=ada"
            await peer.expect_close(1000)


async def test_request_sent_one_byte_at_a_time() -> None:
    async with echo_server() as server:
        peer = await open_tcp(server.port)
        try:
            key = "dGhlIHNhbXBsZSBub25jZQ=="
            await peer.send(_request(upgrade_headers(server.port, key)), chop=1)
            response = await peer.read_http()
            assert response.status == 101, response
            assert response.get("Sec-WebSocket-Accept") == accept_key(key)
            await assert_echo(peer)
        finally:
            await peer.aclose()


async def test_huge_request_head_is_refused_without_hurting_the_server() -> None:
    async with echo_server() as server:
        headers = [*upgrade_headers(server.port)]
        headers += [(f"X-Filler-{i}", "f" * 1000) for i in range(200)]  # ~200 KB
        peer = await open_tcp(server.port)
        try:
            await peer.send(_request(headers))
            try:
                response = await peer.read_http()
            except (EOFError, ConnectionError):
                pass  # dropping the connection is also a refusal
            else:
                assert response.status in (400, 431), response
        finally:
            await peer.aclose()
        async with raw_client(server.port) as fine:
            await assert_echo(fine)


async def test_silent_connection_is_closed_after_open_timeout() -> None:
    async with echo_server(open_timeout=0.3) as server:
        peer = await open_tcp(server.port)
        try:
            # Nothing sent: within a bounded time the server gives up on us. It may
            # answer something first (e.g. 408); what matters is that TCP closes.
            await asyncio.wait_for(_until_eof(peer), 5)
        finally:
            await peer.aclose()


async def _until_eof(peer: Any) -> None:
    while not peer.at_eof:
        try:
            await peer.read_http()
        except EOFError:
            return
