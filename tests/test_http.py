"""Server hooks and plain HTTP on the WebSocket port (``fullduplex.http``, ``serve`` options)."""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import fullduplex
from fullduplex import Connection, InvalidStatus
from fullduplex.http import (
    StaticFiles,
    basic_auth,
    chain,
    health_check,
    is_upgrade,
    json_response,
    redirect,
    response,
    split_path,
)
from fullduplex.protocol.handshake import Headers, Request
from support import echo, running, wait


def ws_url(server: fullduplex.Server, path: str = "/", userinfo: str = "") -> str:
    return f"ws://{userinfo}127.0.0.1:{server.port}{path}"


async def assert_echoes(server: fullduplex.Server, **kwargs: Any) -> Connection:
    async with fullduplex.connect(ws_url(server), **kwargs) as conn:
        await conn.send("hi")
        assert await wait(conn.recv()) == "hi"
    return conn


async def refused(uri: str, **kwargs: Any) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        await wait(fullduplex.connect(uri, **kwargs))
    return info.value


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


async def http(
    port: int,
    target: str = "/",
    *,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    raw: bytes | None = None,
) -> Reply:
    """Send one plain HTTP/1.1 request and read the answer up to the server's close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if raw is None:
            fields = [("Host", f"127.0.0.1:{port}"), *(headers or [])]
            lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in fields), "", ""]
            raw = "\r\n".join(lines).encode("latin-1")
        writer.write(raw)
        data = await wait(reader.read())
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, data
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, status, _ = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    parsed = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
    reply = Reply(int(status), parsed, body)
    length = reply.get("Content-Length")
    if method != "HEAD" and length is not None:
        assert len(body) == int(length), (length, body)
    return reply


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ------------------------------------------------------------------ basic_auth


async def test_basic_auth_right_credentials_connect_and_name_the_user() -> None:
    users: list[str | None] = []

    async def handler(conn: Connection) -> None:
        users.append(getattr(conn.protocol, "username", None))
        await echo(conn)

    async with running(handler, process_request=basic_auth({"ann": "s3cret"})) as server:
        async with fullduplex.connect(ws_url(server, userinfo="ann:s3cret@")) as conn:
            await conn.send("in")
            assert await wait(conn.recv()) == "in"
        async with fullduplex.connect(
            ws_url(server), additional_headers=[("Authorization", basic("ann", "s3cret"))]
        ):
            pass
    assert users == ["ann", "ann"]


@pytest.mark.parametrize(
    "userinfo",
    ["", "ann:wrong@", "bob:s3cret@", "ann@", "ann:s3cret2@", "ann:@"],
    ids=["missing", "wrong-password", "unknown-user", "no-password", "longer", "empty"],
)
async def test_basic_auth_refuses_missing_or_wrong_credentials_with_401(userinfo: str) -> None:
    async with running(process_request=basic_auth({"ann": "s3cret"}, realm="lab")) as server:
        exc = await refused(ws_url(server, userinfo=userinfo))
    assert exc.status == 401
    challenge = exc.response.headers["WWW-Authenticate"]
    assert challenge.startswith("Basic ") and 'realm="lab"' in challenge


@pytest.mark.parametrize(
    "authorization",
    ["Basic !!!not-base64!!!", "Basic " + base64.b64encode(b"\xff\xfe:x").decode()],
    ids=["not-base64", "not-utf8"],
)
async def test_basic_auth_malformed_credentials_get_400(authorization: str) -> None:
    async with running(process_request=basic_auth({"ann": "s3cret"})) as server:
        exc = await refused(ws_url(server), additional_headers=[("Authorization", authorization)])
    assert exc.status == 400


async def test_basic_auth_other_scheme_gets_401() -> None:
    async with running(process_request=basic_auth({"ann": "s3cret"})) as server:
        exc = await refused(ws_url(server), additional_headers=[("Authorization", "Bearer xyz")])
    assert exc.status == 401
    assert "WWW-Authenticate" in exc.response.headers


async def test_basic_auth_with_a_check_function() -> None:
    calls: list[tuple[str, str]] = []

    def check(user: str, password: str) -> bool:
        calls.append((user, password))
        return password == user[::-1]

    async with running(process_request=basic_auth(check)) as server:
        await assert_echoes(server, additional_headers=[("Authorization", basic("abc", "cba"))])
        exc = await refused(ws_url(server, userinfo="abc:abc@"))
        assert exc.status == 401
    assert calls == [("abc", "cba"), ("abc", "abc")]


async def test_basic_auth_answers_plain_http_too() -> None:
    async with running(process_request=basic_auth({"ann": "s3cret"})) as server:
        reply = await http(server.port)
    assert reply.status == 401
    assert reply.get("WWW-Authenticate") is not None


# ------------------------------------------------------------------ process_request


async def test_process_request_can_refuse_with_403() -> None:
    def hook(conn: Any, request: Request) -> Any:
        if request.headers.get("X-Token") != "ok":
            return response(403, "Forbidden.\n")
        return None

    async with running(process_request=hook) as server:
        exc = await refused(ws_url(server))
        assert exc.status == 403
        assert exc.response.body == b"Forbidden.\n"
        await assert_echoes(server, additional_headers={"X-Token": "ok"})


async def test_process_request_can_redirect() -> None:
    def hook(conn: Any, request: Request) -> Any:
        if request.path == "/old":
            return redirect("/new")
        return None

    async with running(process_request=hook) as server:
        reply = await http(server.port, "/old")
        assert reply.status == 302
        assert reply.get("Location") == "/new"
        async with fullduplex.connect(ws_url(server, "/new")):
            pass


async def test_client_follows_a_redirect_from_process_request() -> None:
    paths: list[str] = []

    async def handler(conn: Connection) -> None:
        assert conn.request is not None
        paths.append(conn.request.path)
        await echo(conn)

    def hook(conn: Any, request: Request) -> Any:
        return redirect("/new") if request.path == "/old" else None

    async with running(handler, process_request=hook) as server:
        async with fullduplex.connect(ws_url(server, "/old")) as conn:
            await conn.send("moved")
            assert await wait(conn.recv()) == "moved"
    assert paths == ["/new"]


async def test_client_gives_up_on_a_redirect_loop() -> None:
    def hook(conn: Any, request: Request) -> Any:
        return redirect("/a" if request.path == "/b" else "/b")

    async with running(process_request=hook) as server:
        with pytest.raises(fullduplex.HandshakeError):
            await wait(fullduplex.connect(ws_url(server, "/a"), max_redirects=3))


async def test_async_process_request_answers_or_lets_through() -> None:
    seen: list[str] = []

    async def hook(conn: Any, request: Request) -> Any:
        await asyncio.sleep(0)  # a real await: e.g. a token lookup
        seen.append(request.path)
        if request.path == "/private":
            return response(401, "Who are you?\n", headers=[("WWW-Authenticate", "Bearer")])
        return None

    async with running(process_request=hook) as server:
        exc = await refused(ws_url(server, "/private"))
        assert exc.status == 401 and exc.response.body == b"Who are you?\n"
        async with fullduplex.connect(ws_url(server, "/public")) as conn:
            await conn.send("x")
            assert await wait(conn.recv()) == "x"
    assert seen == ["/private", "/public"]


async def test_async_process_request_holds_early_frames_until_it_is_done() -> None:
    release = asyncio.Event()

    async def hook(conn: Any, request: Request) -> Any:
        await release.wait()
        return None

    async with running(process_request=hook) as server:
        task = asyncio.ensure_future(fullduplex.connect(ws_url(server)))
        done, _ = await asyncio.wait([task], timeout=0.1)
        assert not done  # the handshake waits for the hook
        release.set()
        conn = await wait(task)
        await conn.send("after the hook")
        assert await wait(conn.recv()) == "after the hook"
        await conn.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_process_request_raising_gets_500_and_is_logged(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    def sync_hook(conn: Any, request: Request) -> Any:
        raise RuntimeError("hook bug")

    async def async_hook(conn: Any, request: Request) -> Any:
        raise RuntimeError("hook bug")

    caplog.set_level(logging.ERROR, logger="fullduplex")
    hook = sync_hook if kind == "sync" else async_hook
    async with running(process_request=hook) as server:
        exc = await refused(ws_url(server))
    assert exc.status == 500
    assert "hook bug" in caplog.text


async def test_chain_picks_the_first_answer() -> None:
    hook = chain(health_check("/healthz"), lambda conn, req: response(418, "teapot"))
    async with running(process_request=hook) as server:
        assert (await http(server.port, "/healthz")).status == 200
        assert (await http(server.port, "/other")).status == 418


async def test_health_check() -> None:
    async with running(process_request=health_check()) as server:
        reply = await http(server.port, "/healthz")
        assert reply.status == 200
        assert reply.body == b"OK\n"
        assert reply.get("Cache-Control") == "no-store"
        # Query strings are ignored; other paths fall through to the WebSocket checks.
        assert (await http(server.port, "/healthz?probe=1")).status == 200
        assert (await http(server.port, "/")).status == 426
        # An upgrade to the health path is a WebSocket connection like any other.
        await assert_echoes(server)
        async with fullduplex.connect(ws_url(server, "/healthz")):
            pass


async def test_json_response() -> None:
    hook = chain(lambda conn, req: json_response(200, {"b": 1, "a": [True, None]}))
    async with running(process_request=hook) as server:
        reply = await http(server.port, "/status")
    assert reply.status == 200
    assert reply.get("Content-Type") == "application/json"
    assert reply.body == b'{"a":[true,null],"b":1}'


# ------------------------------------------------------------------ process_response


async def test_process_response_adds_a_header_seen_by_the_client() -> None:
    def hook(conn: Any, request: Request, resp: Any) -> None:
        resp.headers["X-Served-By"] = "node-7"
        resp.headers["Set-Cookie"] = "sid=abc"

    async with running(process_response=hook) as server:
        async with fullduplex.connect(ws_url(server)) as conn:
            assert conn.response is not None
            assert conn.response.status == 101
            assert conn.response.headers["X-Served-By"] == "node-7"
            assert conn.response.headers["Set-Cookie"] == "sid=abc"
            await conn.send("x")
            assert await wait(conn.recv()) == "x"


async def test_process_response_can_replace_the_answer() -> None:
    def hook(conn: Any, request: Request, resp: Any) -> Any:
        return response(503, "Maintenance.\n", headers=[("Retry-After", "60")])

    async with running(process_response=hook) as server:
        exc = await refused(ws_url(server))
    assert exc.status == 503
    assert exc.response.headers["Retry-After"] == "60"


async def test_process_response_cannot_break_the_handshake_headers() -> None:
    def hook(conn: Any, request: Request, resp: Any) -> None:
        resp.headers["Sec-WebSocket-Accept"] = "forged"

    async with running(process_response=hook) as server:
        await assert_echoes(server)


# ------------------------------------------------------------------ subprotocols


async def test_select_subprotocol_hook_chooses() -> None:
    offers: list[list[str]] = []

    def choose(conn: Any, offered: Any) -> str | None:
        offers.append(list(offered))
        return offered[-1]

    async with running(select_subprotocol=choose, subprotocols=["a"]) as server:
        async with fullduplex.connect(ws_url(server), subprotocols=["a", "b", "c"]) as conn:
            assert conn.subprotocol == "c"
        async with fullduplex.connect(ws_url(server)) as conn:
            assert conn.subprotocol is None  # nothing offered: the hook is not asked
    assert offers == [["a", "b", "c"]]


async def test_select_subprotocol_hook_returning_none_means_no_subprotocol() -> None:
    async with running(select_subprotocol=lambda conn, offered: None) as server:
        async with fullduplex.connect(ws_url(server), subprotocols=["a"]) as conn:
            assert conn.subprotocol is None


async def test_select_subprotocol_hook_returning_something_not_offered_gets_500() -> None:
    async with running(select_subprotocol=lambda conn, offered: "zzz") as server:
        exc = await refused(ws_url(server), subprotocols=["a"])
    assert exc.status == 500


# ------------------------------------------------------------------ origins and hosts


async def test_origins_refuse_a_mismatched_origin_with_403() -> None:
    async with running(origins=["https://good.example"]) as server:
        exc = await refused(ws_url(server), origin="https://evil.example")
        assert exc.status == 403
        await assert_echoes(server, origin="https://good.example")
        # Exact match: scheme and case matter.
        assert (await refused(ws_url(server), origin="http://good.example")).status == 403


async def test_origins_without_none_refuse_a_missing_origin() -> None:
    async with running(origins=["https://good.example"]) as server:
        assert (await refused(ws_url(server))).status == 403


async def test_none_in_origins_allows_a_missing_origin() -> None:
    async with running(origins=["https://good.example", None]) as server:
        await assert_echoes(server)
        await assert_echoes(server, origin="https://good.example")
        assert (await refused(ws_url(server), origin="https://x.example")).status == 403


async def test_hosts_refuse_an_unknown_host_with_400() -> None:
    async with running(hosts=["chat.example", "127.0.0.1"]) as server:
        await assert_echoes(server)
        raw = b"GET / HTTP/1.1\r\nHost: evil.example:80\r\n\r\n"
        assert (await http(server.port, raw=raw)).status == 400
        raw = b"GET / HTTP/1.1\r\nHost: CHAT.example:8080\r\n\r\n"
        assert (await http(server.port, raw=raw)).status == 426  # allowed, not an upgrade


# ------------------------------------------------------------------ plain requests


async def test_plain_get_gets_426_with_upgrade_websocket() -> None:
    async with running() as server:
        reply = await http(server.port, "/anything")
        assert reply.status == 426
        assert (reply.get("Upgrade") or "").lower() == "websocket"
        assert "upgrade" in (reply.get("Connection") or "").lower()
        await assert_echoes(server)


async def test_plain_post_gets_405_with_allow() -> None:
    async with running() as server:
        reply = await http(server.port, method="POST", headers=[("Content-Length", "0")])
    assert reply.status == 405
    assert reply.get("Allow") == "GET"


# ------------------------------------------------------------------ StaticFiles


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "app.js").write_text("console.log(1)")
    (tmp_path / "style.css").write_text("body{}")
    (tmp_path / "data.json").write_text("{}")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (tmp_path / "blob.unknownext").write_bytes(b"\x00\x01")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.html").write_text("<h1>docs</h1>")
    (tmp_path / "docs" / "a b.txt").write_text("spaced")
    (tmp_path.parent / "secret.txt").write_text("do not serve")
    return tmp_path


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/index.html", "text/html; charset=utf-8"),
        ("/app.js", "charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/data.json", "application/json"),
        ("/logo.png", "image/png"),
        ("/blob.unknownext", "application/octet-stream"),
    ],
)
async def test_static_files_content_types(site: Path, path: str, content_type: str) -> None:
    async with running(process_request=StaticFiles(site)) as server:
        reply = await http(server.port, path)
    assert reply.status == 200
    assert content_type in (reply.get("Content-Type") or "")
    assert reply.body == (site / path.lstrip("/")).read_bytes()
    assert reply.get("X-Content-Type-Options") == "nosniff"


async def test_static_files_index_and_quoting(site: Path) -> None:
    async with running(process_request=StaticFiles(site)) as server:
        assert (await http(server.port, "/")).body == b"<h1>home</h1>"
        assert (await http(server.port, "/docs/")).body == b"<h1>docs</h1>"
        assert (await http(server.port, "/docs/a%20b.txt")).body == b"spaced"
        assert (await http(server.port, "/index.html?v=3")).body == b"<h1>home</h1>"
        # Not found: falls through to the WebSocket checks (plain GET: 426).
        assert (await http(server.port, "/missing.html")).status == 426
        # WebSocket upgrades are not served files.
        await assert_echoes(server)


async def test_static_files_head_has_content_length_and_no_body(site: Path) -> None:
    size = (site / "logo.png").stat().st_size
    async with running(process_request=StaticFiles(site)) as server:
        reply = await http(server.port, "/logo.png", method="HEAD")
    assert reply.status == 200
    assert reply.body == b""
    assert reply.get("Content-Length") == str(size)
    assert reply.get("Content-Type") == "image/png"


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/docs/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/docs/..%2F..%2Fsecret.txt",
        "/%2E%2E%5Csecret.txt",
        "/..\\secret.txt",
        "/docs/%00.txt",
    ],
)
async def test_static_files_refuse_traversal(site: Path, target: str) -> None:
    async with running(process_request=StaticFiles(site)) as server:
        reply = await http(server.port, target)
    assert reply.status != 200
    assert b"do not serve" not in reply.body


def test_static_files_lookup_stays_inside_the_root(site: Path) -> None:
    files = StaticFiles(site, prefix="/static")
    assert files.lookup("/static/app.js") == (b"console.log(1)", "text/javascript; charset=utf-8")
    assert files.lookup("/static") is not None  # the index
    assert files.lookup("/app.js") is None  # outside the prefix
    assert files.lookup("/static/../secret.txt") is None
    assert files.lookup("/static/docs/../../secret.txt") is None
    assert files.lookup("/static/docs") is None  # a directory, not a file


async def test_static_files_ignore_other_methods(site: Path) -> None:
    async with running(process_request=StaticFiles(site)) as server:
        reply = await http(server.port, "/index.html", method="DELETE")
    assert reply.status == 405


# ------------------------------------------------------------------ small helpers


def test_split_path() -> None:
    assert split_path("/a%20b?x=1") == "/a b"
    assert split_path("") == "/"
    assert split_path("/p#frag") == "/p"


def test_is_upgrade() -> None:
    def request(*headers: tuple[str, str]) -> Request:
        return Request("GET", "/", Headers(list(headers)))

    assert is_upgrade(request(("Upgrade", "websocket")))
    assert is_upgrade(request(("Upgrade", "h2c, WebSocket")))
    assert not is_upgrade(request(("Upgrade", "h2c")))
    assert not is_upgrade(request())


def test_response_helpers() -> None:
    plain = response(404, "gone")
    assert (plain.status, plain.reason, plain.body) == (404, "Not Found", b"gone")
    assert plain.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "Content-Type" not in response(204).headers
    moved = redirect("https://x.example/", 301)
    assert moved.status == 301 and moved.headers["Location"] == "https://x.example/"
