"""The browser's WebSocket in headless Chromium and ``fullduplex.WebSocket``, side by side.

Each scenario runs twice against the same fullduplex server: in Chromium, through
``runScenario`` in ``pages/browser_api.html``, and in Python, through the same
little script interpreted by :func:`run_in_python` with ``fullduplex.browser.run``.
The two event logs (types, readyState, data, origins, codes, reasons, wasClean)
must be identical.

Chromium (``/usr/bin/chromium``) is driven by the Python ``playwright`` package on
an event loop in a background thread, which also runs the fullduplex server; the
page is served over HTTP from 127.0.0.1 because Chromium may refuse WebSocket
connections to 127.0.0.1 from ``about:blank``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fullduplex
from fullduplex import browser
from fullduplex.browser import Blob, CloseEvent, Event, MessageEvent, WebSocket

pytestmark = pytest.mark.interop

CHROMIUM = "/usr/bin/chromium"
PAGES = Path(__file__).parent / "pages"
TIMEOUT = 15.0
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright)"
    return None


async def scripted_handler(conn: Any) -> None:
    """Echo, plus commands: ``please-close:CODE:REASON``, ``please-drop``, ``please-two``."""
    async for message in conn:
        if isinstance(message, str) and message.startswith("please-close:"):
            _, code, reason = message.split(":", 2)
            await conn.close(int(code), reason)
            return
        if message == "please-drop":
            conn.protocol.abort()  # no close frame: the client sees 1006
            return
        if message == "please-two":
            await conn.send("one")
            await conn.send("two")
            continue
        await conn.send(message)


class Peers:
    """A loop in a background thread running the fullduplex server and Chromium."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._stack = contextlib.AsyncExitStack()
        self.user_data = tempfile.TemporaryDirectory(prefix="fullduplex-chromium-")
        handler = functools.partial(_QuietHandler, directory=str(PAGES))
        self.httpd = _QuietHTTPServer(("127.0.0.1", 0), handler)
        self.http_thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.http_thread.start()
        self.ws_port = 0
        self.page: Any = None

    def call(self, coro: Any, timeout: float = TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self) -> None:
        from playwright.async_api import async_playwright

        server = await self._stack.enter_async_context(
            fullduplex.serve(scripted_handler, "127.0.0.1", 0, subprotocols=["chat"])
        )
        self.ws_port = server.port
        playwright = await self._stack.enter_async_context(async_playwright())
        context = await playwright.chromium.launch_persistent_context(
            self.user_data.name,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        self._stack.push_async_callback(context.close)
        self.page = await context.new_page()
        await self.page.goto(f"http://127.0.0.1:{self.httpd.server_address[1]}/browser_api.html")

    async def run_in_chromium(self, scenario: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.page.evaluate("(s) => runScenario(s)", scenario)
        return result

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.http_thread.join(TIMEOUT)
        self.user_data.cleanup()


class _QuietHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    peers = Peers()
    try:
        peers.call(peers.start(), timeout=60)
        yield peers
    finally:
        peers.close()


# ---------------------------------------------------------------------------
# The Python twin of runScenario in pages/browser_api.html


def _describe(event: Event, ws: WebSocket) -> dict[str, Any]:
    record: dict[str, Any] = {"type": event.type, "readyState": ws.readyState}
    if isinstance(event, MessageEvent):
        data = event.data
        if isinstance(data, str):
            record["data"] = ["text", data]
        elif isinstance(data, Blob):
            record["data"] = ["blob", bytes(data).hex()]
        else:
            record["data"] = ["arraybuffer", bytes(data).hex()]
        record["origin"] = event.origin
    elif event.type == "open":
        record["protocol"] = ws.protocol
        record["extensions"] = ws.extensions
    elif isinstance(event, CloseEvent):
        record["code"] = event.code
        record["reason"] = event.reason
        record["wasClean"] = event.wasClean
    return record


def _perform(ws: WebSocket, actions: list[list[Any]] | None) -> None:
    for name, *args in actions or ():
        if name == "send":
            ws.send(args[0])
        elif name == "sendBytes":
            ws.send(bytes(args[0]))
        elif name == "close":
            ws.close(*args)
        else:  # pragma: no cover - a typo in a scenario
            raise AssertionError(f"unknown action {name}")


def run_in_python(scenario: dict[str, Any]) -> dict[str, Any]:
    """Run ``scenario`` with fullduplex.WebSocket from a plain script, via ``browser.run``."""
    result: dict[str, Any] = {}

    def main() -> None:
        if "protocols" in scenario:
            ws = WebSocket(scenario["url"], scenario["protocols"])
        else:
            ws = WebSocket(scenario["url"])
        if "binaryType" in scenario:
            ws.binaryType = scenario["binaryType"]
        log: list[dict[str, Any]] = []
        messages = 0

        def on_open(event: Event) -> None:
            log.append(_describe(event, ws))
            _perform(ws, scenario.get("open"))

        def on_message(event: Event) -> None:
            nonlocal messages
            log.append(_describe(event, ws))
            messages += 1
            _perform(ws, scenario.get("messages", {}).get(str(messages)))

        def on_close(event: Event) -> None:
            log.append(_describe(event, ws))
            result.update(url=ws.url, log=log)

        ws.addEventListener("open", on_open)
        ws.addEventListener("message", on_message)
        ws.addEventListener("error", lambda event: log.append(_describe(event, ws)))
        ws.addEventListener("close", on_close)
        _perform(ws, scenario.get("immediately"))

    browser.run(main, timeout=TIMEOUT)
    return result


# ---------------------------------------------------------------------------
# Scenarios: {port} is the fullduplex server, {closed_port} a port nobody listens on.

SCENARIOS: dict[str, dict[str, Any]] = {
    "hello-echo-close": {
        "url": "ws://127.0.0.1:{port}/",
        "open": [["send", "Hello WebSockets!"]],
        "messages": {"1": [["close", 1000, "done"]]},
    },
    "close-without-code": {
        "url": "ws://127.0.0.1:{port}/chat",
        "open": [["close"]],
    },
    "close-with-app-code": {
        "url": "ws://127.0.0.1:{port}/",
        "open": [["send", "héllo ✓"], ["send", ""]],
        "messages": {"2": [["close", 4321, "fin ✓"]]},
    },
    "server-closes": {
        "url": "ws://127.0.0.1:{port}/",
        "open": [["send", "please-close:4000:bye"]],
    },
    "server-drops": {
        "url": "ws://127.0.0.1:{port}/",
        "open": [["send", "before"], ["send", "please-drop"]],
    },
    "refused": {
        "url": "ws://127.0.0.1:{closed_port}/",
    },
    "close-while-connecting": {
        "url": "ws://127.0.0.1:{port}/",
        "immediately": [["close", 1000, "never mind"]],
    },
    "binary-blob": {
        "url": "ws://127.0.0.1:{port}/",
        "open": [["sendBytes", [0, 1, 254, 255]]],
        "messages": {"1": [["close", 1000]]},
    },
    "binary-arraybuffer": {
        "url": "ws://127.0.0.1:{port}/",
        "binaryType": "arraybuffer",
        "open": [["sendBytes", [104, 105]], ["sendBytes", []]],
        "messages": {"2": [["close", 3000]]},
    },
    "messages-after-close-are-dropped": {
        "url": "ws://127.0.0.1:{port}/",
        "open": [["send", "a"], ["send", "b"], ["close", 1000]],
    },
    "close-between-two-messages": {
        "url": "ws://127.0.0.1:{port}/",
        "open": [["send", "please-two"]],
        "messages": {"1": [["close", 1000, "enough"]]},
    },
    "subprotocol-selected": {
        "url": "ws://127.0.0.1:{port}/",
        "protocols": ["superchat", "chat"],
        "open": [["close", 1000]],
    },
    "subprotocol-refused": {
        "url": "ws://127.0.0.1:{port}/",
        "protocols": "nope",
    },
    "http-url-and-normalization": {
        "url": "HTTP://127.0.0.1:{port}/a/./b/../c?x=1 2",
        "open": [["close"]],
    },
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_events_as_chromium(peers: Peers, name: str, unused_port: int) -> None:
    template = SCENARIOS[name]
    closed_port = unused_port
    scenario = {
        **template,
        "url": template["url"].format(port=peers.ws_port, closed_port=closed_port),
    }
    in_chromium = peers.call(peers.run_in_chromium(scenario))
    in_python = run_in_python(scenario)
    assert in_python == in_chromium
    assert in_python["log"][-1]["type"] == "close"
