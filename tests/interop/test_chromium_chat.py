"""The chat page in headless Chromium against ``fullduplex serve`` in a subprocess.

Two pages join the same room as 张三 and 李四, see each other arrive, chat, and
see a leave. Then the server is killed and started again on the same port: both
pages must reconnect by themselves (connection state reconnecting → open),
re-join the room with their nicknames, and chat again.

Chromium (``/usr/bin/chromium``) is driven by the Python ``playwright`` package
from the test's own event loop. Every wait is on a page condition, with a timeout.
Screenshots land in ``artifacts/`` (desktop and phone-sized).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.interop

CHROMIUM = "/usr/bin/chromium"
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
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TIMEOUT_MS = 10_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright)"
    return None


class ServeProcess:
    """``python -m fullduplex serve --port PORT`` as a child process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fullduplex",
            "serve",
            "--port",
            str(self.port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        assert line.decode().strip() == f"listening on http://127.0.0.1:{self.port}", line

    async def kill(self) -> None:
        """Kill the server by its PID (no goodbye to the clients) and reap it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A persistent Chromium context with a fresh profile, closed afterwards."""
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="fullduplex-chromium-") as profile:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                user_data_dir=profile,
                executable_path=CHROMIUM,
                args=CHROMIUM_FLAGS,
                headless=True,
                viewport={"width": 1000, "height": 640},
            )
            try:
                yield context
            finally:
                await context.close()


async def open_and_join(context: Any, url: str, nick: str, room: str) -> Any:
    from playwright.async_api import expect

    page = await context.new_page()
    await page.goto(url)
    await expect(page.locator("#state")).to_have_attribute("data-state", "open")
    await page.fill("#nick", nick)
    await page.fill("#room", room)
    await page.press("#room", "Enter")
    await expect(page.locator("#chat-view")).to_be_visible()
    await expect(page.locator("#room-title")).to_have_text(f"#{room}")
    return page


async def test_two_pages_chat_and_survive_a_server_restart() -> None:
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    from playwright.async_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    port = free_port()
    server = ServeProcess(port)
    await server.start()
    url = f"http://127.0.0.1:{port}/"
    try:
        async with chromium() as context:
            zhang = await open_and_join(context, url, "张三", "lobby")
            li = await open_and_join(context, url, "李四", "lobby")

            def members(page: Any) -> Any:
                return page.locator("#members li")

            # Each sees the other arrive.
            await expect(members(zhang)).to_have_text(["张三", "李四"], ignore_case=False)
            await expect(members(li)).to_have_text(["张三", "李四"])
            await expect(zhang.locator(".notice", has_text="李四 joined")).to_be_visible()

            # Typed on one page (type + Enter), shown on the other, escaped as text.
            text = "你好，李四 <b>not bold</b>"
            await zhang.type("#text", text)
            await zhang.press("#text", "Enter")
            await expect(li.locator(".msg .text", has_text=text)).to_have_text(text)
            await expect(li.locator(".msg b")).to_have_count(0)
            await expect(li.locator(".msg .nick").last).to_have_text("张三")
            await expect(zhang.locator(".msg.mine .text")).to_have_text([text])

            # One leaves; the other sees it. Then it comes back.
            await li.click("#leave")
            await expect(zhang.locator(".notice", has_text="李四 left")).to_be_visible()
            await expect(members(zhang)).to_have_text(["张三"])
            await expect(li.locator("#join-view")).to_be_visible()
            await li.fill("#nick", "李四")
            await li.click("#join")
            await expect(members(zhang)).to_have_text(["张三", "李四"])

            # The server goes away and comes back on the same port.
            await server.kill()
            for page in (zhang, li):
                await expect(page.locator("#state")).to_have_attribute("data-state", "reconnecting")
            await server.start()
            for page in (zhang, li):
                await expect(page.locator("#state")).to_have_attribute("data-state", "open")
                await expect(members(page)).to_have_text(["张三", "李四"])

            # Both re-joined by themselves, with their nicknames, and chat again.
            again = "又见面了 👋"
            await li.type("#text", again)
            await li.press("#text", "Enter")
            await expect(zhang.locator(".msg .text", has_text=again)).to_be_visible()
            await expect(li.locator(".msg.mine .text", has_text=again)).to_be_visible()
            reply = "Back online."
            await zhang.type("#text", reply)
            await zhang.press("#text", "Enter")
            await expect(li.locator(".msg .text", has_text=reply)).to_be_visible()
            await expect(zhang.locator("#typing")).to_have_text("")

            ARTIFACTS.mkdir(exist_ok=True)
            await zhang.screenshot(path=str(ARTIFACTS / "chat.png"))
            await li.set_viewport_size({"width": 390, "height": 740})
            await expect(li.locator(".msg .text", has_text=reply)).to_be_visible()
            await li.screenshot(path=str(ARTIFACTS / "chat-phone.png"))
    finally:
        await server.kill()
