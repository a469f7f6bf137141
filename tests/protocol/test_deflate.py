"""permessage-deflate (RFC 7692): negotiation in both roles, §7.2.3 vectors, the codec."""

from __future__ import annotations

import itertools
import os
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from fullduplex.errors import InvalidResponse, MessageTooBig, ProtocolError
from fullduplex.protocol.deflate import (
    DEFAULT_THRESHOLD,
    UNCOMPRESSED_TAIL,
    DeflateOptions,
    InvalidCompressedData,
    NegotiationError,
    PerMessageDeflate,
    client_accept,
    client_offer,
    server_negotiate,
)
from fullduplex.protocol.handshake import parse_extensions

BITS = range(8, 16)
HELLO = bytes.fromhex("f248cdc9c90700")  # §7.2.3.1
DEFAULT = DeflateOptions()


def negotiate(header: str, options: DeflateOptions = DEFAULT) -> str | None:
    """The server's response header to a client's ``header``, or None if declined."""
    result = server_negotiate(parse_extensions([header]), options)
    return None if result is None else result[0]


def accept(response: str, options: DeflateOptions = DEFAULT) -> PerMessageDeflate | None:
    return client_accept(parse_extensions([response] if response else []), options)


def pair(
    client: DeflateOptions, server: DeflateOptions
) -> tuple[PerMessageDeflate, PerMessageDeflate] | None:
    """Negotiate through the real header strings; return (client, server) codecs."""
    result = server_negotiate(parse_extensions([client_offer(client)]), server)
    if result is None:
        return None
    response, server_codec = result
    client_codec = client_accept(parse_extensions([response]), client)
    assert client_codec is not None
    return client_codec, server_codec


def receive(codec: PerMessageDeflate, fragments: list[bytes], limit: int | None = None) -> bytes:
    """Decompress one message arriving as ``fragments`` the way the core will."""
    codec.start_message()
    out = b""
    for fragment in fragments:
        out += codec.decompress(fragment, None if limit is None else limit - len(out))
    return out + codec.finish_message(None if limit is None else limit - len(out))


def send(codec: PerMessageDeflate, data: bytes, cuts: list[int] | None = None) -> list[bytes]:
    """Compress ``data`` as one message, in fragments split at ``cuts``."""
    bounds = [0, *sorted(cuts or []), len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    return [codec.compress(p, final=i == len(pieces) - 1) for i, p in enumerate(pieces)]


# ------------------------------------------------------------ client offer


@pytest.mark.parametrize(
    ("options", "header"),
    [
        (DeflateOptions(), "permessage-deflate; client_max_window_bits"),
        (DeflateOptions(client_max_window_bits=None), "permessage-deflate"),
        (
            DeflateOptions(client_max_window_bits=10),
            "permessage-deflate; client_max_window_bits=10",
        ),
        (
            DeflateOptions(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=9,
                client_max_window_bits=8,
            ),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
            " server_max_window_bits=9; client_max_window_bits=8",
        ),
    ],
)
def test_client_offer(options: DeflateOptions, header: str) -> None:
    assert client_offer(options) == header
    # It parses back as one valid offer.
    assert parse_extensions([header])[0][0] == "permessage-deflate"


# ------------------------------------------------------------ server side


def test_server_accepts_plain_offer() -> None:
    assert negotiate("permessage-deflate") == "permessage-deflate"
    result = server_negotiate(parse_extensions(["permessage-deflate"]), DeflateOptions())
    assert result is not None
    codec = result[1]
    assert codec.side == "server"
    assert codec.extension == "permessage-deflate"
    assert (codec.local_max_window_bits, codec.remote_max_window_bits) == (15, 15)
    assert not codec.local_no_context_takeover and not codec.remote_no_context_takeover


def test_server_ignores_other_extensions_and_empty_lists() -> None:
    assert server_negotiate([], DeflateOptions()) is None
    assert negotiate("x-webkit-deflate-frame") is None
    assert negotiate("x-foo; a=1, permessage-deflate") == "permessage-deflate"


@pytest.mark.parametrize("offered", BITS)
@pytest.mark.parametrize("ours", [None, *BITS])
def test_server_max_window_bits(offered: int, ours: int | None) -> None:
    result = server_negotiate(
        parse_extensions([f"permessage-deflate; server_max_window_bits={offered}"]),
        DeflateOptions(server_max_window_bits=ours),
    )
    assert result is not None
    response, codec = result
    agreed = offered if ours is None else min(offered, ours)
    # §7.1.2.1: accepting the parameter means answering it with the same or less.
    assert response == f"permessage-deflate; server_max_window_bits={agreed}"
    assert codec.local_max_window_bits == agreed


@pytest.mark.parametrize("ours", BITS)
def test_server_max_window_bits_unasked(ours: int) -> None:
    # A server may announce its own limit even if the client did not ask (§7.1.2.1).
    expected = "permessage-deflate" + (f"; server_max_window_bits={ours}" if ours < 15 else "")
    assert negotiate("permessage-deflate", DeflateOptions(server_max_window_bits=ours)) == expected


@pytest.mark.parametrize("offered", [None, *BITS])
@pytest.mark.parametrize("ours", [None, True, *BITS])
def test_client_max_window_bits(offered: int | None, ours: int | bool | None) -> None:
    value = "" if offered is None else f"={offered}"
    result = server_negotiate(
        parse_extensions([f"permessage-deflate; client_max_window_bits{value}"]),
        DeflateOptions(client_max_window_bits=ours),
    )
    assert result is not None
    response, codec = result
    limit = 15 if offered is None else offered
    if ours is not None and ours is not True:
        limit = min(limit, ours)
    expected = "permessage-deflate" + (f"; client_max_window_bits={limit}" if limit < 15 else "")
    assert response == expected
    assert codec.remote_max_window_bits == limit


@pytest.mark.parametrize("ours", BITS)
def test_client_max_window_bits_required_but_not_offered(ours: int) -> None:
    # Without the parameter in the offer we cannot limit the client's window
    # (§7.1.2.2), so a server that needs a limit declines; 15 is no limit.
    response = negotiate("permessage-deflate", DeflateOptions(client_max_window_bits=ours))
    assert response == (None if ours < 15 else "permessage-deflate")


@pytest.mark.parametrize("offer_server", [False, True])
@pytest.mark.parametrize("offer_client", [False, True])
@pytest.mark.parametrize("force_server", [False, True])
@pytest.mark.parametrize("force_client", [False, True])
def test_no_context_takeover_flags(
    offer_server: bool, offer_client: bool, force_server: bool, force_client: bool
) -> None:
    header = "permessage-deflate"
    if offer_server:
        header += "; server_no_context_takeover"
    if offer_client:
        header += "; client_no_context_takeover"
    options = DeflateOptions(
        server_no_context_takeover=force_server, client_no_context_takeover=force_client
    )
    result = server_negotiate(parse_extensions([header]), options)
    assert result is not None
    response, codec = result
    server_nct = offer_server or force_server
    client_nct = offer_client or force_client
    params = dict(parse_extensions([response])[0][1])
    assert ("server_no_context_takeover" in params) is server_nct
    assert ("client_no_context_takeover" in params) is client_nct
    assert codec.local_no_context_takeover is server_nct
    assert codec.remote_no_context_takeover is client_nct


@pytest.mark.parametrize(
    "bad",
    [
        "permessage-deflate; foo",  # unknown parameter
        "permessage-deflate; foo=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover=1",  # value on a flag
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; server_max_window_bits",  # value required
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",  # leading zero
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=9.0",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=-10",
        'permessage-deflate; client_max_window_bits="16"',
        "permessage-deflate; client_max_window_bits=1e1",
    ],
)
def test_server_refuses_invalid_offer(bad: str) -> None:
    # §7.1: declined; and a valid offer after it is still taken.
    assert negotiate(bad) is None
    assert negotiate(f"{bad}, permessage-deflate; client_max_window_bits=9") == (
        "permessage-deflate; client_max_window_bits=9"
    )


def test_quoted_values_are_accepted() -> None:
    assert negotiate('permessage-deflate; server_max_window_bits="10"') == (
        "permessage-deflate; server_max_window_bits=10"
    )


def test_first_acceptable_offer_wins() -> None:
    header = (
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits,"
        " permessage-deflate; server_max_window_bits=12, permessage-deflate"
    )
    assert negotiate(header) == "permessage-deflate; server_max_window_bits=10"
    # The first offer is declined (the server needs client_max_window_bits), the
    # second taken.
    strict = DeflateOptions(client_max_window_bits=11)
    header = "permessage-deflate, permessage-deflate; client_max_window_bits=13, permessage-deflate"
    assert negotiate(header, strict) == "permessage-deflate; client_max_window_bits=11"


def test_offers_across_header_lines() -> None:
    offers = parse_extensions(
        ["x-foo, permessage-deflate; bogus", "permessage-deflate; server_no_context_takeover"]
    )
    result = server_negotiate(offers, DeflateOptions())
    assert result is not None
    assert result[0] == "permessage-deflate; server_no_context_takeover"


def test_no_acceptable_offer() -> None:
    header = "permessage-deflate; x=1, permessage-deflate; server_max_window_bits=99"
    assert negotiate(header) is None


# ------------------------------------------------------------ client side


def test_client_accept_declined() -> None:
    assert accept("") is None


@pytest.mark.parametrize(
    ("response", "options", "expected"),
    [
        # (local nct, remote nct, local bits, remote bits)
        ("permessage-deflate", DeflateOptions(), (False, False, 15, 15)),
        ("permessage-deflate; server_no_context_takeover", DeflateOptions(), (False, True, 15, 15)),
        ("permessage-deflate; client_no_context_takeover", DeflateOptions(), (True, False, 15, 15)),
        # Our own client_no_context_takeover was a promise we keep unechoed.
        (
            "permessage-deflate",
            DeflateOptions(client_no_context_takeover=True),
            (True, False, 15, 15),
        ),
        (
            "permessage-deflate; server_no_context_takeover",
            DeflateOptions(server_no_context_takeover=True),
            (False, True, 15, 15),
        ),
        # The server may limit itself unasked.
        ("permessage-deflate; server_max_window_bits=8", DeflateOptions(), (False, False, 15, 8)),
        (
            "permessage-deflate; server_max_window_bits=9",
            DeflateOptions(server_max_window_bits=12),
            (False, False, 15, 9),
        ),
        (
            "permessage-deflate; server_max_window_bits=12",
            DeflateOptions(server_max_window_bits=12),
            (False, False, 15, 12),
        ),
        # We offered client_max_window_bits without a value: the server picks.
        ("permessage-deflate; client_max_window_bits=8", DeflateOptions(), (False, False, 8, 15)),
        # We offered a value: we keep to it, or to the server's smaller one.
        (
            "permessage-deflate",
            DeflateOptions(client_max_window_bits=10),
            (False, False, 10, 15),
        ),
        (
            "permessage-deflate; client_max_window_bits=9",
            DeflateOptions(client_max_window_bits=10),
            (False, False, 9, 15),
        ),
    ],
)
def test_client_accept(
    response: str, options: DeflateOptions, expected: tuple[bool, bool, int, int]
) -> None:
    codec = accept(response, options)
    assert codec is not None
    assert codec.side == "client"
    assert codec.extension == response
    got = (
        codec.local_no_context_takeover,
        codec.remote_no_context_takeover,
        codec.local_max_window_bits,
        codec.remote_max_window_bits,
    )
    assert got == expected


@pytest.mark.parametrize("bits", BITS)
def test_client_accept_every_window(bits: int) -> None:
    response = f"permessage-deflate; server_max_window_bits={bits}; client_max_window_bits={bits}"
    codec = accept(response, DeflateOptions(server_max_window_bits=bits))
    assert codec is not None
    assert (codec.local_max_window_bits, codec.remote_max_window_bits) == (bits, bits)


@pytest.mark.parametrize(
    ("response", "options"),
    [
        ("x-foo", DeflateOptions()),  # an extension we did not offer
        ("permessage-deflate, x-foo", DeflateOptions()),
        ("permessage-deflate, permessage-deflate", DeflateOptions()),
        ("permessage-deflate; foo", DeflateOptions()),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        ("permessage-deflate; server_no_context_takeover=1", None),
        ("permessage-deflate; client_no_context_takeover=x", None),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; server_max_window_bits=7", None),
        ("permessage-deflate; server_max_window_bits=016", None),
        # In a response, client_max_window_bits needs a value (§7.1.2.2).
        ("permessage-deflate; client_max_window_bits", None),
        ("permessage-deflate; client_max_window_bits=16", None),
        # Not offered: the server must not send it.
        (
            "permessage-deflate; client_max_window_bits=10",
            DeflateOptions(client_max_window_bits=None),
        ),
        # More than offered.
        (
            "permessage-deflate; client_max_window_bits=11",
            DeflateOptions(client_max_window_bits=10),
        ),
        (
            "permessage-deflate; server_max_window_bits=13",
            DeflateOptions(server_max_window_bits=12),
        ),
        # Asked for and left out.
        ("permessage-deflate", DeflateOptions(server_max_window_bits=12)),
        ("permessage-deflate", DeflateOptions(server_no_context_takeover=True)),
    ],
)
def test_client_accept_refuses(response: str, options: DeflateOptions | None) -> None:
    with pytest.raises(NegotiationError) as info:
        accept(response, options or DeflateOptions())
    assert isinstance(info.value, InvalidResponse)


# ------------------------------------------------------------ options


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"server_max_window_bits": True},
        {"client_max_window_bits": 7},
        {"client_max_window_bits": False},
        {"compression_level": 10},
        {"compression_level": -2},
        {"mem_level": 0},
        {"mem_level": 10},
        {"threshold": -1},
    ],
)
def test_options_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DeflateOptions(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"local_max_window_bits": 7},
        {"remote_max_window_bits": 16},
        {"mem_level": 0},
        {"threshold": -5},
    ],
)
def test_codec_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PerMessageDeflate(server=True, **kwargs)  # type: ignore[arg-type]


def test_defaults() -> None:
    options = DeflateOptions()
    assert options.compression_level == 6
    assert options.mem_level == 8
    assert options.threshold == DEFAULT_THRESHOLD == 128
    codec = PerMessageDeflate(server=False)
    assert repr(codec) == "<PerMessageDeflate client: permessage-deflate>"


def test_threshold() -> None:
    codec = PerMessageDeflate(server=True, threshold=100)
    assert not codec.should_compress(99)
    assert codec.should_compress(100)
    assert PerMessageDeflate(server=True, threshold=0).should_compress(0)


# ------------------------------------------------------------ RFC 7692 §7.2.3 vectors


def test_rfc_compress_hello() -> None:
    # §7.2.3.1: "Hello" in one compressed message.
    assert PerMessageDeflate(server=True).compress(b"Hello") == HELLO


def test_rfc_decompress_hello() -> None:
    assert PerMessageDeflate(server=False).decompress_message(HELLO) == b"Hello"
    # start_message() only prepares early; decompress() alone works too.
    receiver = PerMessageDeflate(server=False)
    assert receiver.decompress(HELLO) + receiver.finish_message() == b"Hello"


def test_rfc_sharing_lz77_window() -> None:
    # §7.2.3.2: with context takeover the second "Hello" is a back-reference.
    sender = PerMessageDeflate(server=True)
    assert sender.compress(b"Hello") == HELLO
    assert sender.compress(b"Hello") == bytes.fromhex("f200110000")
    receiver = PerMessageDeflate(server=False)
    assert receiver.decompress_message(HELLO) == b"Hello"
    assert receiver.decompress_message(bytes.fromhex("f200110000")) == b"Hello"


def test_no_context_takeover_repeats_first_form() -> None:
    sender = PerMessageDeflate(server=True, local_no_context_takeover=True)
    assert sender.compress(b"Hello") == HELLO
    assert sender.compress(b"Hello") == HELLO
    receiver = PerMessageDeflate(server=False, remote_no_context_takeover=True)
    assert receiver.decompress_message(HELLO) == b"Hello"
    assert receiver.decompress_message(HELLO) == b"Hello"


def test_rfc_no_compression_block() -> None:
    # §7.2.3.3: a stored (uncompressed) DEFLATE block.
    payload = bytes.fromhex("000500faff48656c6c6f00")
    assert PerMessageDeflate(server=False).decompress_message(payload) == b"Hello"


def test_rfc_bfinal_block() -> None:
    # §7.2.3.4: a block with BFINAL=1 ends the stream; the next message still works.
    receiver = PerMessageDeflate(server=False)
    assert receiver.decompress_message(bytes.fromhex("f348cdc9c90700")) == b"Hello"
    assert receiver.decompress_message(bytes.fromhex("f348cdc9c90700")) == b"Hello"
    assert receiver.decompress_message(HELLO) == b"Hello"


def test_rfc_two_blocks() -> None:
    # §7.2.3.5: two DEFLATE blocks in one message.
    payload = bytes.fromhex("f24805000000ffffcac9c90700")
    assert PerMessageDeflate(server=False).decompress_message(payload) == b"Hello"


def test_rfc_empty_message() -> None:
    # §7.2.3.6: an empty message compresses to the single octet 00.
    sender = PerMessageDeflate(server=True)
    assert sender.compress(b"") == b"\x00"
    receiver = PerMessageDeflate(server=False)
    assert receiver.decompress_message(b"\x00") == b""
    assert receiver.decompress_message(b"") == b""


def test_rfc_fragmented_hello() -> None:
    # §7.2.1: only the end of the message loses its tail; the fragments before keep
    # their empty block, and the receiver joins the payloads.
    sender = PerMessageDeflate(server=True)
    first = sender.compress(b"Hel", final=False)
    last = sender.compress(b"lo")
    assert first.endswith(UNCOMPRESSED_TAIL)
    assert not last.endswith(UNCOMPRESSED_TAIL)
    assert receive(PerMessageDeflate(server=False), [first, last]) == b"Hello"
    # The empty last fragment of a message is the octet 00 as well.
    sender = PerMessageDeflate(server=True)
    fragments = [sender.compress(b"Hello", final=False), sender.compress(b"")]
    assert fragments[1] == b"\x00"
    assert receive(PerMessageDeflate(server=False), fragments) == b"Hello"


# ------------------------------------------------------------ context takeover


@pytest.mark.parametrize("takeover", [True, False])
def test_context_takeover_shrinks_repeats(takeover: bool) -> None:
    message = b'{"type": "price", "symbol": "EXAMPLE", "bid": 101.25, "ask": 101.5}' * 3
    sender = PerMessageDeflate(server=True, local_no_context_takeover=not takeover)
    receiver = PerMessageDeflate(server=False, remote_no_context_takeover=not takeover)
    first, second = sender.compress(message), sender.compress(message)
    assert (len(second) < len(first)) is takeover
    assert receiver.decompress_message(first) == message
    assert receiver.decompress_message(second) == message


def test_no_context_takeover_holds_no_zlib_objects_between_messages() -> None:
    sender = PerMessageDeflate(server=True, local_no_context_takeover=True)
    receiver = PerMessageDeflate(server=False, remote_no_context_takeover=True)
    assert sender._compressor is None and receiver._decompressor is None
    first = sender.compress(b"abc" * 100, final=False)
    assert sender._compressor is not None  # alive inside a message
    last = sender.compress(b"def" * 100)
    assert sender._compressor is None
    assert receive(receiver, [first, last]) == b"abc" * 100 + b"def" * 100
    assert receiver._decompressor is None
    # With takeover they persist.
    keeper = PerMessageDeflate(server=True)
    keeper.compress(b"abc")
    assert keeper._compressor is not None


# ------------------------------------------------------------ 8-bit window


def _inflate_bytewise(payload: bytes, wbits: int, size: int) -> bytes:
    """Inflate one output byte per call, so every match must come from the window."""
    decompressor = zlib.decompressobj(-wbits)
    out = b""
    data = payload + UNCOMPRESSED_TAIL
    while len(out) < size:
        out += decompressor.decompress(data, 1)
        data = decompressor.unconsumed_tail
    return out


def test_window_8_compressor_stays_within_256_bytes() -> None:
    block = os.urandom(300)  # repeats 300 bytes apart: beyond a 256-byte window
    message = block * 8 + block[:200] * 8 + block[:255] * 4
    # Control: a 15-bit compressor refers 300 bytes back; an 8-bit window refuses it.
    wide = PerMessageDeflate(server=True, compression_level=9).compress(message)
    with pytest.raises(zlib.error, match="too far back"):
        _inflate_bytewise(wide, 8, len(message))
    # Agreed window 8: what we send decodes with a 256-byte window.
    narrow = PerMessageDeflate(server=True, local_max_window_bits=8, compression_level=9)
    for _ in range(3):  # across messages too (context takeover)
        payload = narrow.compress(message)
        assert _inflate_bytewise(payload, 8, len(message)) == message


def test_window_8_negotiated_both_ways() -> None:
    options = DeflateOptions(server_max_window_bits=8, client_max_window_bits=8)
    codecs = pair(options, options)
    assert codecs is not None
    client, server = codecs
    assert (
        client.extension == "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"
    )
    assert client.local_max_window_bits == server.remote_max_window_bits == 8
    assert server.local_max_window_bits == client.remote_max_window_bits == 8
    message = os.urandom(100) * 20
    assert server.decompress_message(client.compress(message)) == message
    assert client.decompress_message(server.compress(message)) == message


# ------------------------------------------------------------ round trips

options_strategy = st.builds(
    DeflateOptions,
    server_no_context_takeover=st.booleans(),
    client_no_context_takeover=st.booleans(),
    server_max_window_bits=st.none() | st.integers(8, 15),
    client_max_window_bits=st.none() | st.just(True) | st.integers(8, 15),
    compression_level=st.integers(-1, 9),
    mem_level=st.integers(1, 9),
)

# Compressible and incompressible data alike.
data_strategy = st.binary(max_size=3000) | st.builds(
    lambda chunk, times: chunk * times, st.binary(min_size=1, max_size=40), st.integers(1, 200)
)


@st.composite
def messages(draw: st.DrawFn) -> list[tuple[bytes, list[int], list[int]]]:
    """Messages with the cuts between fragments and the cuts inside received payload."""
    out = []
    for data in draw(st.lists(data_strategy, min_size=1, max_size=4)):
        cuts = draw(st.lists(st.integers(0, len(data)), max_size=3))
        splits = draw(st.lists(st.integers(0, 10_000), max_size=3))
        out.append((data, cuts, splits))
    return out


def transfer(
    sender: PerMessageDeflate,
    receiver: PerMessageDeflate,
    data: bytes,
    cuts: list[int],
    splits: list[int],
) -> bytes:
    """Send one message through the codecs, fragmented and received in pieces."""
    fragments = send(sender, data, cuts)
    pieces = []
    for fragment in fragments:
        bounds = [0, *sorted(s % (len(fragment) + 1) for s in splits), len(fragment)]
        pieces += [fragment[a:b] for a, b in itertools.pairwise(bounds)]
    return receive(receiver, pieces, limit=len(data))


@settings(max_examples=150, deadline=None)
@given(options_strategy, options_strategy, messages())
def test_negotiated_round_trip(
    client_options: DeflateOptions,
    server_options: DeflateOptions,
    batch: list[tuple[bytes, list[int], list[int]]],
) -> None:
    codecs = pair(client_options, server_options)
    if codecs is None:
        # Only one reason to decline our own offer: the server needs a window limit
        # the client did not offer to accept.
        assert client_options.client_max_window_bits is None
        assert (server_options.client_max_window_bits or 15) < 15
        return
    client, server = codecs
    # Both ends agree on each direction's window and takeover.
    assert client.remote_max_window_bits == server.local_max_window_bits
    assert client.local_max_window_bits <= server.remote_max_window_bits
    assert client.remote_no_context_takeover == server.local_no_context_takeover
    assert client.local_no_context_takeover >= server.remote_no_context_takeover
    for data, cuts, splits in batch:
        assert transfer(client, server, data, cuts, splits) == data
        assert transfer(server, client, data, cuts, splits) == data


@settings(max_examples=60, deadline=None)
@given(
    st.integers(8, 15),
    st.booleans(),
    st.integers(-1, 9),
    st.integers(1, 9),
    messages(),
)
def test_codec_round_trip_every_window(
    bits: int,
    no_takeover: bool,
    level: int,
    mem_level: int,
    batch: list[tuple[bytes, list[int], list[int]]],
) -> None:
    sender = PerMessageDeflate(
        server=True,
        local_max_window_bits=bits,
        local_no_context_takeover=no_takeover,
        compression_level=level,
        mem_level=mem_level,
    )
    receiver = PerMessageDeflate(
        server=False, remote_max_window_bits=bits, remote_no_context_takeover=no_takeover
    )
    for data, cuts, splits in batch:
        assert transfer(sender, receiver, data, cuts, splits) == data


# ------------------------------------------------------------ limits and bombs

MIB = 1 << 20


def zeros_bomb(mebibytes: int) -> list[bytes]:
    """A compressed message of ``mebibytes`` MiB of zeros, as per-MiB pieces.

    Built from sync-flushed pieces: after the first, every MiB compresses to the
    same bytes, so 1 GiB costs one piece repeated, not 1 GiB of memory.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MIB)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    repeat = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH) == repeat
    return [first] + [repeat] * (mebibytes - 1)


def test_bomb_pieces_are_what_they_claim() -> None:
    pieces = zeros_bomb(3)
    payload = b"".join(pieces)[:-4]  # as a sender strips the tail
    assert PerMessageDeflate(server=False).decompress_message(payload) == bytes(3 * MIB)
    assert len(b"".join(zeros_bomb(1024))) < 2 * MIB  # 1 GiB in about 1 MiB


@pytest.mark.parametrize("feed", ["one call", "per piece", "small chunks"])
def test_gibibyte_bomb_is_stopped_at_the_limit(feed: str) -> None:
    max_size = 4 * MIB
    pieces = zeros_bomb(1024)
    if feed == "one call":
        chunks = [b"".join(pieces)]
    elif feed == "per piece":
        chunks = pieces
    else:
        wire = b"".join(pieces[:16])  # 16 MiB of output is far past the limit
        chunks = [wire[i : i + 512] for i in range(0, len(wire), 512)]
    receiver = PerMessageDeflate(server=False)
    receiver.start_message()
    produced = 0
    with pytest.raises(MessageTooBig) as info:
        for chunk in chunks:
            out = receiver.decompress(chunk, max_size - produced)
            assert len(out) <= max_size - produced
            produced += len(out)
    assert produced <= max_size
    assert info.value.close_code == 1009
    assert info.value.code == "WS_DEFLATE_TOO_BIG"


def test_limit_is_exact() -> None:
    payload = b"".join(zeros_bomb(2))[:-4]
    size = 2 * MIB
    assert len(PerMessageDeflate(server=False).decompress_message(payload, size)) == size
    with pytest.raises(MessageTooBig):
        PerMessageDeflate(server=False).decompress_message(payload, size - 1)


def test_limit_reached_in_finish_message() -> None:
    receiver = PerMessageDeflate(server=False)
    receiver.start_message()
    assert receiver.decompress(HELLO, 5) == b"Hello"
    assert receiver.finish_message(0) == b""
    # A stored block of 4 bytes whose data is the tail itself: the output appears
    # only in finish_message, and is held to its limit there.
    payload = bytes.fromhex("000400fbff")
    assert PerMessageDeflate(server=False).decompress_message(payload, 4) == UNCOMPRESSED_TAIL
    receiver = PerMessageDeflate(server=False)
    receiver.start_message()
    assert receiver.decompress(payload, 3) == b""
    with pytest.raises(MessageTooBig):
        receiver.finish_message(3)


@pytest.mark.parametrize("limit", [0, -3])
def test_zero_or_negative_allowance(limit: int) -> None:
    # zlib reads max_length=0 as "no limit"; the codec must not.
    receiver = PerMessageDeflate(server=False)
    receiver.start_message()
    with pytest.raises(MessageTooBig):
        receiver.decompress(HELLO, limit)
    assert PerMessageDeflate(server=False).decompress_message(b"\x00", limit) == b""


def test_no_limit() -> None:
    payload = b"".join(zeros_bomb(2))[:-4]
    receiver = PerMessageDeflate(server=False)
    assert receiver.decompress_message(payload, None) == bytes(2 * MIB)
    assert receiver.decompress_message(payload, 1 << 70) == bytes(2 * MIB)


# ------------------------------------------------------------ corrupt data


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",  # BTYPE=11, reserved
        b"\x00\x05\x00\x00\x00Hello",  # stored block, LEN and NLEN disagree
        bytes.fromhex("f248cdc9c90700")[:3] + b"\xff\xff\xff\xff\xff",
    ],
)
def test_corrupt_data_fails_with_1007(payload: bytes) -> None:
    receiver = PerMessageDeflate(server=False)
    with pytest.raises(InvalidCompressedData) as info:
        receiver.decompress_message(payload, MIB)
    assert isinstance(info.value, ProtocolError)
    assert info.value.close_code == 1007
    assert info.value.code == "WS_DEFLATE_INVALID_DATA"
    assert receiver._decompressor is None


def test_corrupt_data_detected_in_finish_message() -> None:
    # A stored block with LEN=0: the tail brings NLEN=0x0000, which should be 0xffff.
    receiver = PerMessageDeflate(server=False)
    receiver.start_message()
    assert receiver.decompress(b"\x00\x00\x00", MIB) == b""
    with pytest.raises(InvalidCompressedData, match="stored block"):
        receiver.finish_message(MIB)


def test_context_after_a_final_block_is_not_kept() -> None:
    # A peer that ends a message with BFINAL=1 (§7.2.3.4) ends the DEFLATE stream; if
    # it still refers back to that message later, the connection fails with 1007.
    text = b"a message long enough to be referred back to later"
    ender = zlib.compressobj(6, zlib.DEFLATED, -15)
    final = ender.compress(text) + ender.flush(zlib.Z_FINISH)
    peer = zlib.compressobj(6, zlib.DEFLATED, -15)
    peer.compress(text)
    peer.flush(zlib.Z_SYNC_FLUSH)
    second = (peer.compress(text) + peer.flush(zlib.Z_SYNC_FLUSH))[:-4]  # refers back
    receiver = PerMessageDeflate(server=False)
    assert receiver.decompress_message(final) == text
    assert receiver._decompressor is None
    with pytest.raises(InvalidCompressedData, match="too far back"):
        receiver.decompress_message(second)
