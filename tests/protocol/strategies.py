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

import pytest
from hypothesis import strategies as st

# The C accelerator, None when it is not built; and the mark for tests that need it.
try:
    from fullduplex import _speedups as C
except ImportError:
    C = None  # type: ignore[assignment]

needs_c = pytest.mark.skipif(
    C is None,
    reason="the C extension fullduplex._speedups is not built "
    "(reinstall with a C compiler: pip install -e .)",
)


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


# ------------------------------------------------------------ request heads

# RFC 9110 §5.6.2 tchar, RFC 5234 VCHAR, and the bytes of a field value (RFC 9110
# §5.5: VCHAR, obs-text, SP and HTAB inside), all as latin-1 text.
TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
VCHARS = "".join(map(chr, range(0x21, 0x7F)))
VALUE_CHARS = VCHARS + "".join(map(chr, range(0x80, 0x100))) + " \t"

# What a browser's or a library's upgrade request usually carries.
FIELD_NAMES = [
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol",
    "Origin",
    "User-Agent",
    "Accept-Encoding",
    "Cookie",
    "X-Forwarded-For",
]


@st.composite
def field_names(draw: st.DrawFn) -> str:
    """A token: a usual name in its usual, lower, upper or mixed case, or any token."""
    name = draw(st.sampled_from(FIELD_NAMES))
    spelling = draw(st.sampled_from(["usual", "lower", "upper", "mixed", "other"]))
    if spelling == "lower":
        return name.lower()
    if spelling == "upper":
        return name.upper()
    if spelling == "mixed":
        flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
        return "".join(c.swapcase() if flip else c for c, flip in zip(name, flips, strict=True))
    if spelling == "other":
        return draw(st.text(TCHARS, min_size=1, max_size=12))
    return name


@st.composite
def request_heads(draw: st.DrawFn) -> bytes:
    """A plainly well-formed HTTP/1.1 request head (RFC 9112 §3, §5), CRLFCRLF included.

    Optional whitespace around values, repeated names and obs-text values included.
    """
    method = draw(st.sampled_from(["GET", "POST"]) | st.text(TCHARS, min_size=1, max_size=8))
    target = draw(
        st.sampled_from(["/", "/chat?room=1", "*"]) | st.text(VCHARS, min_size=1, max_size=24)
    )
    ows = st.sampled_from(["", "", " ", "\t", "  ", " \t"])
    lines = [f"{method} {target} HTTP/1.1"]
    for _ in range(draw(st.integers(0, 9))):
        name = draw(field_names())
        value = draw(st.text(VALUE_CHARS, max_size=30))
        lines.append(f"{name}:{draw(ows)}{value}{draw(ows)}")
    return "".join(line + "\r\n" for line in lines).encode("latin-1") + b"\r\n"


# Bytes to slip into a head, each making it irregular at most places: bare CR and LF,
# controls, DEL, obs-fold, empty names, whitespace before a colon, separators, obs-text.
HEAD_INSERTS = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\x00",
    b"\x01",
    b"\x0b",
    b"\x1f",
    b"\x7f",
    b"\r\n ",
    b"\r\n\t",
    b"\r\n:",
    b"\r\n: x",
    b" ",
    b"\t",
    b" :",
    b":",
    b"(",
    b"\x80",
    b"\xe9",
    b"\xff",
]


@st.composite
def mutated_request_heads(draw: st.DrawFn) -> bytes:
    """A well-formed head with one change: an insert, a replaced or deleted byte, a cut
    (no final CRLFCRLF), a long run of bytes (against the line limits), a space before
    a colon, a different version; then maybe the first bytes of the connection's frames.
    """
    head = draw(request_heads())
    kind = draw(st.sampled_from(["insert", "replace", "delete", "cut", "long", "colon", "version"]))
    pos = draw(st.integers(0, len(head) - 1))
    if kind == "insert":
        head = head[:pos] + draw(st.sampled_from(HEAD_INSERTS)) + head[pos:]
    elif kind == "replace":
        head = head[:pos] + bytes([draw(st.integers(0, 255))]) + head[pos + 1 :]
    elif kind == "delete":
        head = head[:pos] + head[pos + draw(st.integers(1, 4)) :]
    elif kind == "cut":
        head = head[:pos]
    elif kind == "long":
        run = draw(st.sampled_from([b"a", b" ", b"\xe9", b"-"])) * draw(st.integers(1, 300))
        head = head[:pos] + run + head[pos:]
    elif kind == "colon":
        eol = head.index(b"\r\n")  # after the request line, whose target may hold ":"
        sep = draw(st.sampled_from([b" :", b"\t:", b" : "]))
        head = head[:eol] + head[eol:].replace(b":", sep, 1)
    else:
        head = head.replace(b"HTTP/1.1", draw(st.sampled_from([b"HTTP/1.0", b"HTTP/1.10"])))
    tail = draw(
        st.sampled_from([b"", b""])
        | st.binary(max_size=12)
        | st.builds(
            lambda payload, key: raw_frame(0x81, payload, key=key),
            st.binary(max_size=20),
            st.binary(min_size=4, max_size=4),
        )
    )
    return head + tail
