"""``fullduplex connect``: the command as a subprocess, and its ``run`` in-process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

import fullduplex
from fullduplex import wscat
from fullduplex.cli import build_parser

TIMEOUT = 10.0


async def scripted(conn: Any) -> None:
    """Echo, plus commands; ``headers?`` answers with the request's test headers."""
    async for message in conn:
        if isinstance(message, str) and message.startswith("please-close:"):
            _, code, reason = message.split(":", 2)
            await conn.close(int(code), reason)
            return
        if message == "please-drop":
            conn.protocol.abort()
            return
        if message == "please-binary":
            await conn.send(b"\x00\x01\xfe\xff")
            await conn.send(bytes(range(256)) * 4)
            continue
        if message == "headers?":
            headers = conn.request.headers
            await conn.send(f"x-test={headers.get('X-Test')} origin={headers.get('Origin')}")
            continue
        if message == "silence":
            continue
        await conn.send(message)


@contextlib.asynccontextmanager
async def server(**kwargs: Any) -> AsyncIterator[str]:
    async with fullduplex.serve(scripted, "127.0.0.1", 0, **kwargs) as srv:
        yield f"ws://127.0.0.1:{srv.port}/"


async def run_cli(*args: str, stdin: bytes) -> tuple[int, str, str]:
    """Run ``python -m fullduplex connect ...`` with ``stdin`` piped in."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fullduplex",
        "connect",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def run_inline(url: str, stdin: bytes, **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.wait_for(
        wscat.run(url, stdin=io.BytesIO(stdin), stdout=out, stderr=err, **kwargs), TIMEOUT
    )
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------
# As a command


async def test_pipe_prints_the_echo_and_exits_0() -> None:
    async with server() as url:
        code, out, err = await run_cli(url, stdin=b"hi\ncaf\xc3\xa9\n\nlast")
    assert out == "hi\ncafé\n\nlast\n"
    assert code == 0
    assert f"connected to {url}" in err
    assert err.rstrip().endswith("closed: 1000")


async def test_subprotocols_headers_and_origin() -> None:
    async with server(subprotocols=["chat"]) as url:
        code, out, err = await run_cli(
            url,
            "--subprotocol",
            "superchat",
            "-s",
            "chat",
            "--header",
            "X-Test: 42",
            "--origin",
            "http://example.com",
            stdin=b"headers?\n",
        )
    assert code == 0
    assert out == "x-test=42 origin=http://example.com\n"
    assert "(subprotocol chat)" in err


async def test_refused_connection_exits_1(unused_port: int) -> None:
    code, out, err = await run_cli(f"ws://127.0.0.1:{unused_port}/", stdin=b"hi\n")
    assert code == 1
    assert out == ""
    assert "cannot connect" in err


def test_bad_header_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["connect", "ws://127.0.0.1/", "--header", "no colon"])
    assert info.value.code == 2
    assert "NAME:VALUE" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# In-process


async def test_server_close_code_and_reason_are_shown() -> None:
    async with server() as url:
        code, out, err = await run_inline(url, b"please-close:4000:bye bye\nnot sent\n")
    assert code == 1
    assert out == ""
    assert err.rstrip().endswith("closed: 4000 bye bye")


async def test_server_going_away_is_a_normal_end() -> None:
    async with server() as url:
        code, _, err = await run_inline(url, b"please-close:1001:\n")
    assert code == 0
    assert err.rstrip().endswith("closed: 1001")


async def test_dropped_connection_exits_1() -> None:
    async with server() as url:
        code, out, err = await run_inline(url, b"one\nplease-drop\n")
    assert (code, out) == (1, "one\n")
    assert err.rstrip().endswith("closed: 1006")


async def test_binary_messages_are_shown_in_hex() -> None:
    async with server() as url:
        code, out, _ = await run_inline(url, b"please-binary\nend\n")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "[binary 4 bytes] 0001feff"
    assert lines[1] == "[binary 1024 bytes] " + bytes(range(32)).hex() + "… (first 32 bytes)"
    assert lines[2] == "end"


async def test_a_quiet_server_is_closed_after_the_wait() -> None:
    async with server() as url:
        loop = asyncio.get_running_loop()
        started = loop.time()
        code, out, err = await run_inline(url, b"silence\n", wait=0.2)
        elapsed = loop.time() - started
    assert (code, out) == (0, "")
    assert 0.2 <= elapsed < TIMEOUT
    assert err.rstrip().endswith("closed: 1000")


async def test_empty_input_closes_at_once() -> None:
    async with server() as url:
        code, out, err = await run_inline(url, b"", wait=TIMEOUT)
    assert (code, out) == (0, "")
    assert err.rstrip().endswith("closed: 1000")


def test_format_message() -> None:
    assert wscat.format_message("text\nlines") == "text\nlines"
    assert wscat.format_message(b"") == "[binary 0 bytes] "
    assert wscat.format_message(b"\xab" * 33).endswith("ab… (first 32 bytes)")
