"""@stomp/stompjs (Node, with the ``ws`` package as its WebSocket) against our broker.

``stomp_node/scenarios.js`` runs one scenario per process and prints a JSON report of
what it saw, raw WebSocket traffic included; the checks are here. NOTES: stompjs
trims header values and decodes some escapes unlike the spec, so escaping is judged
on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fullduplex.stomp import Broker

pytestmark = pytest.mark.interop

NODE_DIR = Path(__file__).parent / "stomp_node"
TIMEOUT = 20.0


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (./scripts/test needs Node 20)"
    if not (NODE_DIR / "node_modules" / "@stomp" / "stompjs").is_dir():
        return "tests/interop/stomp_node/node_modules is missing (run ./scripts/test)"
    return None


@contextlib.asynccontextmanager
async def broker(**options: Any) -> AsyncIterator[tuple[Broker, str]]:
    instance = Broker(**options)
    server = await instance.serve_websocket("127.0.0.1", 0)
    try:
        yield instance, f"ws://127.0.0.1:{server.port}/stomp"
    finally:
        await instance.close()


async def run_scenario(url: str, name: str, **env: str) -> dict[str, Any]:
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / "scenarios.js"),
        url,
        name,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "STOMP_SCENARIO_TIMEOUT_MS": str(int(TIMEOUT * 1000)), **env},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT + 5)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    lines = out.decode().strip().splitlines()
    assert lines, f"scenarios.js {name} printed nothing: {err.decode()[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert result.pop("ok"), f"{name}: {result.get('error')} {err.decode()[-2000:]}"
    return result


async def test_connect_negotiates_v12_stomp() -> None:
    async with broker() as (_, url):
        result = await run_scenario(url, "connect")
    assert result["protocol"] == "v12.stomp"
    assert result["headers"]["version"] == "1.2"
    assert result["headers"]["server"].startswith("fullduplex/")
    assert result["closes"] == [1000]  # DISCONNECT with receipt, then a clean close


async def test_topic_with_several_subscribers() -> None:
    async with broker() as (_, url):
        result = await run_scenario(url, "topics")
    assert len(result["received"]) == 3
    for inbox in result["received"]:
        assert [m[:2] for m in inbox] == [[f"m{i}", str(i)] for i in range(5)]
        assert all(m[3] == "/topic/js" and m[4] for m in inbox)


async def test_competing_queue_consumers() -> None:
    async with broker() as (_, url):
        result = await run_scenario(url, "queues")
    assert sorted(result["a"] + result["b"]) == sorted(f"q{i}" for i in range(10))
    assert len(result["a"]) == len(result["b"]) == 5


async def test_ack_modes_nack_and_redelivery() -> None:
    async with broker() as (instance, url):
        result = await run_scenario(url, "acks")
        assert instance.router.queue_depth("/queue/cum") == 0
    assert result["auto"] == [True]
    assert result["individual"] == ["one", "two", "one", "true", True]
    assert result["cumulative"] == ["c3", "true"]


async def test_receipts_including_disconnect() -> None:
    async with broker() as (_, url):
        result = await run_scenario(url, "receipts")
    assert result["ids"] == 3
    assert result["disconnectSent"] and result["disconnectReceipt"]
    assert result["closes"] == [1000]


async def test_transactions() -> None:
    async with broker() as (instance, url):
        result = await run_scenario(url, "transactions")
        assert instance.router.queue_depth("/queue/txack") == 0
        assert instance.stats.redelivered == 0  # the committed ACK settled it
    assert result["bodies"] == ["c1", "c2", "after"]
    assert result["errors"] == []


async def test_escaping_on_the_wire() -> None:
    async with broker() as (_, url):
        result = await run_scenario(url, "escaping")
    # stompjs escapes the value as STOMP 1.2 says...
    assert "\nx-esc:a\\cb\\\\c\\nd\\re\n" in result["sent"]
    # ...and the broker forwards it escaped the same way.
    assert "\nx-esc:a\\cb\\\\c\\nd\\re\n" in result["received"]
    # stompjs does not escape header *names*: "x:colon" + "v" arrives as x = "colon:v",
    # which the broker re-escapes correctly.
    assert "\nx:colon:v\n" in result["sent"]
    assert "\nx:colon\\cv\n" in result["received"]


async def test_binary_body_with_nul_bytes() -> None:
    async with broker() as (_, url):
        result = await run_scenario(url, "binary")
    assert result == {"equal": True, "length": 11, "asBinaryMessage": True}


async def test_one_mebibyte_bodies() -> None:
    async with broker() as (_, url):
        result = await run_scenario(url, "large")
    assert result == {"text": True, "binary": True, "sizes": [1 << 20, 1 << 20]}


async def test_heartbeats_keep_an_idle_connection() -> None:
    # Both sides beat every 100 ms; the broker drops a client silent for 0.65 s.
    async with broker(heartbeat=(100, 100)) as (instance, url):
        result = await run_scenario(url, "heartbeats", STOMP_IDLE_MS="1000")
        assert instance.stats.delivered == 1
    assert result["heartBeat"] == "100,100"
    assert result["beatsIn"] >= 5 and result["beatsOut"] >= 5
    assert result["body"] == "still here"
    assert result["closes"] == [1000]


async def test_error_on_malformed_frame() -> None:
    async with broker() as (_, url):
        result = await run_scenario(url, "malformed")
    assert result["error"]["headers"]["message"] == "invalid header escape"
    assert "\\t" in result["error"]["body"]
    assert result["code"] == 1002
    assert result["bystander"] == "ok"
