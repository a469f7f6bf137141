"""The ``fullduplex`` command: help texts, and the echo server run as a real process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import fullduplex
from fullduplex.cli import build_parser, main

TIMEOUT = 10.0  # a process start includes the interpreter start-up
SCRIPT = Path(sys.executable).parent / "fullduplex"
BANNER = re.compile(r"listening on (wss?)://127\.0\.0\.1:(\d+)")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*args], capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL
    )


def option_strings(parser: Any) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def subparser(name: str) -> Any:
    parser = build_parser()
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict) and name in choices:
            return choices[name]
    raise AssertionError(f"no {name} command")


# ------------------------------------------------------------------ help


def test_module_help_lists_every_option_and_command() -> None:
    result = run(sys.executable, "-m", "fullduplex", "--help")
    assert result.returncode == 0, result.stderr
    for option in option_strings(build_parser()):
        assert option in result.stdout, option
    assert "echo" in result.stdout


def test_echo_help_lists_every_option() -> None:
    result = run(str(SCRIPT), "echo", "--help")
    assert result.returncode == 0, result.stderr
    options = option_strings(subparser("echo"))
    assert {"--host", "--port", "--max-size"} <= options
    for option in options:
        assert option in result.stdout, option


def test_main_without_a_command_prints_help_and_returns_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 2
    assert "usage: fullduplex" in capsys.readouterr().out


def test_main_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "echo" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error() -> None:
    result = run(sys.executable, "-m", "fullduplex", "no-such-command")
    assert result.returncode == 2
    assert "usage" in result.stderr


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1048576),
        ("64KiB", 64 * 1024),
        ("16MiB", 16 * 2**20),
        ("1GiB", 2**30),
        ("10", 10),
        ("none", None),
    ],
)
def test_max_size_values(text: str, size: int | None) -> None:
    args = build_parser().parse_args(["echo", "--max-size", text])
    assert args.max_size == size


def test_echo_defaults() -> None:
    args = build_parser().parse_args(["echo"])
    assert (args.host, args.port, args.max_size) == ("127.0.0.1", 9001, 2**20)


# ------------------------------------------------------------------ the echo server


@asynccontextmanager
async def echo_process(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Start ``fullduplex echo --port 0 ARGS``; yield the process and its URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fullduplex",
        "echo",
        "--port",
        "0",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
        match = BANNER.search(line)
        assert match, f"banner: {line!r}"
        yield proc, f"{match.group(1)}://127.0.0.1:{match.group(2)}/"
    finally:
        if proc.returncode is None:
            proc.kill()  # this process only, by its PID
            await proc.wait()


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, bytes]:
    proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, stderr


async def test_echo_serves_text_and_binary_and_sigterm_closes_with_1001() -> None:
    async with echo_process() as (proc, url):
        assert url.startswith("ws://")
        async with fullduplex.connect(url + "any/path?x=1") as conn:
            await conn.send("héllo")
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == "héllo"
            await conn.send(b"\x00\xffbin")
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == b"\x00\xffbin"
            await conn.send(["frag", "mented"])
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == "fragmented"
            other = await fullduplex.connect(url)

            code, stderr = await stop(proc)
            assert code == 0, stderr.decode()
            for client in (conn, other):
                with pytest.raises(fullduplex.ConnectionClosedOK) as info:
                    await asyncio.wait_for(client.recv(), TIMEOUT)
                assert info.value.code == 1001
                await asyncio.wait_for(client.wait_closed(), TIMEOUT)


async def test_echo_sigterm_with_no_client_exits_0() -> None:
    async with echo_process() as (proc, _):
        code, stderr = await stop(proc)
        assert code == 0, stderr.decode()


async def test_echo_max_size() -> None:
    async with echo_process("--max-size", "10") as (proc, url):
        async with fullduplex.connect(url, compression=None) as conn:
            await conn.send("0123456789")
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == "0123456789"
            await conn.send("0123456789X")
            with pytest.raises(fullduplex.ConnectionClosedError) as info:
                await asyncio.wait_for(conn.recv(), TIMEOUT)
            assert info.value.code == 1009
        async with fullduplex.connect(url) as conn:  # the server goes on
            await conn.send("ok")
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == "ok"
        code, _ = await stop(proc)
        assert code == 0


def test_echo_on_a_busy_port_fails_with_a_message() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(sys.executable, "-m", "fullduplex", "echo", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.startswith("fullduplex: ")
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    trustme = pytest.importorskip("trustme")
    if "--tls-cert" not in option_strings(subparser("echo")):
        pytest.skip("this version of the CLI has no --tls-cert")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    cert.cert_chain_pems[0].write_to_path(folder / "cert.pem")
    cert.private_key_pem.write_to_path(folder / "key.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(folder / "both.pem")
    return folder / "cert.pem", folder / "key.pem", ca


@pytest.mark.parametrize("separate_key", [True, False], ids=["cert+key", "combined"])
async def test_echo_over_tls(certificate: tuple[Path, Path, Any], separate_key: bool) -> None:
    cert, key, ca = certificate
    args = ["--tls-cert", str(cert), "--tls-key", str(key)]
    if not separate_key:
        args = ["--tls-cert", str(cert.parent / "both.pem")]
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with echo_process(*args) as (proc, url):
        assert url.startswith("wss://")
        async with fullduplex.connect(url, ssl=context) as conn:
            await conn.send("over tls")
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == "over tls"
            await conn.send(b"\x01\x02")
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == b"\x01\x02"
            code, stderr = await stop(proc)
            assert code == 0, stderr.decode()
            with pytest.raises(fullduplex.ConnectionClosedOK) as info:
                await asyncio.wait_for(conn.recv(), TIMEOUT)
            assert info.value.code == 1001


def test_tls_key_without_cert_is_refused(certificate: tuple[Path, Path, Any]) -> None:
    _, key, _ = certificate
    result = run(sys.executable, "-m", "fullduplex", "echo", "--port", "0", "--tls-key", str(key))
    assert result.returncode != 0
    assert "--tls-key" in result.stderr
