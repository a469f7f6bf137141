"""permessage-deflate (RFC 7692) end to end, over real sockets on 127.0.0.1.

Three kinds of test:

* ``test_matrix_*``: a fullduplex client against a fullduplex server for the
  parameter combinations of §7.1 (both ``*_no_context_takeover`` flags, both
  ``*_max_window_bits`` from 8 to 15, ``client_max_window_bits`` with no value, and
  each left out), set on the client's offer, on the server's limits, or on both. The
  response header is checked against a model of §7.1 written out below, not against
  the library, and a few messages (one over 64 KiB, one fragmented) must echo intact.
* raw-client tests: offers, compressed frames and broken frames made by hand, with
  ``zlib`` used directly; frames from our server are decompressed one output byte at
  a time, so a back-reference outside the agreed window fails (zlib only checks a
  distance against the window when the bytes are not in the current output buffer).
* raw-server tests: the same for our client.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

import fullduplex
from fullduplex.errors import InvalidResponse
from fullduplex.protocol.deflate import DeflateOptions

from .rawclient import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    RSV1,
    RSV2,
    RSV3,
    TEXT,
    TIMEOUT,
    HttpMessage,
    RawPeer,
    close_payload,
    open_tcp,
    raw_server,
    upgrade_headers,
)
from .support import assert_echo, echo_server

TAIL = b"\x00\x00\xff\xff"
MiB = 2**20
WINDOW_BITS = list(range(8, 16))

# ---------------------------------------------------------------------------
# Messages


def structured(size: int, seed: int, distance: int = 20_000) -> bytes:
    """Random bytes whose only repeats are ``distance`` bytes back.

    A compressor that ignores a window smaller than ``distance`` refers back that far;
    a decompressor held to the agreed window then fails.
    """
    rng = random.Random(seed)
    block = rng.randbytes(distance)
    return (block * (size // distance + 1))[:size]


def unicode_text(chars: int) -> str:
    pattern = "deflate ✓ déjà vu 😀 𝄞 "
    return (pattern * (chars // len(pattern) + 1))[:chars]


# ---------------------------------------------------------------------------
# Raw DEFLATE, independent of fullduplex


class Deflater:
    """Compresses messages as an RFC 7692 sender does (§7.2.1), with plain zlib."""

    def __init__(self, bits: int = 15, *, no_context_takeover: bool = False) -> None:
        self.wbits = -max(bits, 9)  # zlib cannot compress raw DEFLATE with 8 bits
        self.no_context_takeover = no_context_takeover
        self._c: Any = None

    def fragments(self, data: bytes, parts: int = 1) -> list[bytes]:
        """Payloads of the frames of one compressed message in ``parts`` fragments."""
        if self._c is None or self.no_context_takeover:
            self._c = zlib.compressobj(6, zlib.DEFLATED, self.wbits)
        step = -(-len(data) // parts) if data else 0
        out = []
        for i in range(parts):
            piece = data[i * step : (i + 1) * step]
            out.append(self._c.compress(piece) + self._c.flush(zlib.Z_SYNC_FLUSH))
        assert out[-1].endswith(TAIL)
        out[-1] = out[-1][:-4]
        return out

    def message(self, data: bytes) -> bytes:
        return self.fragments(data)[0]


class Inflater:
    """Decompresses what a peer sends, holding it to a window of ``bits`` (§7.2.2)."""

    def __init__(
        self, bits: int = 15, *, no_context_takeover: bool = False, strict: bool = True
    ) -> None:
        self.bits = bits
        self.no_context_takeover = no_context_takeover
        self.strict = strict  # byte by byte, checking every distance against the window
        self._d: Any = None

    def message(self, payloads: list[bytes]) -> bytes:
        if self._d is None or self.no_context_takeover:
            self._d = zlib.decompressobj(-self.bits)
        out = bytearray()
        for payload in [*payloads, TAIL]:
            out += (
                _inflate_bytewise(self._d, payload) if self.strict else self._d.decompress(payload)
            )
        return bytes(out)


def _inflate_bytewise(d: Any, data: bytes) -> bytes:
    # One output byte per call: every back-reference then goes through zlib's window,
    # whose size is the agreed one, so "invalid distance too far back" is caught.
    out = bytearray()
    while True:
        chunk = d.decompress(data, 1)
        out += chunk
        data = d.unconsumed_tail
        if not chunk and not data:
            return bytes(out)


@functools.lru_cache(maxsize=1)
def bomb() -> tuple[bytes, int]:
    """(compressed payload, size inflated): 100 MiB of zeros in about 100 KiB.

    After the first MiB the compressor's state repeats, so one MiB's worth of output
    (ending on a sync flush, hence byte-aligned) is repeated rather than recomputed.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(bytes(MiB)) + c.flush(zlib.Z_SYNC_FLUSH)
    steady = c.compress(bytes(MiB)) + c.flush(zlib.Z_SYNC_FLUSH)
    assert c.compress(bytes(MiB)) + c.flush(zlib.Z_SYNC_FLUSH) == steady
    payload = first + steady * 99
    return payload[:-4], 100 * MiB


# ---------------------------------------------------------------------------
# Sec-WebSocket-Extensions, read by hand


def parse_extensions(values: list[str]) -> list[tuple[str, dict[str, str | None]]]:
    """``a; p=1, b`` → ``[("a", {"p": "1"}), ("b", {})]`` (no quoted commas used here)."""
    result = []
    for value in values:
        for element in value.split(","):
            if not element.strip():
                continue
            name, *params = (part.strip() for part in element.split(";"))
            parsed: dict[str, str | None] = {}
            for param in params:
                key, eq, val = param.partition("=")
                assert key.strip() not in parsed, f"duplicate {key} in {value!r}"
                parsed[key.strip()] = val.strip().strip('"') if eq else None
            result.append((name, parsed))
    return result


def deflate_params(response: HttpMessage | Any) -> dict[str, str | None] | None:
    """The parameters of the one permessage-deflate element of a response, or None."""
    if isinstance(response, HttpMessage):
        values = [v for k, v in response.headers if k.lower() == "sec-websocket-extensions"]
    else:
        values = response.headers.get_all("Sec-WebSocket-Extensions")
    elements = parse_extensions(values)
    if not elements:
        return None
    assert len(elements) == 1, elements
    name, params = elements[0]
    assert name == "permessage-deflate", elements
    return params


# ---------------------------------------------------------------------------
# A model of the server's answer (§7.1), with fullduplex's documented choices


@dataclass(frozen=True)
class Agreed:
    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_bits: int  # the server compresses with at most this window
    client_bits: int  # the client compresses with at most this window
    params: dict[str, str | None]  # the response element's parameters


def expected_agreement(offer: DeflateOptions, server: DeflateOptions) -> Agreed | None:
    """What the server should answer to ``client_offer(offer)``, or None to decline.

    * ``server_no_context_takeover``: echoed if offered (§7.1.1.1 MUST), added if the
      server wants it.
    * ``client_no_context_takeover``: echoed if offered, added if the server requires it.
    * ``server_max_window_bits``: §7.1.2.1, the same or a smaller value than offered;
      the server's own limit below 15 is announced even when not asked for.
    * ``client_max_window_bits``: §7.1.2.2, only if offered, never larger than the
      offer's value; a server needing a window below 15 declines an offer without it.
    """
    server_limit = server.client_max_window_bits
    server_limit = server_limit if type(server_limit) is int else None
    if offer.client_max_window_bits is None and server_limit is not None and server_limit < 15:
        return None
    params: dict[str, str | None] = {}
    snct = offer.server_no_context_takeover or server.server_no_context_takeover
    cnct = offer.client_no_context_takeover or server.client_no_context_takeover
    if snct:
        params["server_no_context_takeover"] = None
    if cnct:
        params["client_no_context_takeover"] = None
    server_bits = min(offer.server_max_window_bits or 15, server.server_max_window_bits or 15)
    if offer.server_max_window_bits is not None or server_bits < 15:
        params["server_max_window_bits"] = str(server_bits)
    client_bits = 15
    if offer.client_max_window_bits is not None:
        offered = 15 if offer.client_max_window_bits is True else offer.client_max_window_bits
        client_bits = min(offered, server_limit or 15)
        if client_bits < 15:
            params["client_max_window_bits"] = str(client_bits)
    return Agreed(snct, cnct, server_bits, client_bits, params)


# ---------------------------------------------------------------------------
# The matrix: fullduplex client <-> fullduplex server

SERVER_BITS: list[int | None] = [None, *WINDOW_BITS]  # 9 values
CLIENT_BITS: list[int | bool | None] = [None, True, *WINDOW_BITS]  # 10 values
FLAGS = [(False, False), (True, False), (False, True), (True, True)]


def _pairs(shift: int) -> list[tuple[int | None, int | bool | None]]:
    """10 (server bits, client bits) pairs covering every value on both sides."""
    return [(SERVER_BITS[(i + shift) % 9], CLIENT_BITS[i]) for i in range(10)]


def _bits_id(value: object) -> str:
    return "none" if value is None else "novalue" if value is True else str(value)


def _cases(shifts: list[int]) -> list[Any]:
    seen = set()
    cases = []
    for shift in shifts:
        for sbits, cbits in _pairs(shift):
            for snct, cnct in FLAGS:
                key = (snct, cnct, sbits, cbits)
                if key in seen:
                    continue
                seen.add(key)
                name = f"snct{int(snct)}-cnct{int(cnct)}-s{_bits_id(sbits)}-c{_bits_id(cbits)}"
                cases.append(pytest.param(snct, cnct, sbits, cbits, id=name))
    return cases


def _options(snct: bool, cnct: bool, sbits: int | None, cbits: int | bool | None) -> DeflateOptions:
    return DeflateOptions(
        server_no_context_takeover=snct,
        client_no_context_takeover=cnct,
        server_max_window_bits=sbits,
        client_max_window_bits=cbits,
    )


MATRIX_MESSAGES: list[Any] = [
    "small, under the threshold",
    structured(40_000, 1),
    unicode_text(70_000),  # over 64 KiB in UTF-8
    [b"frag-one " * 500, b"frag-two " * 500, structured(5_000, 2, 3_000)],
    unicode_text(70_000),  # the same again: with context takeover, refers to the last one
    b"",
]


async def _run_matrix_case(client_options: DeflateOptions, server_options: DeflateOptions) -> None:
    agreed = expected_agreement(client_options, server_options)
    async with (
        echo_server(compression=server_options) as server,
        fullduplex.connect(
            f"ws://127.0.0.1:{server.port}/", compression=client_options, proxy=None
        ) as conn,
    ):
        params = deflate_params(conn.response)
        codec = conn.protocol.deflate
        if agreed is None:
            assert params is None
            assert codec is None
        else:
            assert params == agreed.params
            assert codec is not None
            assert codec.local_max_window_bits == agreed.client_bits
            assert codec.remote_max_window_bits == agreed.server_bits
            assert codec.local_no_context_takeover == agreed.client_no_context_takeover
            assert codec.remote_no_context_takeover == agreed.server_no_context_takeover
        for message in MATRIX_MESSAGES:
            await conn.send(message)
            expected = b"".join(message) if isinstance(message, list) else message
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == expected
        for server_conn in server.connections:
            assert server_conn.protocol.extensions == (
                "" if agreed is None else conn.protocol.extensions
            )


@pytest.mark.parametrize(("snct", "cnct", "sbits", "cbits"), _cases([0, 4]))
async def test_matrix_client_offers(
    snct: bool, cnct: bool, sbits: int | None, cbits: int | bool | None
) -> None:
    """The client asks for the parameters; the server has default limits."""
    await _run_matrix_case(_options(snct, cnct, sbits, cbits), DeflateOptions())


@pytest.mark.parametrize(("snct", "cnct", "sbits", "cbits"), _cases([2]))
async def test_matrix_server_limits(
    snct: bool, cnct: bool, sbits: int | None, cbits: int | bool | None
) -> None:
    """The server sets the parameters; the client offers the defaults."""
    await _run_matrix_case(DeflateOptions(), _options(snct, cnct, sbits, cbits))


@pytest.mark.parametrize(("snct", "cnct", "sbits", "cbits"), _cases([6]))
async def test_matrix_both_sides(
    snct: bool, cnct: bool, sbits: int | None, cbits: int | bool | None
) -> None:
    """Both set limits: the client's mirrored (``15 - (b - 8)``) against the server's."""

    def mirror(bits: Any) -> Any:
        return 23 - bits if type(bits) is int else bits

    client = _options(snct, not cnct, mirror(sbits), mirror(cbits))
    server = _options(not snct, cnct, sbits, cbits if cbits is not True else 12)
    await _run_matrix_case(client, server)


async def test_matrix_declined_offer_without_client_max_window_bits() -> None:
    # The server needs a 10-bit client window; an offer without client_max_window_bits
    # cannot promise it, so it is declined and the connection runs uncompressed.
    client = DeflateOptions(client_max_window_bits=None)
    server = DeflateOptions(client_max_window_bits=10)
    assert expected_agreement(client, server) is None
    await _run_matrix_case(client, server)


# ---------------------------------------------------------------------------
# Raw client: negotiation


def offer_headers(port: int, *offers: str) -> list[tuple[str, str]]:
    """An upgrade request with one ``Sec-WebSocket-Extensions`` line per offer."""
    return upgrade_headers(port) + [("Sec-WebSocket-Extensions", offer) for offer in offers]


@asynccontextmanager
async def raw_deflate_client(port: int, *offers: str) -> AsyncIterator[tuple[RawPeer, HttpMessage]]:
    """A raw client past the opening handshake with ``offers``; yields the 101 too."""
    peer = await open_tcp(port)
    try:
        response = await peer.handshake(offer_headers(port, *offers))
        assert response.status == 101, response
        yield peer, response
    finally:
        await peer.aclose()


async def send_compressed(
    peer: RawPeer, opcode: int, payloads: list[bytes], *, chop: int | None = None
) -> None:
    """One compressed message: RSV1 on the first frame only (§6)."""
    for i, payload in enumerate(payloads):
        await peer.send_frame(
            opcode if i == 0 else CONT,
            payload,
            fin=i == len(payloads) - 1,
            rsv=RSV1 if i == 0 else 0,
            chop=chop,
        )


async def recv_frames(peer: RawPeer) -> list[Any]:
    """The frames of the next data message, control frames failing the test."""
    frames = []
    while True:
        frame = await peer.recv_frame()
        assert frame.opcode in (TEXT, BINARY, CONT), frame
        frames.append(frame)
        if frame.fin:
            return frames


async def recv_compressed(peer: RawPeer, inflater: Inflater) -> tuple[int, bytes]:
    """Receive one message that must be compressed; return (opcode, inflated data)."""
    frames = await recv_frames(peer)
    assert frames[0].rsv == RSV1, frames
    assert all(f.rsv == 0 for f in frames[1:]), frames  # §6: RSV1 on the first frame only
    return frames[0].opcode, inflater.message([f.payload for f in frames])


async def recv_plain(peer: RawPeer) -> tuple[int, bytes]:
    frames = await recv_frames(peer)
    assert all(f.rsv == 0 for f in frames), frames
    return frames[0].opcode, b"".join(f.payload for f in frames)


@pytest.mark.parametrize(
    ("offers", "expected"),
    [
        pytest.param(["permessage-deflate"], {}, id="bare"),
        pytest.param(
            ["permessage-deflate; client_max_window_bits"], {}, id="client-bits-novalue-15"
        ),
        pytest.param(
            ["permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=10"],
            {"server_max_window_bits": "10"},
            id="unknown-param-then-good",
        ),
        pytest.param(
            [
                "permessage-deflate; server_max_window_bits=10, permessage-deflate; "
                "server_max_window_bits=12"
            ],
            {"server_max_window_bits": "10"},
            id="first-of-two-good",
        ),
        pytest.param(
            ["x-webkit-deflate-frame, permessage-deflate; client_no_context_takeover"],
            {"client_no_context_takeover": None},
            id="other-extension-first",
        ),
        pytest.param(
            [
                "permessage-deflate; server_max_window_bits=16",
                "permessage-deflate; server_no_context_takeover",
            ],
            {"server_no_context_takeover": None},
            id="bad-then-good-on-two-lines",
        ),
        pytest.param(
            ['permessage-deflate; server_max_window_bits="9"; client_max_window_bits="11"'],
            {"server_max_window_bits": "9", "client_max_window_bits": "11"},
            id="quoted-values",
        ),
        pytest.param(
            [
                "permessage-deflate;server_no_context_takeover;client_no_context_takeover;"
                "server_max_window_bits=8;client_max_window_bits=8"
            ],
            {
                "server_no_context_takeover": None,
                "client_no_context_takeover": None,
                "server_max_window_bits": "8",
                "client_max_window_bits": "8",
            },
            id="everything-no-spaces",
        ),
    ],
)
async def test_offers_first_acceptable_wins(offers: list[str], expected: dict[str, Any]) -> None:
    async with echo_server() as server, raw_deflate_client(server.port, *offers) as (peer, resp):
        assert deflate_params(resp) == expected
        bits = int(expected.get("server_max_window_bits") or 15)
        client_bits = int(expected.get("client_max_window_bits") or 15)
        inflater = Inflater(bits, no_context_takeover="server_no_context_takeover" in expected)
        deflater = Deflater(
            client_bits, no_context_takeover="client_no_context_takeover" in expected
        )
        data = structured(30_000, 3, 1_000)
        for _ in range(2):
            await send_compressed(peer, BINARY, [deflater.message(data)])
            assert await recv_compressed(peer, inflater) == (BINARY, data)


REFUSED_OFFERS = {
    "unknown-param": "permessage-deflate; foo",
    "unknown-param-value": "permessage-deflate; max_window_bits=10",
    "duplicate-flag": "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "duplicate-bits": "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
    "duplicate-server-bits": (
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"
    ),
    "server-bits-7": "permessage-deflate; server_max_window_bits=7",
    "server-bits-16": "permessage-deflate; server_max_window_bits=16",
    "server-bits-leading-zero": "permessage-deflate; server_max_window_bits=09",
    "server-bits-no-value": "permessage-deflate; server_max_window_bits",
    "server-bits-word": "permessage-deflate; server_max_window_bits=ten",
    "client-bits-0": "permessage-deflate; client_max_window_bits=0",
    "client-bits-16": "permessage-deflate; client_max_window_bits=16",
    "client-bits-signed": "permessage-deflate; client_max_window_bits=+9",
    "flag-with-value": "permessage-deflate; server_no_context_takeover=1",
    "client-flag-with-value": "permessage-deflate; client_no_context_takeover=true",
    "other-extension-only": "x-webkit-deflate-frame",
    "name-prefix": "permessage-deflate-ish",
}


@pytest.mark.parametrize("offer", list(REFUSED_OFFERS.values()), ids=list(REFUSED_OFFERS))
async def test_refused_offer_runs_uncompressed(offer: str) -> None:
    async with echo_server() as server, raw_deflate_client(server.port, offer) as (peer, resp):
        assert deflate_params(resp) is None, resp
        big = unicode_text(1_000).encode()
        await assert_echo(peer, TEXT, big)  # not compressed: the server sets no RSV1
        await peer.send_frame(TEXT, Deflater().message(big), rsv=RSV1)
        assert await peer.expect_close(1002) == []


async def test_server_declines_offer_without_client_bits_it_needs() -> None:
    options = DeflateOptions(client_max_window_bits=10)
    async with (
        echo_server(compression=options) as server,
        raw_deflate_client(
            server.port,
            "permessage-deflate, permessage-deflate; client_max_window_bits=12",
        ) as (peer, resp),
    ):
        assert deflate_params(resp) == {"client_max_window_bits": "10"}
        data = structured(20_000, 4, 2_000)
        await send_compressed(peer, BINARY, [Deflater(10).message(data)])
        assert await recv_compressed(peer, Inflater()) == (BINARY, data)


@pytest.mark.parametrize("client_offers", [True, False], ids=["client-offers", "no-offer"])
async def test_compression_none_on_the_server(client_offers: bool) -> None:
    async with echo_server(compression=None) as server:
        offers = ["permessage-deflate; client_max_window_bits"] if client_offers else []
        async with raw_deflate_client(server.port, *offers) as (peer, resp):
            assert deflate_params(resp) is None
            big = b"x" * 10_000
            await peer.send_frame(BINARY, big)
            assert await recv_plain(peer) == (BINARY, big)
            # §5.2 of RFC 6455: RSV1 with no extension agreed fails the connection.
            await peer.send_frame(BINARY, Deflater().message(big), rsv=RSV1)
            assert await peer.expect_close(1002) == []
        async with fullduplex.connect(f"ws://127.0.0.1:{server.port}/", proxy=None) as conn:
            assert conn.protocol.deflate is None
            assert deflate_params(conn.response) is None
            await conn.send(big)
            assert await conn.recv() == big


async def test_compression_none_on_the_client() -> None:
    async with echo_server() as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with fullduplex.connect(url, compression=None, proxy=None) as conn:
            assert deflate_params(conn.response) is None
            assert conn.protocol.deflate is None
            (server_conn,) = server.connections
            assert server_conn.request.headers.get_all("Sec-WebSocket-Extensions") == []
            assert server_conn.protocol.deflate is None
            assert server_conn.protocol.extensions == ""
            for message in ("é" * 50_000, bytes(100_000)):
                await conn.send(message)
                assert await conn.recv() == message


# ---------------------------------------------------------------------------
# Raw client: the server's compressed frames honour what was agreed


@pytest.mark.parametrize("bits", WINDOW_BITS)
async def test_server_compresses_within_server_max_window_bits(bits: int) -> None:
    offer = f"permessage-deflate; server_max_window_bits={bits}"
    async with echo_server() as server, raw_deflate_client(server.port, offer) as (peer, resp):
        assert deflate_params(resp) == {"server_max_window_bits": str(bits)}
        # Repeats just beyond the window: a larger window would refer back to them.
        data = structured(2 * (2**bits + 1_000), bits, 2**bits + 1_000)
        inflater = Inflater(bits)
        for _ in range(2):  # the second message, with context takeover, too
            await peer.send_frame(BINARY, data)
            assert await recv_compressed(peer, inflater) == (BINARY, data)


@pytest.mark.parametrize("bits", WINDOW_BITS)
async def test_server_inflates_client_max_window_bits(bits: int) -> None:
    offer = f"permessage-deflate; client_max_window_bits={bits}"
    async with echo_server() as server, raw_deflate_client(server.port, offer) as (peer, resp):
        assert deflate_params(resp) == ({} if bits == 15 else {"client_max_window_bits": str(bits)})
        deflater = Deflater(bits)
        inflater = Inflater()
        data = structured(3 * 2**bits, bits, 2**bits - 300 if bits > 9 else 200)
        for _ in range(3):
            await send_compressed(peer, BINARY, deflater.fragments(data, 3))
            assert await recv_compressed(peer, inflater) == (BINARY, data)


@pytest.mark.parametrize("takeover", [True, False], ids=["takeover", "no-takeover"])
async def test_server_context_takeover_on_the_wire(takeover: bool) -> None:
    offer = "permessage-deflate" + ("" if takeover else "; server_no_context_takeover")
    async with echo_server() as server, raw_deflate_client(server.port, offer) as (peer, _):
        data = random.Random(5).randbytes(2_000)
        sizes = []
        inflater = Inflater(no_context_takeover=not takeover)
        for _ in range(3):
            await peer.send_frame(BINARY, data)
            frames = await recv_frames(peer)
            sizes.append(sum(len(f.payload) for f in frames))
            assert inflater.message([f.payload for f in frames]) == data
            if not takeover:
                # Each message must inflate on its own, from an empty window.
                assert Inflater().message([f.payload for f in frames]) == data
        if takeover:
            assert sizes[1] < sizes[0] // 10, sizes  # the repeat is a back-reference
        else:
            assert sizes[0] == sizes[1] == sizes[2], sizes


async def test_client_context_takeover_and_uncompressed_messages_in_between() -> None:
    # The LZ77 window carries over compressed messages only: an uncompressed message
    # in between must not enter it (§7.2.1 compresses message payloads only).
    async with (
        echo_server() as server,
        raw_deflate_client(server.port, "permessage-deflate") as (
            peer,
            _,
        ),
    ):
        deflater = Deflater()
        first = random.Random(6).randbytes(5_000)
        await send_compressed(peer, BINARY, [deflater.message(first)])
        inflater = Inflater()
        assert await recv_compressed(peer, inflater) == (BINARY, first)
        await assert_echo(peer, BINARY, b"plain " * 20)  # under the threshold
        await send_compressed(peer, TEXT, [deflater.message(b"text " * 100)])
        second = deflater.message(first)
        assert len(second) < 100  # a back-reference into the first message
        await send_compressed(peer, BINARY, [second])
        assert await recv_compressed(peer, inflater) == (TEXT, b"text " * 100)
        assert await recv_compressed(peer, inflater) == (BINARY, first)


async def test_client_breaking_its_no_context_takeover_promise_fails_1007() -> None:
    # With client_no_context_takeover agreed the server drops its decompressor after
    # each message; a client that refers back anyway gets 1007, never wrong data.
    offer = "permessage-deflate; client_no_context_takeover"
    async with echo_server() as server, raw_deflate_client(server.port, offer) as (peer, _):
        deflater = Deflater()  # keeps its window, against the agreement
        data = random.Random(12).randbytes(1_000)
        await send_compressed(peer, BINARY, [deflater.message(data)])
        assert await recv_compressed(peer, Inflater()) == (BINARY, data)
        await send_compressed(peer, BINARY, [deflater.message(data)])
        assert await peer.expect_close(1007) == []


async def test_no_max_size_with_compression() -> None:
    async with echo_server(max_size=None) as server:
        async with raw_deflate_client(server.port, "permessage-deflate") as (peer, _):
            data = bytes(3 * MiB)
            inflater = Inflater(strict=False)
            for parts in (1, 2):
                await send_compressed(peer, BINARY, Deflater().fragments(data, parts))
                assert await recv_compressed(peer, inflater) == (BINARY, data)
        async with raw_deflate_client(server.port, "permessage-deflate") as (peer, _):
            await peer.send_frame(BINARY, CORRUPT["invalid-block-type"], rsv=RSV1)
            assert await peer.expect_close(1007) == []


async def test_client_no_context_takeover_with_final_blocks() -> None:
    # §7.2.3.4: a sender may end a message with a BFINAL=1 block (Z_FINISH) when it
    # starts every message afresh.
    offer = "permessage-deflate; client_no_context_takeover"
    async with echo_server() as server, raw_deflate_client(server.port, offer) as (peer, resp):
        assert deflate_params(resp) == {"client_no_context_takeover": None}
        inflater = Inflater()
        for text in ("one " * 100, "two " * 200, "three " * 300):
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = c.compress(text.encode()) + c.flush(zlib.Z_FINISH)
            await send_compressed(peer, TEXT, [payload])
            assert await recv_compressed(peer, inflater) == (TEXT, text.encode())


@pytest.mark.parametrize(
    ("payload", "opcode"),
    [
        pytest.param(b"", TEXT, id="empty-payload"),
        pytest.param(b"\x00", BINARY, id="empty-stored-block"),  # §7.2.3.6
        pytest.param(bytes.fromhex("f248cdc9c90700"), TEXT, id="rfc-hello"),  # §7.2.3.1
        pytest.param(
            bytes.fromhex("000500faff48656c6c6f"), TEXT, id="rfc-stored-hello"
        ),  # §7.2.3.3
    ],
)
async def test_rfc_7692_payloads(payload: bytes, opcode: int) -> None:
    async with (
        echo_server() as server,
        raw_deflate_client(server.port, "permessage-deflate") as (
            peer,
            _,
        ),
    ):
        await peer.send_frame(opcode, payload, rsv=RSV1)
        expected = b"" if len(payload) <= 1 else b"Hello"
        assert await recv_plain(peer) == (opcode, expected)  # under the threshold: plain


async def test_rfc_7692_fragmented_hello() -> None:
    # §7.2.3.1: "Hello" compressed, then cut into two fragments.
    async with (
        echo_server() as server,
        raw_deflate_client(server.port, "permessage-deflate") as (
            peer,
            _,
        ),
    ):
        await send_compressed(peer, TEXT, [bytes.fromhex("f248cd"), bytes.fromhex("c9c90700")])
        assert await recv_plain(peer) == (TEXT, b"Hello")


async def test_compressed_fragments_with_control_frames_and_empty_fragments() -> None:
    async with (
        echo_server() as server,
        raw_deflate_client(server.port, "permessage-deflate") as (
            peer,
            _,
        ),
    ):
        text = unicode_text(30_000).encode()
        parts = Deflater().fragments(text, 4)
        await peer.send_frame(TEXT, parts[0], fin=False, rsv=RSV1)
        await peer.send_frame(CONT, b"", fin=False)
        await peer.send_frame(PING, b"mid")
        await peer.send_frame(CONT, parts[1], fin=False, chop=7)
        await peer.send_frame(CONT, parts[2], fin=False)
        # An empty stored block, whole (a lone 0x00 is one only at the end, §7.2.3.6).
        await peer.send_frame(CONT, b"\x00\x00\x00\xff\xff", fin=False)
        await peer.send_frame(CONT, parts[3], fin=True)
        pong = await peer.recv_frame()
        assert (pong.opcode, pong.payload, pong.rsv) == (PONG, b"mid", 0)
        assert await recv_compressed(peer, Inflater()) == (TEXT, text)


# ---------------------------------------------------------------------------
# Raw client: what our server sends


async def test_threshold_small_messages_go_uncompressed() -> None:
    async with (
        echo_server() as server,
        raw_deflate_client(server.port, "permessage-deflate") as (
            peer,
            _,
        ),
    ):
        inflater = Inflater()
        for size in (0, 1, 64, 127):
            await peer.send_frame(TEXT, b"a" * size)
            assert await recv_plain(peer) == (TEXT, b"a" * size)
        for size in (128, 1_000, 70_000):
            await peer.send_frame(BINARY, b"b" * size)
            assert await recv_compressed(peer, inflater) == (BINARY, b"b" * size)


@pytest.mark.parametrize("threshold", [0, 1_000])
async def test_threshold_option(threshold: int) -> None:
    options = DeflateOptions(threshold=threshold)
    async with (
        echo_server(compression=options) as server,
        raw_deflate_client(server.port, "permessage-deflate") as (peer, _),
    ):
        inflater = Inflater()
        for size in (0, 5, 999, 1_000, 5_000):
            await peer.send_frame(TEXT, b"t" * size)
            if size >= threshold:
                assert await recv_compressed(peer, inflater) == (TEXT, b"t" * size)
            else:
                assert await recv_plain(peer) == (TEXT, b"t" * size)


async def test_send_compress_flag_on_the_wire() -> None:
    big = "z" * 10_000

    async def handler(conn: Any) -> None:
        await conn.recv()
        await conn.send(big, compress=False)
        await conn.send(b"tiny", compress=True)
        await conn.send(big)
        await conn.send([b"x" * 1_000, b"y" * 1_000, b"z" * 1_000], compress=False)
        await conn.send(["frag " * 100, "ment " * 100, ""])
        await conn.send(iter([b"a", b"b"]), compress=True)
        await conn.wait_closed()

    async with (
        echo_server(handler) as server,
        raw_deflate_client(server.port, "permessage-deflate") as (peer, _),
    ):
        await peer.send_frame(TEXT, "go")
        inflater = Inflater()
        assert await recv_plain(peer) == (TEXT, big.encode())
        assert await recv_compressed(peer, inflater) == (BINARY, b"tiny")
        assert await recv_compressed(peer, inflater) == (TEXT, big.encode())
        frames = await recv_frames(peer)
        assert len(frames) == 3 and all(f.rsv == 0 for f in frames), frames
        assert b"".join(f.payload for f in frames) == b"x" * 1_000 + b"y" * 1_000 + b"z" * 1_000
        frames = await recv_frames(peer)
        assert len(frames) == 3, frames
        assert [f.rsv for f in frames] == [RSV1, 0, 0], frames
        assert (
            inflater.message([f.payload for f in frames])
            == ("frag " * 100 + "ment " * 100).encode()
        )
        assert await recv_compressed(peer, inflater) == (BINARY, b"ab")
        await peer.send_close(1000)
        await peer.expect_close(1000, reply=False)


# ---------------------------------------------------------------------------
# Raw client: reserved bits with the extension agreed


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE], ids=["ping", "pong", "close"])
async def test_rsv1_on_a_control_frame_fails_1002(opcode: int) -> None:
    async with (
        echo_server() as server,
        raw_deflate_client(server.port, "permessage-deflate") as (
            peer,
            _,
        ),
    ):
        await assert_echo(peer, TEXT, b"before")
        payload = close_payload(1000) if opcode == CLOSE else b"ctl"
        await peer.send_frame(opcode, payload, rsv=RSV1)
        assert await peer.expect_close(1002) == []


@pytest.mark.parametrize("first_compressed", [True, False], ids=["compressed", "plain"])
async def test_rsv1_on_a_continuation_frame_fails_1002(first_compressed: bool) -> None:
    async with (
        echo_server() as server,
        raw_deflate_client(server.port, "permessage-deflate") as (
            peer,
            _,
        ),
    ):
        parts = Deflater().fragments(b"hello " * 100, 2)
        if first_compressed:
            await peer.send_frame(TEXT, parts[0], fin=False, rsv=RSV1)
        else:
            await peer.send_frame(TEXT, b"hello " * 50, fin=False)
        await peer.send_frame(CONT, parts[1], fin=True, rsv=RSV1)
        assert await peer.expect_close(1002) == []


@pytest.mark.parametrize(
    "rsv", [RSV2, RSV3, RSV1 | RSV2, RSV1 | RSV3, RSV1 | RSV2 | RSV3], ids=lambda r: f"rsv{r:03b}"
)
async def test_rsv2_rsv3_with_deflate_fail_1002(rsv: int) -> None:
    async with (
        echo_server() as server,
        raw_deflate_client(server.port, "permessage-deflate") as (
            peer,
            _,
        ),
    ):
        await peer.send_frame(TEXT, Deflater().message(b"hello " * 100), rsv=rsv)
        assert await peer.expect_close(1002) == []


async def test_rsv1_without_an_offer_fails_1002() -> None:
    async with echo_server() as server, raw_deflate_client(server.port) as (peer, resp):
        assert deflate_params(resp) is None
        await peer.send_frame(TEXT, Deflater().message(b"hello " * 100), rsv=RSV1)
        assert await peer.expect_close(1002) == []


# ---------------------------------------------------------------------------
# Raw client: limits and invalid data


@pytest.mark.parametrize("how", ["one-frame", "one-frame-chopped", "fragments"])
async def test_compression_bomb_fails_1009_promptly(how: str) -> None:
    payload, inflated = bomb()
    assert len(payload) < 120_000 and inflated == 100 * MiB
    tracemalloc.start()
    try:
        async with (
            echo_server() as server,
            raw_deflate_client(server.port, "permessage-deflate") as (peer, _),
        ):
            started = time.monotonic()
            if how == "one-frame":
                await peer.send_frame(BINARY, payload, rsv=RSV1)
            elif how == "one-frame-chopped":
                await peer.send_frame(BINARY, payload, rsv=RSV1, chop=8_192)
            else:
                n = len(payload) // 10 + 1
                await send_compressed(
                    peer, BINARY, [payload[i : i + n] for i in range(0, len(payload), n)]
                )
            assert await peer.expect_close(1009) == []
            elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0, elapsed
    # max_size is 1 MiB: a few times that, never anywhere near 100 MiB.
    assert peak < 16 * MiB, peak


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("parts", [1, 4], ids=["one-frame", "fragments"])
async def test_max_size_counts_inflated_bytes(opcode: int, parts: int) -> None:
    limit = 5_000
    async with echo_server(max_size=limit) as server:
        async with raw_deflate_client(server.port, "permessage-deflate") as (peer, _):
            exact = b"q" * limit  # compresses to a few bytes; inflates to max_size exactly
            await send_compressed(peer, opcode, Deflater().fragments(exact, parts))
            assert await recv_compressed(peer, Inflater()) == (opcode, exact)
        async with raw_deflate_client(server.port, "permessage-deflate") as (peer, _):
            await send_compressed(peer, opcode, Deflater().fragments(exact + b"q", parts))
            assert await peer.expect_close(1009) == []


async def test_max_size_applies_to_the_inflated_size_not_the_wire_size() -> None:
    # Random bytes do not compress: the payload is a little longer than max_size, but
    # the message is exactly max_size bytes, so it is accepted.
    limit = 70_000
    data = random.Random(11).randbytes(limit)
    async with (
        echo_server(max_size=limit) as server,
        raw_deflate_client(server.port, "permessage-deflate") as (peer, _),
    ):
        inflater = Inflater(strict=False)
        for parts in (1, 3):
            # A fresh compressor each time: no back-reference to the previous copy.
            payloads = Deflater(no_context_takeover=True).fragments(data, parts)
            assert sum(map(len, payloads)) > limit
            await send_compressed(peer, BINARY, payloads)
            assert await recv_compressed(peer, inflater) == (BINARY, data)


def _zdict_stream() -> bytes:
    # Back-references into a preset dictionary the receiver does not have.
    c = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=b"a preset dictionary " * 10)
    return c.compress(b"a preset dictionary " * 5) + c.flush(zlib.Z_SYNC_FLUSH)[:-4]


CORRUPT = {
    "invalid-block-type": b"\x07\x00\x00\x00",
    "stored-length-mismatch": b"\x00\x05\x00\x00\x00hello",
    "distance-too-far-back": _zdict_stream(),
    "garbage": bytes(range(255, 0, -7)) * 4,
}


@pytest.mark.parametrize("parts", [1, 2], ids=["one-frame", "fragments"])
@pytest.mark.parametrize("payload", list(CORRUPT.values()), ids=list(CORRUPT))
async def test_corrupt_deflate_data_fails_1007(payload: bytes, parts: int) -> None:
    async with (
        echo_server() as server,
        raw_deflate_client(server.port, "permessage-deflate") as (
            peer,
            _,
        ),
    ):
        await assert_echo(peer, TEXT, b"before")
        half = len(payload) // 2
        chunks = [payload] if parts == 1 else [payload[:half], payload[half:]]
        await send_compressed(peer, BINARY, chunks)
        assert await peer.expect_close(1007) == []


@pytest.mark.parametrize("parts", [1, 3], ids=["one-frame", "fragments"])
@pytest.mark.parametrize(
    "text",
    [b"caf\xc3", b"ok \xff ok " * 50, b"\xed\xa0\x80 surrogate", b"x" * 10_000 + b"\xc0\xaf"],
    ids=["truncated", "ff-byte", "surrogate", "late-overlong"],
)
async def test_compressed_text_with_invalid_utf8_fails_1007(text: bytes, parts: int) -> None:
    async with (
        echo_server() as server,
        raw_deflate_client(server.port, "permessage-deflate") as (
            peer,
            _,
        ),
    ):
        await send_compressed(peer, TEXT, Deflater().fragments(text, parts))
        assert await peer.expect_close(1007) == []


async def test_compressed_text_split_inside_utf8_sequences() -> None:
    text = unicode_text(20_000).encode()
    async with (
        echo_server() as server,
        raw_deflate_client(server.port, "permessage-deflate") as (
            peer,
            _,
        ),
    ):
        # Fragments of the uncompressed text end in the middle of 4-byte sequences.
        await send_compressed(peer, TEXT, Deflater().fragments(text, 13), chop=1_000)
        assert await recv_compressed(peer, Inflater()) == (TEXT, text)


# ---------------------------------------------------------------------------
# Raw server: our client


@asynccontextmanager
async def client_against_raw_server(
    response_extension: str | None, **connect_kwargs: Any
) -> AsyncIterator[tuple[Any, RawPeer, HttpMessage]]:
    """Our client connected to a raw server answering with ``response_extension``."""
    async with raw_server() as server:
        extra = (
            [] if response_extension is None else [("Sec-WebSocket-Extensions", response_extension)]
        )
        connecting = asyncio.ensure_future(
            fullduplex.connect(server.url, proxy=None, close_timeout=1, **connect_kwargs)
        )
        try:
            peer = await server.accept()
            request = await peer.accept_handshake(extra=extra)
            conn = await asyncio.wait_for(connecting, TIMEOUT)
        finally:
            if not connecting.done():
                connecting.cancel()
        try:
            yield conn, peer, request
        finally:
            conn.protocol.abort()
            await asyncio.wait_for(conn.wait_closed(), TIMEOUT)


async def expect_client_close(peer: RawPeer, code: int) -> None:
    """Read up to our client's close frame and check its code (the server then hangs up)."""
    while True:
        frame = await peer.recv_frame()
        if frame.opcode == CLOSE:
            assert frame.close_code == code, frame
            return


async def test_client_offer_by_default() -> None:
    async with client_against_raw_server(None) as (conn, peer, request):
        assert request.get("Sec-WebSocket-Extensions") == (
            "permessage-deflate; client_max_window_bits"
        )
        assert conn.protocol.deflate is None
        await conn.send(b"b" * 10_000)
        frame = await peer.recv_frame()
        assert frame.rsv == 0 and frame.payload == b"b" * 10_000
        # Not agreed: RSV1 from the server fails the connection.
        await peer.send_frame(BINARY, Deflater().message(b"x" * 300), rsv=RSV1)
        await expect_client_close(peer, 1002)


@pytest.mark.parametrize("bits", WINDOW_BITS)
async def test_client_compresses_within_client_max_window_bits(bits: int) -> None:
    response = f"permessage-deflate; client_max_window_bits={bits}"
    async with client_against_raw_server(response) as (conn, peer, _):
        data = structured(2 * (2**bits + 1_000), bits, 2**bits + 1_000)
        inflater = Inflater(bits)
        for _ in range(2):
            await conn.send(data)
            assert await recv_compressed(peer, inflater) == (BINARY, data)


@pytest.mark.parametrize("bits", WINDOW_BITS)
async def test_client_inflates_server_max_window_bits(bits: int) -> None:
    options = DeflateOptions(server_max_window_bits=bits)
    response = f"permessage-deflate; server_max_window_bits={bits}"
    async with client_against_raw_server(response, compression=options) as (conn, peer, request):
        assert f"server_max_window_bits={bits}" in (request.get("Sec-WebSocket-Extensions") or "")
        deflater = Deflater(bits)
        data = structured(3 * 2**bits, bits, 2**bits - 300 if bits > 9 else 200)
        for _ in range(3):
            await send_compressed(peer, BINARY, deflater.fragments(data, 2))
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == data


@pytest.mark.parametrize("takeover", [True, False], ids=["takeover", "no-takeover"])
async def test_client_context_takeover_on_the_wire(takeover: bool) -> None:
    response = "permessage-deflate" + ("" if takeover else "; client_no_context_takeover")
    async with client_against_raw_server(response) as (conn, peer, _):
        data = random.Random(7).randbytes(2_000)
        sizes = []
        inflater = Inflater(no_context_takeover=not takeover)
        for _ in range(3):
            await conn.send(data)
            frames = await recv_frames(peer)
            assert frames[0].rsv == RSV1
            sizes.append(len(frames[0].payload))
            assert inflater.message([frames[0].payload]) == data
        if takeover:
            assert sizes[1] < sizes[0] // 10, sizes
        else:
            assert sizes[0] == sizes[1] == sizes[2], sizes


async def test_client_keeps_its_own_promises_when_the_server_does_not_echo_them() -> None:
    # We offered client_max_window_bits=10 and client_no_context_takeover; the server
    # answers with neither. The offer was a promise (§7.1.1.2, §7.1.2.2): keep it.
    options = DeflateOptions(client_no_context_takeover=True, client_max_window_bits=10)
    async with client_against_raw_server("permessage-deflate", compression=options) as (
        conn,
        peer,
        request,
    ):
        offer = request.get("Sec-WebSocket-Extensions") or ""
        assert "client_no_context_takeover" in offer and "client_max_window_bits=10" in offer
        data = structured(2 * (2**10 + 1_000), 10, 2**10 + 1_000)
        sizes = []
        for _ in range(2):
            await conn.send(data)
            frames = await recv_frames(peer)
            assert frames[0].rsv == RSV1
            sizes.append(len(frames[0].payload))
            assert Inflater(10).message([frames[0].payload]) == data
        assert sizes[0] == sizes[1], sizes


@pytest.mark.parametrize("bits", [8, 9, 12])
async def test_client_accepts_a_server_window_it_did_not_ask_for(bits: int) -> None:
    response = f"permessage-deflate; server_max_window_bits={bits}"
    async with client_against_raw_server(response) as (conn, peer, _):
        assert conn.protocol.deflate is not None
        assert conn.protocol.deflate.remote_max_window_bits == bits
        deflater = Deflater(bits)
        data = structured(5_000, bits, 200)
        for _ in range(2):
            await send_compressed(peer, TEXT, deflater.fragments(data.hex().encode(), 2))
            assert await asyncio.wait_for(conn.recv(), TIMEOUT) == data.hex()


async def test_client_rsv1_rules() -> None:
    async with client_against_raw_server("permessage-deflate") as (conn, peer, _):
        await peer.send_frame(TEXT, Deflater().message(b"fine " * 50), rsv=RSV1)
        assert await asyncio.wait_for(conn.recv(), TIMEOUT) == "fine " * 50
        await peer.send_frame(PING, b"x", rsv=RSV1)
        await expect_client_close(peer, 1002)


async def test_client_compression_bomb_fails_1009() -> None:
    payload, _ = bomb()
    async with client_against_raw_server("permessage-deflate") as (_conn, peer, _):
        started = time.monotonic()
        await peer.send_frame(BINARY, payload, rsv=RSV1)
        await expect_client_close(peer, 1009)
        assert time.monotonic() - started < 2.0


async def test_client_corrupt_data_fails_1007() -> None:
    async with client_against_raw_server("permessage-deflate") as (_conn, peer, _):
        await peer.send_frame(BINARY, CORRUPT["invalid-block-type"], rsv=RSV1)
        await expect_client_close(peer, 1007)


@pytest.mark.parametrize(
    ("options", "response"),
    [
        pytest.param(None, "permessage-deflate", id="not-offered"),
        pytest.param({}, "x-unknown", id="other-extension"),
        pytest.param({}, "permessage-deflate, permessage-deflate", id="twice"),
        pytest.param({}, "permessage-deflate; foo", id="unknown-param"),
        pytest.param({}, "permessage-deflate; client_max_window_bits", id="client-bits-no-value"),
        pytest.param({}, "permessage-deflate; server_max_window_bits=16", id="bad-bits"),
        pytest.param(
            {"client_max_window_bits": None},
            "permessage-deflate; client_max_window_bits=10",
            id="client-bits-not-offered",
        ),
        pytest.param(
            {"client_max_window_bits": 10},
            "permessage-deflate; client_max_window_bits=11",
            id="client-bits-larger",
        ),
        pytest.param(
            {"server_max_window_bits": 10},
            "permessage-deflate; server_max_window_bits=11",
            id="server-bits-larger",
        ),
        pytest.param(
            {"server_max_window_bits": 10}, "permessage-deflate", id="server-bits-left-out"
        ),
        pytest.param(
            {"server_no_context_takeover": True},
            "permessage-deflate",
            id="server-no-takeover-left-out",
        ),
        pytest.param(
            {},
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            id="duplicate",
        ),
    ],
)
async def test_client_refuses_invalid_responses(options: Any, response: str) -> None:
    compression = None if options is None else DeflateOptions(**options)
    async with raw_server() as server:
        connecting = asyncio.ensure_future(
            fullduplex.connect(server.url, proxy=None, compression=compression)
        )
        try:
            peer = await server.accept()
            await peer.accept_handshake(extra=[("Sec-WebSocket-Extensions", response)])
            with pytest.raises(InvalidResponse):
                await asyncio.wait_for(connecting, TIMEOUT)
            await peer.expect_eof()
        finally:
            if not connecting.done():
                connecting.cancel()


async def test_window_8_is_decodable_with_256_bytes() -> None:
    # Both directions at 8 bits, with data full of repeats at every distance.
    options = DeflateOptions(server_max_window_bits=8, client_max_window_bits=8, threshold=0)
    data = os.urandom(64) * 300 + structured(8_000, 9, 251) + structured(8_000, 10, 257)
    async with (
        echo_server(compression=options) as server,
        raw_deflate_client(
            server.port, "permessage-deflate; client_max_window_bits=8; server_max_window_bits=8"
        ) as (peer, resp),
    ):
        assert deflate_params(resp) == {
            "server_max_window_bits": "8",
            "client_max_window_bits": "8",
        }
        inflater = Inflater(8)
        for _ in range(2):
            await send_compressed(peer, BINARY, Deflater(8).fragments(data, 5))
            assert await recv_compressed(peer, inflater) == (BINARY, data)
