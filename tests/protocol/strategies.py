"""Hypothesis strategies for the protocol tests, and the oracles they are checked against.

The oracles are written from the definitions (RFC 3629 via ``bytes.decode``, RFC 6455
§5.2 bit layout), not from the code under test.
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st

# ----------------------------------------------------------------- UTF-8 oracle

# After a lead byte, only the *first* continuation byte has a narrowed range
# (Unicode Table 3-7); later ones accept all of 80..BF. So to learn whether a prefix
# can still be completed it is enough to try every first byte x and pad with 80.
_COMPLETIONS = [b""] + [bytes((x,)) + b"\x80" * k for x in range(0x80, 0xC0) for k in range(3)]


def _can_complete(data: bytes) -> bool:
    """Whether ``data`` is a prefix of some valid UTF-8 string."""
    for tail in _COMPLETIONS:
        try:
            (data + tail).decode("utf-8")
        except UnicodeDecodeError:
            continue
        return True
    return False


def first_impossible_byte(data: bytes) -> int | None:
    """Index of the first byte after which ``data`` can no longer become valid UTF-8.

    ``None`` if every prefix can still be completed (the whole may still be
    truncated: check ``data.decode`` for that).
    """
    if _can_complete(data):
        return None
    # Completability is monotone in the prefix length: binary search the first
    # prefix that cannot be completed.
    lo, hi = 0, len(data)  # data[:lo] can be completed, data[:hi] cannot
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _can_complete(data[:mid]):
            lo = mid
        else:
            hi = mid
    return hi - 1


# Byte sequences that can never appear in UTF-8 at the place they are inserted.
BAD_SEQUENCES = [
    b"\xc0\xaf",  # overlong "/"
    b"\xc1\xbf",  # overlong
    b"\xe0\x80\xaf",  # overlong, 3 bytes
    b"\xe0\x9f\xbf",  # overlong, 3 bytes, highest
    b"\xf0\x80\x80\xaf",  # overlong, 4 bytes
    b"\xf0\x8f\xbf\xbf",  # overlong, 4 bytes, highest
    b"\xed\xa0\x80",  # U+D800, a surrogate
    b"\xed\xbf\xbf",  # U+DFFF, a surrogate
    b"\xed\xa0\x80\xed\xb0\x80",  # a surrogate pair, CESU-8 style
    b"\xf4\x90\x80\x80",  # U+110000, above the Unicode range
    b"\xf7\xbf\xbf\xbf",  # far above the Unicode range
    b"\x80",  # lone continuation bytes
    b"\xbf",
    b"\x80\x80\x80",
    b"\xc0",
    b"\xc1",
    b"\xf5",
    b"\xf8\x88\x80\x80\x80",  # 5-byte form
    b"\xfc\x84\x80\x80\x80\x80",  # 6-byte form
    b"\xfe",
    b"\xff",
    b"\xe2\x82A",  # truncated "€" followed by ASCII
    b"\xf0\x9f\x98",  # truncated emoji, followed by whatever comes next
    b"\xc3",  # truncated 2-byte sequence
]


@st.composite
def invalid_utf8(draw: st.DrawFn) -> bytes:
    """Valid UTF-8 text with an invalid sequence inserted at a character boundary."""
    text = draw(st.text(max_size=20))
    cut = draw(st.integers(0, len(text)))
    bad = draw(st.sampled_from(BAD_SEQUENCES))
    return text[:cut].encode() + bad + text[cut:].encode()


# Text that exercises 1- to 4-byte characters.
texts = st.text(
    st.characters(codec="utf-8"),
    max_size=40,
) | st.sampled_from(["", "Hello", "café", "€uro", "𝄞 clef", "😀" * 5, "\x00\x7f\u07ff\uffff"])


def split_points(
    draw: Callable[[st.SearchStrategy[list[int]]], list[int]], length: int, max_cuts: int = 6
) -> list[int]:
    """Sorted cut points inside ``range(length + 1)``, ends included.

    Cuts may repeat, giving empty pieces: empty reads and empty fragments are legal.
    """
    cuts = draw(st.lists(st.integers(0, length), max_size=max_cuts))
    return sorted([0, *cuts, length])


def split(data: bytes, bounds: list[int]) -> list[bytes]:
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# ------------------------------------------------------------- frame building


def raw_frame(
    b0: int,
    payload: bytes = b"",
    *,
    key: bytes | None = None,
    length: int | None = None,
    length_form: int | None = None,
) -> bytes:
    """Build a frame bit by bit from RFC 6455 §5.2, independently of the encoder.

    Args:
        b0: the first byte (FIN, RSV1-3, opcode).
        key: the masking key; ``None`` for an unmasked frame.
        length: the declared length (defaults to ``len(payload)``).
        length_form: 7, 16 or 64 to force a length encoding (minimal by default).
    """
    n = len(payload) if length is None else length
    if length_form is None:
        length_form = 7 if n < 126 else 16 if n < 0x10000 else 64
    mbit = 0x80 if key is not None else 0
    # A forced form keeps only the bits that fit, so any declared value can be written.
    if length_form == 7:
        head = bytes((b0, mbit | (n & 0x7F)))
    elif length_form == 16:
        head = bytes((b0, mbit | 126)) + struct.pack("!H", n & 0xFFFF)
    else:
        head = bytes((b0, mbit | 127)) + struct.pack("!Q", n & 0xFFFF_FFFF_FFFF_FFFF)
    if key is None:
        return head + payload
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def seeded_random(seed: int = 0) -> Callable[[int], bytes]:
    """A deterministic stand-in for ``os.urandom``."""
    rng = random.Random(seed)
    return rng.randbytes


# ------------------------------------------------------ message sequences


@dataclass(frozen=True)
class Send:
    """One thing a sender does: a (possibly fragmented) data message or a control frame.

    ``kind`` is "text", "binary", "ping" or "pong"; ``cuts`` splits the payload into
    fragments; ``pings`` pings sent between fragments, keyed by fragment index.
    """

    kind: str
    data: bytes
    cuts: tuple[int, ...] = ()
    pings: tuple[tuple[int, bytes], ...] = ()


@st.composite
def sends(draw: st.DrawFn) -> Send:
    kind = draw(st.sampled_from(["text", "text", "binary", "binary", "ping", "pong"]))
    if kind in ("ping", "pong"):
        return Send(kind, draw(st.binary(max_size=125)))
    if kind == "text":
        # Fragment boundaries anywhere, also inside a multi-byte character.
        data = draw(texts).encode()
    else:
        data = draw(st.binary(max_size=300))
    bounds = split_points(draw, len(data), max_cuts=4)
    fragments = len(bounds) - 1
    pings = draw(
        st.lists(
            st.tuples(st.integers(0, max(fragments - 1, 0)), st.binary(max_size=8)), max_size=2
        )
    )
    return Send(kind, data, tuple(bounds), tuple(pings))


def frame_soup(masked: bool) -> st.SearchStrategy[bytes]:
    """Bytes that are mostly well-formed frames, ending in something broken now and then.

    Args:
        masked: whether frames are usually masked (as sent to a server).
    """
    likely_b0 = st.sampled_from([0x81, 0x82, 0x81, 0x82, 0x01, 0x02, 0x00, 0x80, 0x88, 0x89, 0x8A])
    key = st.binary(min_size=4, max_size=4)
    close_payloads = st.builds(
        lambda code, reason: code.to_bytes(2, "big") + reason,
        st.sampled_from([1000, 1001, 1003, 1005, 1011, 1012, 3000, 4999]) | st.integers(0, 5000),
        st.binary(max_size=10) | texts.map(str.encode),
    )
    payloads = st.one_of(
        st.binary(max_size=200),
        texts.map(str.encode),
        texts.map(str.encode),
        invalid_utf8(),
        close_payloads,
    )
    good = st.builds(
        lambda b0, key, payload: raw_frame(b0, payload, key=key),
        likely_b0,
        key if masked else st.none(),
        payloads,
    )
    odd = st.builds(
        lambda b0, key, payload, form, lie: raw_frame(
            b0, payload, key=key, length=lie, length_form=form
        ),
        # One bit flipped: FIN, an RSV bit, or an opcode bit.
        st.builds(lambda b0, bit: b0 ^ (1 << bit), likely_b0, st.integers(0, 7)) | likely_b0,
        st.none() | key,
        payloads,
        st.none() | st.sampled_from([7, 16, 64]),
        st.none() | st.integers(0, 300) | st.integers(0, 2**64 - 1),
    )
    tail = st.one_of(st.just(b""), st.just(b""), odd, st.binary(max_size=40))
    return st.builds(lambda frames, end: b"".join(frames) + end, st.lists(good, max_size=8), tail)
