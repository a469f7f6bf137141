"""Reserved bits and reserved opcodes. RFC 6455 §5.2.

"RSV1, RSV2, RSV3: MUST be 0 unless an extension is negotiated that defines meanings
for non-zero values. If a nonzero value is received and none of the negotiated
extensions defines the meaning of such a nonzero value, the receiving endpoint MUST
_Fail the WebSocket Connection_." and "If an unknown opcode is received, the receiving
endpoint MUST _Fail the WebSocket Connection_." (§7.4.1: 1002, protocol error.)
No extension is offered by these clients, so every RSV bit is unknown.
"""

from __future__ import annotations

import pytest

from .rawclient import (
    BINARY,
    CLOSE,
    PING,
    RSV1,
    RSV2,
    RSV3,
    TEXT,
    close_payload,
    encode_frame,
    raw_client,
)
from .support import assert_echo, echo_server, opcode_name

BAD_FRAMES = {TEXT: b"hello", BINARY: b"\x00\x01", PING: b"ping", CLOSE: close_payload(1000)}
RSV_VALUES = [RSV1, RSV2, RSV3, RSV1 | RSV2, RSV2 | RSV3, RSV1 | RSV2 | RSV3]
RESERVED_OPCODES = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]
GOOD = [(TEXT, b"first"), (BINARY, b"second"), (TEXT, b"third")]


@pytest.mark.parametrize("rsv", RSV_VALUES, ids=lambda r: f"rsv{r:03b}")
@pytest.mark.parametrize("opcode", list(BAD_FRAMES), ids=opcode_name)
async def test_rsv_bit_fails_1002_after_earlier_echoes(opcode: int, rsv: int) -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await assert_echo(peer, TEXT, b"before")  # delivered and echoed in full
        await peer.send_frame(opcode, BAD_FRAMES[opcode], rsv=rsv)
        assert await peer.expect_close(1002) == []


@pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3], ids=lambda r: f"rsv{r:03b}")
async def test_rsv_bit_in_the_same_write_as_good_messages(rsv: int) -> None:
    # The good messages before the bad frame may or may not be echoed before the
    # failure, but whatever is echoed comes first, whole, and in order.
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frames((op, p, True) for op, p in GOOD)
        await peer.send_frame(TEXT, "bad", rsv=rsv)
        before = await peer.expect_close(1002)
        echoed = [(f.opcode, f.payload) for f in before]
        assert all(f.fin for f in before), before
        assert echoed == GOOD[: len(echoed)], echoed


@pytest.mark.parametrize("opcode", RESERVED_OPCODES, ids=lambda op: f"op{op:X}")
@pytest.mark.parametrize("payload", [b"", b"reserved"], ids=["empty", "payload"])
async def test_reserved_opcode_fails_1002(opcode: int, payload: bytes) -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await assert_echo(peer, TEXT, b"before")
        await peer.send_frame(opcode, payload)
        assert await peer.expect_close(1002) == []


@pytest.mark.parametrize("opcode", RESERVED_OPCODES, ids=lambda op: f"op{op:X}")
async def test_reserved_opcode_in_the_same_write_as_good_messages(opcode: int) -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frames([*((op, p, True) for op, p in GOOD), (opcode, b"", True)])
        before = await peer.expect_close(1002)
        echoed = [(f.opcode, f.payload) for f in before]
        assert echoed == GOOD[: len(echoed)], echoed


async def test_reserved_opcode_inside_a_fragmented_message_fails_1002() -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(TEXT, "start", fin=False)
        await peer.send_frame(0x3, b"what is this")
        assert await peer.expect_close(1002) == []


async def test_connection_stays_usable_without_reserved_bits() -> None:
    # The control for the cases above: the same frames without RSV bits are fine.
    async with echo_server() as server, raw_client(server.port) as peer:
        for opcode, payload in GOOD:
            await assert_echo(peer, opcode, payload)


@pytest.mark.parametrize(
    ("opcode", "rsv", "payload"),
    [(TEXT, RSV1, b"rsv"), (BINARY, RSV3, b""), (0x5, 0, b"op5"), (0xC, 0, b"opC")],
    ids=["text-rsv1", "binary-rsv3", "op5", "opC"],
)
async def test_bad_header_sent_one_byte_at_a_time_fails_1002(
    opcode: int, rsv: int, payload: bytes
) -> None:
    # The parser sees the header in pieces; the verdict must not depend on that.
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send(encode_frame(opcode, payload, rsv=rsv), chop=1)
        assert await peer.expect_close(1002, reply=False) == []
