"""permessage-deflate (RFC 7692) between headless Chromium and ``fullduplex.serve``.

Chromium offers ``permessage-deflate; client_max_window_bits`` on every connection.
The page below (served over HTTP by the fullduplex server itself, from 127.0.0.1)
opens a WebSocket, reports ``ws.extensions``, sends generated text and binary messages
up to 1 MiB, and checks each echo byte for byte. Messages starting with ``frag:`` (text)
or ``FRAG`` (binary) come back in several fragments, so Chromium also inflates a
compressed message spread over continuation frames.

Besides the default settings, servers with other ``DeflateOptions`` (context takeover
off on either side, every window size from 8 to 15 on both sides) run on the same loop;
the page talks to each in turn.

Chromium (``/usr/bin/chromium``) is driven by the Python ``playwright`` package on an
event loop in a background thread, which also runs the fullduplex servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import fullduplex
from fullduplex.http import response
from fullduplex.protocol.deflate import DeflateOptions

from .test_deflate_node import WireTap

pytestmark = pytest.mark.interop

CHROMIUM = "/usr/bin/chromium"
TIMEOUT = 30.0
MiB = 2**20
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

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>permessage-deflate</title>
<script>
'use strict';
const TEXT_UNIT = 'deflate ✓ déjà vu 😀 𝄞 ';

function makeText(size) {
  let s = '';
  while (s.length < size) s += TEXT_UNIT;
  return s.slice(0, size);  // may cut a surrogate pair: then it is sent as U+FFFD
}

function makeBytes(size, pattern, seed) {
  const out = new Uint8Array(size);
  if (pattern === 'zeros') return out;
  let x = seed | 1;
  const period = pattern === 'random' ? size : 3000;
  for (let i = 0; i < Math.min(size, period); i += 1) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    out[i] = x & 0xff;
  }
  for (let i = period; i < size; i += 1) out[i] = out[i - period];
  return out;
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

// specs: [{type: 'text'|'binary', size, pattern, seed, fragments}]
async function runDeflate(url, specs) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const inbox = [];
  let waiter = null;
  ws.onmessage = (event) => {
    if (waiter) { const w = waiter; waiter = null; w(event.data); } else inbox.push(event.data);
  };
  const closed = new Promise((resolve) => {
    ws.onclose = (e) => resolve({code: e.code, reason: e.reason, wasClean: e.wasClean});
  });
  const opened = await new Promise((resolve) => {
    ws.onopen = () => resolve(true);
    ws.onerror = () => resolve(false);
  });
  const result = {opened, extensions: ws.extensions, messages: [], close: null};
  if (!opened) return result;
  const next = () => (inbox.length ? Promise.resolve(inbox.shift())
                                   : new Promise((resolve) => { waiter = resolve; }));
  for (const spec of specs) {
    const entry = {type: spec.type, size: spec.size, ok: false, got: null};
    result.messages.push(entry);
    if (spec.type === 'text') {
      const text = makeText(spec.size);
      ws.send(spec.fragments ? `frag:${spec.fragments}:${text}` : text);
      const echo = await next();
      entry.got = typeof echo === 'string' ? echo.length : `binary ${echo.byteLength}`;
      entry.ok = echo === text.toWellFormed();
    } else {
      const data = makeBytes(spec.size, spec.pattern, spec.seed || 1);
      if (spec.fragments) {
        const framed = new Uint8Array(data.length + 5);
        framed.set([70, 82, 65, 71, spec.fragments]);  // "FRAG", count
        framed.set(data, 5);
        ws.send(framed);
      } else {
        ws.send(data);
      }
      const echo = await next();
      entry.got = typeof echo === 'string' ? `text ${echo.length}` : echo.byteLength;
      entry.ok = typeof echo !== 'string' && sameBytes(new Uint8Array(echo), data);
    }
  }
  ws.close(1000, 'done');
  result.close = await closed;
  return result;
}
</script>
"""


def _split(data: Any, parts: int) -> list[Any]:
    step = -(-len(data) // parts) if data else 1
    return [data[i * step : (i + 1) * step] for i in range(parts)]


class DeflateEcho:
    """Echo; ``frag:N:text`` and ``FRAG`` + N + bytes come back in N fragments."""

    def __init__(self) -> None:
        self.connections: list[Any] = []

    async def __call__(self, conn: Any) -> None:
        self.connections.append(conn)
        async for message in conn:
            if isinstance(message, str) and message.startswith("frag:"):
                _, count, body = message.split(":", 2)
                await conn.send(_split(body, int(count)))
            elif isinstance(message, bytes) and message.startswith(b"FRAG"):
                await conn.send(_split(message[5:], message[4]))
            else:
                await conn.send(message)


def serve_page(conn: Any, request: Any) -> Any:
    if request.path.split("?")[0] == "/deflate.html":
        return response(200, PAGE, content_type="text/html; charset=utf-8")
    return None


# name -> (server options, the Sec-WebSocket-Extensions Chromium should report)
VARIANTS: dict[str, tuple[DeflateOptions | None, dict[str, str | None] | None]] = {
    "defaults": (DeflateOptions(), {}),
    "off": (None, None),
    "server-no-context-takeover": (
        DeflateOptions(server_no_context_takeover=True),
        {"server_no_context_takeover": None},
    ),
    "client-no-context-takeover": (
        DeflateOptions(client_no_context_takeover=True, threshold=0),
        {"client_no_context_takeover": None},
    ),
    **{
        f"s{bits}-c{23 - bits}": (
            DeflateOptions(server_max_window_bits=bits, client_max_window_bits=23 - bits),
            {
                **({"server_max_window_bits": str(bits)} if bits < 15 else {}),
                **({"client_max_window_bits": str(23 - bits)} if bits > 8 else {}),
            },
        )
        for bits in range(8, 16)
    },
}

FULL_SPECS: list[dict[str, Any]] = [
    {"type": "text", "size": 0},
    {"type": "text", "size": 1},
    {"type": "text", "size": 127},
    {"type": "text", "size": 128},
    {"type": "text", "size": 70_000},
    {"type": "text", "size": MiB},
    {"type": "binary", "size": 0},
    {"type": "binary", "size": 200_000},
    {"type": "binary", "size": 100_000, "pattern": "random"},
    {"type": "binary", "size": MiB},
    {"type": "binary", "size": MiB, "pattern": "zeros"},
    {"type": "text", "size": 40_000, "fragments": 5},
    {"type": "binary", "size": 300_000, "fragments": 4},
    {"type": "text", "size": 70_000},  # again: with context takeover, back-references
]

SHORT_SPECS: list[dict[str, Any]] = [
    {"type": "text", "size": 5},
    {"type": "text", "size": 20_000},
    {"type": "binary", "size": 100_000, "seed": 7},
    {"type": "text", "size": 20_000, "fragments": 3},
    {"type": "binary", "size": 100_000, "seed": 7},
]


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright)"
    return None


class Peers:
    """A loop in a background thread running the fullduplex servers and Chromium."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._stack = contextlib.AsyncExitStack()
        self.user_data = tempfile.TemporaryDirectory(prefix="fullduplex-chromium-deflate-")
        self.handlers: dict[str, DeflateEcho] = {}
        self.ports: dict[str, int] = {}
        self.page: Any = None
        self.tap: WireTap | None = None

    def call(self, coro: Any, timeout: float = TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self) -> None:
        from playwright.async_api import async_playwright

        for name, (options, _) in VARIANTS.items():
            handler = self.handlers[name] = DeflateEcho()
            server = await self._stack.enter_async_context(
                fullduplex.serve(
                    handler,
                    "127.0.0.1",
                    0,
                    compression=options,
                    max_size=2 * MiB,
                    process_request=serve_page,
                )
            )
            self.ports[name] = server.port
        # The default server is reached through a relay that logs frame headers.
        self.tap = WireTap(self.ports["defaults"])
        await self._stack.enter_async_context(self.tap.running())
        playwright = await self._stack.enter_async_context(async_playwright())
        context = await playwright.chromium.launch_persistent_context(
            self.user_data.name, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        self._stack.push_async_callback(context.close)
        self.page = await context.new_page()
        await self.page.goto(f"http://127.0.0.1:{self.ports['defaults']}/deflate.html")

    async def run(self, name: str, specs: list[dict[str, Any]]) -> dict[str, Any]:
        url = (
            self.tap.url
            if name == "defaults" and self.tap
            else f"ws://127.0.0.1:{self.ports[name]}/"
        )
        result: dict[str, Any] = await self.page.evaluate(
            "([url, specs]) => runDeflate(url, specs)", [url, specs]
        )
        return result

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()
        self.user_data.cleanup()


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


def params_of(value: str) -> dict[str, str | None] | None:
    if not value:
        return None
    name, *params = (part.strip() for part in value.split(";"))
    assert name == "permessage-deflate", value
    result: dict[str, str | None] = {}
    for param in params:
        key, eq, val = param.partition("=")
        result[key.strip()] = val.strip().strip('"') if eq else None
    return result


@pytest.mark.parametrize("name", list(VARIANTS))
def test_chromium_negotiates_and_echoes(peers: Peers, name: str) -> None:
    expected = VARIANTS[name][1]
    specs = FULL_SPECS if name in ("defaults", "off") else SHORT_SPECS
    result = peers.call(peers.run(name, specs))
    assert result["opened"], result
    # What the page sees in WebSocket.extensions is what we agreed to.
    assert params_of(result["extensions"]) == expected, result["extensions"]
    bad = [m for m in result["messages"] if not m["ok"]]
    assert not bad, bad
    assert len(result["messages"]) == len(specs)
    assert result["close"] == {"code": 1000, "reason": "done", "wasClean": True}
    (conn,) = peers.handlers[name].connections[-1:]
    offered = conn.request.headers.get_all("Sec-WebSocket-Extensions")
    assert [params_of(v) for v in offered] == [{"client_max_window_bits": None}], offered
    if expected is None:
        assert conn.protocol.deflate is None
        assert conn.protocol.extensions == ""
    else:
        assert conn.protocol.deflate is not None
        assert params_of(conn.protocol.extensions) == expected
    if name == "defaults":
        # On the wire: Chromium compresses every message; we compress those of 128
        # bytes or more, i.e. all but the messages of 0 or 1 character or byte.
        assert peers.tap is not None
        sent = peers.tap.to_server.messages()
        echoed = peers.tap.to_client.messages()
        assert len(sent) == len(echoed) == len(specs)
        assert [m[0].rsv for m in sent] == [4] * len(specs), sent
        assert [m[0].rsv for m in echoed] == [0 if s["size"] < 2 else 4 for s in specs], echoed
        for message in echoed:
            assert all(f.rsv == 0 for f in message[1:]), message
        fragmented = [len(m) for m, s in zip(echoed, specs, strict=True) if s.get("fragments")]
        assert fragmented == [5, 4], fragmented
