"""RFC 7692 permessage-deflate: negotiation in both roles and the per-message codec.

Theory of operation
-------------------
Negotiation happens once, in the opening handshake, on the parsed form of
``Sec-WebSocket-Extensions`` (``[(name, [(param, value or None), ...]), ...]``, see
:func:`~fullduplex.protocol.handshake.parse_extensions`):

* a client sends :func:`client_offer`, then hands the server's answer to
  :func:`client_accept`, which returns the codec (or ``None`` if the server declined);
* a server hands the client's offers to :func:`server_negotiate`, which returns the
  header value to answer with and the codec (or ``None``: no compression).

The codec, :class:`PerMessageDeflate`, is one per connection and plain bytes in,
bytes out. Each direction is independent: *local* is what this endpoint compresses,
*remote* what it decompresses. A message is compressed as one DEFLATE stream,
flushed with ``Z_SYNC_FLUSH`` so that it ends with an empty stored block whose last
four octets ``00 00 ff ff`` are removed before sending (§7.2.1) and put back before
decompressing (§7.2.2). With context takeover the LZ77 window carries over from one
message to the next; with ``*_no_context_takeover`` it starts empty each message.

Memory per connection
---------------------
zlib needs, per compressor, about ``(1 << (wbits + 2)) + (1 << (mem_level + 9))``
bytes, and per decompressor ``1 << wbits`` bytes plus about 7 KiB::

    window bits / mem_level    compressor   decompressor
    15 / 8 (zlib defaults)       256 KiB       39 KiB
    12 / 5                        32 KiB       11 KiB
     9 / 1                         3 KiB        7.5 KiB

Both objects are created when the first compressed message needs them. When a
direction has no context takeover, its object is dropped at the end of every message
and rebuilt for the next one, so an idle connection holds **no** zlib memory for that
direction; with ``server_no_context_takeover`` and ``client_no_context_takeover`` both
agreed, an idle connection holds none at all. The price is the set-up per message:
about 50 µs for a 15-bit/mem_level 8 compressor (zlib clears its hash table), a few µs
at 12/5, well under 1 µs for a decompressor. A server with many connections should
use ``DeflateOptions(server_max_window_bits=12, client_max_window_bits=12,
mem_level=5)`` (about 43 KiB per busy connection) or ``server_no_context_takeover``.

A 256-byte window (``*_max_window_bits=8``)
-------------------------------------------
zlib decompresses with an 8-bit window but refuses to *compress* raw DEFLATE with one
(``compressobj(wbits=-8)`` raises; zlib issue 171). We accept 8 anyway and compress
with 9: zlib's compressor never emits a match farther back than the window size minus
262 bytes (``MAX_DIST`` in deflate.c), which for a 512-byte window is 250, so every
stream it produces is decodable with a 256-byte window, as the agreement requires.
Node's ``zlib`` maps 8 to 9 for the same reason, and ``ws`` relies on it; the
``websockets`` library instead declines offers that would make its compressor use 8.
The tests check the claim by decompressing with an 8-bit window one byte at a time.

Limits and errors
-----------------
:meth:`PerMessageDeflate.decompress` takes the number of bytes the message may still
grow by and never produces more than one byte past it, so a compression bomb is
stopped after at most that much output: :class:`~fullduplex.errors.MessageTooBig`
(close code 1009). Corrupt DEFLATE data raises :class:`InvalidCompressedData`: RFC 7692
says only that the endpoint fails the connection; like most implementations we use
1007 (invalid payload data). Both are :class:`~fullduplex.errors.ProtocolError`.

Integration with the sans-I/O core
----------------------------------
Receiving: RSV1 is allowed only on the first frame of a data message and only when
the extension was agreed (§6: never on control frames or continuation frames). For
such a message call :meth:`~PerMessageDeflate.decompress_message` on the payload of a whole
single-frame message, or :meth:`~PerMessageDeflate.start_message`, then
:meth:`~PerMessageDeflate.decompress` per piece of payload and
:meth:`~PerMessageDeflate.finish_message` after the last one, passing each time
``max_size - bytes already produced for this message`` (``None``: no limit); UTF-8
checks run on the output. Sending: decide per message with
:meth:`~PerMessageDeflate.should_compress`, pass each fragment through
:meth:`~PerMessageDeflate.compress` (``final`` = FIN) and set RSV1 on the first frame
only. Control frames are never compressed.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..errors import InvalidResponse, MessageTooBig, ProtocolError

__all__ = [
    "DEFAULT_THRESHOLD",
    "EXTENSION_NAME",
    "UNCOMPRESSED_TAIL",
    "DeflateOptions",
    "InvalidCompressedData",
    "NegotiationError",
    "PerMessageDeflate",
    "client_accept",
    "client_offer",
    "deflate_options",
    "server_negotiate",
]

EXTENSION_NAME: Final = "permessage-deflate"

#: The last four octets of an empty stored block with BFINAL=0, which ``Z_SYNC_FLUSH``
#: ends every flush with; removed on send (§7.2.1), appended on receive (§7.2.2).
UNCOMPRESSED_TAIL: Final = b"\x00\x00\xff\xff"

#: Messages shorter than this many bytes are sent uncompressed by default: below about
#: a hundred bytes DEFLATE's block overhead eats most of the gain, and zlib's per-call
#: cost dominates the time to send.
DEFAULT_THRESHOLD: Final = 128

# §7.1.2.1/§7.1.2.2: "a decimal integer value without leading zeroes between 8 to 15,
# inclusive". A dict lookup refuses "08", "+9", " 9" and "1e1" alike.
_WINDOW_BITS: Final = {str(bits): bits for bits in range(8, 16)}

# Above this a max_length is as good as no limit (and zlib wants a Py_ssize_t).
_NO_LIMIT: Final = 1 << 62

_Extensions = Sequence[tuple[str, Sequence[tuple[str, str | None]]]]


class NegotiationError(InvalidResponse):
    """The server's ``Sec-WebSocket-Extensions`` is not a valid answer to our offer.

    RFC 7692 §5 and §7.1: the client must fail the connection.
    """


class InvalidCompressedData(ProtocolError):
    """A compressed message is not valid DEFLATE data (close code 1007)."""

    close_code = 1007
    default_code = "WS_DEFLATE_INVALID_DATA"


@dataclass(frozen=True)
class DeflateOptions:
    """What this endpoint asks for, or accepts, in negotiation, and how it compresses.

    The same options serve both roles; each field says what it means for a client
    (in :func:`client_offer` and :func:`client_accept`) and for a server (in
    :func:`server_negotiate`).

    Attributes:
        server_no_context_takeover: client: ask the server to start every message
            with an empty window. Server: do so even if not asked (§7.1.1.1), which
            frees the compressor between messages.
        client_no_context_takeover: client: promise to start every message with an
            empty window. Server: require it (§7.1.1.2), which frees the
            decompressor between messages.
        server_max_window_bits: 8-15 or ``None`` (15). Client: ask the server to
            compress with at most this window. Server: compress with at most this
            window, lower still if the client asks.
        client_max_window_bits: 8-15, ``True`` or ``None``. Client: ``True`` offers
            the parameter without a value, letting the server pick our window; a
            number also promises to use at most that window; ``None`` leaves the
            parameter out. Server: a number is the largest window we decompress
            with: offers without the parameter are declined when it is below 15,
            since we could not hold the client to it (Node ``ws`` does the same);
            ``True`` and ``None`` set no limit.
        compression_level: zlib level, 0 (store) to 9, or -1 (zlib's default, 6).
            6 is zlib's own balance; 1 is several times faster for a few percent
            more bytes.
        mem_level: zlib ``memLevel`` 1-9 for our compressor: its hash table and
            pending-symbol buffer take ``1 << (mem_level + 9)`` bytes. 8 is zlib's
            default; 5 saves 112 KiB per compressor for a slightly worse ratio.
        threshold: messages shorter than this many bytes are sent uncompressed
            (see :meth:`PerMessageDeflate.should_compress`); 0 compresses all.

    Raises:
        ValueError: a value is out of range.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | bool | None = True
    compression_level: int = 6
    mem_level: int = 8
    threshold: int = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        if self.server_max_window_bits is not None and _bits(self.server_max_window_bits) is None:
            raise ValueError(
                f"server_max_window_bits must be 8-15 or None, not {self.server_max_window_bits!r}"
            )
        cmwb = self.client_max_window_bits
        if cmwb is not None and cmwb is not True and _bits(cmwb) is None:
            raise ValueError(f"client_max_window_bits must be 8-15, True or None, not {cmwb!r}")
        _check_codec_settings(self.compression_level, self.mem_level, self.threshold)


def _bits(value: object) -> int | None:
    """``value`` if it is a window size 8-15 (not a bool), else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and 8 <= value <= 15:
        return value
    return None


def _check_codec_settings(level: int, mem_level: int, threshold: int) -> None:
    if not -1 <= level <= 9:
        raise ValueError(f"compression_level must be -1 to 9, not {level!r}")
    if not 1 <= mem_level <= 9:
        raise ValueError(f"mem_level must be 1 to 9, not {mem_level!r}")
    if threshold < 0:
        raise ValueError(f"threshold must be 0 or more, not {threshold!r}")


_DEFAULT_OPTIONS: Final = DeflateOptions()


# ------------------------------------------------------------------- negotiation


@dataclass(frozen=True)
class _Params:
    """The parameters of one offer or response, validated (§7.1)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    # True: present without a value, which only an offer may do (§7.1.2.2).
    client_max_window_bits: int | bool | None = None

    def header(self) -> str:
        """This element as a ``Sec-WebSocket-Extensions`` value."""
        parts = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits is not None:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits is True:
            parts.append("client_max_window_bits")
        elif self.client_max_window_bits is not None:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)


def _parse_params(params: Sequence[tuple[str, str | None]], *, offer: bool) -> _Params:
    """Validate the parameters of an offer (``offer``) or of a response.

    §7.1: an element is refused if it "contains an extension parameter not defined
    for use in an offer/response", one "with an invalid value", or "multiple
    extension parameters with the same name".

    Raises:
        ValueError: says which rule the parameters break.
    """
    seen: set[str] = set()
    no_takeover = {"server_no_context_takeover": False, "client_no_context_takeover": False}
    window: dict[str, int | bool | None] = {}
    for name, value in params:
        if name in seen:
            raise ValueError(f"duplicate parameter {name}")
        seen.add(name)
        if name in no_takeover:
            # §7.1.1.1/§7.1.1.2: "This extension parameter has no value."
            if value is not None:
                raise ValueError(f"{name} takes no value, got {value!r}")
            no_takeover[name] = True
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            if value is None:
                # §7.1.2.2: only an offer's client_max_window_bits may come without
                # a value, meaning "the client supports this parameter".
                if not (offer and name == "client_max_window_bits"):
                    raise ValueError(f"{name} needs a value")
                window[name] = True
                continue
            bits = _WINDOW_BITS.get(value)
            if bits is None:
                raise ValueError(f"{name} must be 8 to 15, got {value!r}")
            window[name] = bits
        else:
            raise ValueError(f"unknown parameter {name}")
    return _Params(
        server_no_context_takeover=no_takeover["server_no_context_takeover"],
        client_no_context_takeover=no_takeover["client_no_context_takeover"],
        server_max_window_bits=_bits(window.get("server_max_window_bits")),
        client_max_window_bits=window.get("client_max_window_bits"),
    )


def client_offer(options: DeflateOptions = _DEFAULT_OPTIONS) -> str:
    """Return the ``Sec-WebSocket-Extensions`` value a client sends.

    With the default options: ``"permessage-deflate; client_max_window_bits"``.
    """
    return _Params(
        server_no_context_takeover=options.server_no_context_takeover,
        client_no_context_takeover=options.client_no_context_takeover,
        server_max_window_bits=options.server_max_window_bits,
        client_max_window_bits=options.client_max_window_bits,
    ).header()


def server_negotiate(
    offers: _Extensions, options: DeflateOptions = _DEFAULT_OPTIONS
) -> tuple[str, PerMessageDeflate] | None:
    """Accept the first acceptable permessage-deflate offer of a client.

    Args:
        offers: the parsed ``Sec-WebSocket-Extensions`` of the request, every header
            line's elements in order; elements of other extensions are skipped.
        options: our limits and preferences.

    Returns:
        The value of our ``Sec-WebSocket-Extensions`` response header and the
        server-side codec, or ``None`` if no offer is acceptable; then the
        connection goes on uncompressed and the response carries no
        permessage-deflate element.
    """
    for name, params in offers:
        if name != EXTENSION_NAME:
            continue
        try:
            offer = _parse_params(params, offer=True)
        except ValueError:
            # §7.1: "A server MUST decline an extension negotiation offer for this
            # extension if [...]"; declining one offer still lets a later one in.
            continue
        agreed = _answer(offer, options)
        if agreed is None:
            continue
        codec = PerMessageDeflate(
            server=True,
            local_no_context_takeover=agreed.server_no_context_takeover,
            remote_no_context_takeover=agreed.client_no_context_takeover,
            local_max_window_bits=agreed.server_max_window_bits or 15,
            remote_max_window_bits=_bits(agreed.client_max_window_bits) or 15,
            compression_level=options.compression_level,
            mem_level=options.mem_level,
            threshold=options.threshold,
            extension=agreed.header(),
        )
        return codec.extension, codec
    return None


def _answer(offer: _Params, options: DeflateOptions) -> _Params | None:
    """Our response to one valid offer, or ``None`` to decline it."""
    # server_max_window_bits (§7.1.2.1): "A server accepts an extension negotiation
    # offer with this parameter by including the "server_max_window_bits" extension
    # parameter in the extension negotiation response [...] with the same or smaller
    # value as the offer." It may also be sent unasked, to announce our own limit.
    ours = options.server_max_window_bits or 15
    server_bits = (
        ours if offer.server_max_window_bits is None else min(ours, offer.server_max_window_bits)
    )
    server_param = (
        server_bits if offer.server_max_window_bits is not None or server_bits < 15 else None
    )

    # client_max_window_bits (§7.1.2.2): only if the offer has it may the response
    # have it, with a value no larger than the offer's.
    wanted = _bits(options.client_max_window_bits)
    if offer.client_max_window_bits is None:
        if wanted is not None and wanted < 15:
            return None  # we cannot bound the client's window: refuse rather than exceed
        client_param = None
    else:
        offered = _bits(offer.client_max_window_bits) or 15
        client_bits = offered if wanted is None else min(offered, wanted)
        # Stating the value even when it only repeats the client's hint makes it
        # binding, so our decompressor may use that window.
        client_param = client_bits if client_bits < 15 else None

    return _Params(
        # §7.1.1.1: we must include it if asked, and may include it unasked.
        server_no_context_takeover=offer.server_no_context_takeover
        or options.server_no_context_takeover,
        # §7.1.1.2: we may always include it. Echoing the client's own hint makes it
        # binding too, so our decompressor can be dropped between messages.
        client_no_context_takeover=offer.client_no_context_takeover
        or options.client_no_context_takeover,
        server_max_window_bits=server_param,
        client_max_window_bits=client_param,
    )


def client_accept(
    response_extensions: _Extensions, options: DeflateOptions = _DEFAULT_OPTIONS
) -> PerMessageDeflate | None:
    """Check the server's answer to :func:`client_offer` and build the codec.

    Args:
        response_extensions: the parsed ``Sec-WebSocket-Extensions`` of the 101
            response (empty if the header is absent).
        options: the options our offer was made from.

    Returns:
        The client-side codec, or ``None`` if the server did not accept the
        extension (the connection goes on uncompressed).

    Raises:
        NegotiationError: the response must fail the connection (RFC 7692 §7.1,
            RFC 6455 §4.1): an extension we did not offer (we offer only this one),
            several permessage-deflate elements, unknown, duplicate or invalid
            parameters, ``client_max_window_bits`` when we did not offer it, a window
            larger than we asked for, or a parameter we asked for left out.
    """
    elements = []
    for name, params in response_extensions:
        if name != EXTENSION_NAME:
            raise NegotiationError(f"the server accepted {name!r}, which was not offered")
        elements.append(params)
    if not elements:
        return None
    if len(elements) > 1:
        raise NegotiationError(f"the server accepted {EXTENSION_NAME} more than once")
    try:
        agreed = _parse_params(elements[0], offer=False)
    except ValueError as exc:
        raise NegotiationError(f"invalid {EXTENSION_NAME} response: {exc}") from None

    # §7.1.1.1: the server accepts our server_no_context_takeover by echoing it.
    if options.server_no_context_takeover and not agreed.server_no_context_takeover:
        raise NegotiationError("the server left out server_no_context_takeover")
    # §7.1.2.1: it accepts our server_max_window_bits with "the same or smaller value".
    asked = options.server_max_window_bits
    server_bits = agreed.server_max_window_bits
    if asked is not None:
        if server_bits is None:
            raise NegotiationError("the server left out server_max_window_bits")
        if server_bits > asked:
            raise NegotiationError(
                f"server_max_window_bits={server_bits} is more than the {asked} offered"
            )
    # §7.1.2.2: "If a received extension negotiation offer doesn't have the
    # client_max_window_bits extension parameter, the corresponding extension
    # negotiation response to the offer MUST NOT include" it.
    offered = options.client_max_window_bits
    client_bits = _bits(agreed.client_max_window_bits)
    if client_bits is not None:
        if offered is None:
            raise NegotiationError("client_max_window_bits in the response was not offered")
        if offered is not True and client_bits > offered:
            raise NegotiationError(
                f"client_max_window_bits={client_bits} is more than the {offered} offered"
            )

    return PerMessageDeflate(
        server=False,
        # Our own offer was a promise: keep it even if the server did not echo it.
        local_no_context_takeover=agreed.client_no_context_takeover
        or options.client_no_context_takeover,
        remote_no_context_takeover=agreed.server_no_context_takeover,
        local_max_window_bits=client_bits or _bits(offered) or 15,
        remote_max_window_bits=server_bits or 15,
        compression_level=options.compression_level,
        mem_level=options.mem_level,
        threshold=options.threshold,
        extension=agreed.header(),
    )


# ------------------------------------------------------------------------- codec


class PerMessageDeflate:
    """The permessage-deflate codec of one connection, made by negotiation.

    Args:
        server: which side of the connection this is.
        local_no_context_takeover: start each message we send with an empty window.
        remote_no_context_takeover: the peer starts each message with an empty
            window, so our decompressor can be dropped between messages.
        local_max_window_bits: the window we compress with, 8-15 (8 uses zlib's
            9, which never reaches back more than 250 bytes; see the module notes).
        remote_max_window_bits: the window we decompress with, 8-15.
        compression_level: zlib level, -1 to 9.
        mem_level: zlib memLevel for the compressor, 1 to 9.
        threshold: smallest message size worth compressing, in bytes.
        extension: the agreed ``Sec-WebSocket-Extensions`` element, for reporting
            (what a browser shows as ``WebSocket.extensions``).

    Raises:
        ValueError: a value is out of range.
    """

    def __init__(
        self,
        *,
        server: bool,
        local_no_context_takeover: bool = False,
        remote_no_context_takeover: bool = False,
        local_max_window_bits: int = 15,
        remote_max_window_bits: int = 15,
        compression_level: int = 6,
        mem_level: int = 8,
        threshold: int = DEFAULT_THRESHOLD,
        extension: str = EXTENSION_NAME,
    ) -> None:
        if _bits(local_max_window_bits) is None or _bits(remote_max_window_bits) is None:
            raise ValueError("window bits must be 8 to 15")
        _check_codec_settings(compression_level, mem_level, threshold)
        self.side = "server" if server else "client"
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_max_window_bits = local_max_window_bits
        self.remote_max_window_bits = remote_max_window_bits
        self.compression_level = compression_level
        self.mem_level = mem_level
        self.threshold = threshold
        self.extension = extension
        # zlib refuses a raw compressor with 8 bits; 9 stays within 8 (module notes).
        self._compress_wbits = -max(local_max_window_bits, 9)
        self._decompress_wbits = -remote_max_window_bits
        # Made on first use; None between messages when there's no context takeover.
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    def __repr__(self) -> str:
        return f"<PerMessageDeflate {self.side}: {self.extension}>"

    # ------------------------------------------------------------------ sending

    def should_compress(self, size: int) -> bool:
        """Whether a message of ``size`` bytes is worth compressing (``>= threshold``).

        For a message sent in fragments, decide once, on the first fragment, and
        send every fragment of it through :meth:`compress`.
        """
        return size >= self.threshold

    def compress(self, data: bytes | bytearray | memoryview, *, final: bool = True) -> bytes:
        """Compress a message, or the next fragment of one, for one frame's payload.

        Every call ends with a sync flush, so each fragment can be sent at once and
        the peer can decompress it as it arrives.

        Args:
            data: the message, or the next part of it.
            final: whether this ends the message (the frame's FIN bit).

        Returns:
            The frame payload. Set RSV1 on the first frame of the message only.
        """
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self.compression_level, zlib.DEFLATED, self._compress_wbits, self.mem_level
            )
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if final:
            # §7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail
            # end." Fragments before the last keep theirs: it is a valid empty block.
            out = out[:-4]
            # §7.2.1: with no context takeover the next message starts from an empty
            # window; dropping the compressor also frees its memory until then.
            if self.local_no_context_takeover:
                self._compressor = None
        return out

    # ---------------------------------------------------------------- receiving

    def start_message(self) -> None:
        """Prepare to receive a compressed message (its first frame had RSV1)."""
        if self._decompressor is None:
            self._decompressor = zlib.decompressobj(self._decompress_wbits)

    def decompress(
        self, data: bytes | bytearray | memoryview, max_length: int | None = None
    ) -> bytes:
        """Decompress the next piece of a compressed message's payload.

        Args:
            data: payload bytes as received (unmasked), any split.
            max_length: how many more bytes the message may decompress to: the
                connection's ``max_size`` minus what this message has produced so
                far (negative counts as 0); ``None`` for no limit. At most
                ``max_length + 1`` bytes are ever produced, however small ``data``.

        Returns:
            The decompressed bytes (possibly empty: zlib may need more input).

        Raises:
            MessageTooBig: the message decompresses to more than ``max_length``.
            InvalidCompressedData: ``data`` is not valid DEFLATE data.
        """
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(self._decompress_wbits)
        try:
            if max_length is None or max_length >= _NO_LIMIT:
                return decompressor.decompress(data)
            # Ask for one byte more than allowed: getting it proves the limit is
            # exceeded, without inflating the rest (zlib's max_length=0 means "no
            # limit", so the request is never 0). Input zlib did not get to is left in
            # unconsumed_tail and dropped with the decompressor.
            limit = max(max_length, 0)
            out = decompressor.decompress(data, limit + 1)
        except zlib.error as exc:
            self._decompressor = None
            raise InvalidCompressedData(f"invalid compressed data: {exc}") from None
        if len(out) > limit:
            self._decompressor = None
            raise MessageTooBig("decompressed message over the size limit", "WS_DEFLATE_TOO_BIG")
        return out

    def finish_message(self, max_length: int | None = None) -> bytes:
        """End a compressed message: decompress what its last block still holds.

        Args:
            max_length: as for :meth:`decompress`, counting everything produced
                for this message so far.

        Returns:
            The last decompressed bytes of the message (usually empty).

        Raises:
            MessageTooBig: as for :meth:`decompress`.
            InvalidCompressedData: as for :meth:`decompress`.
        """
        # §7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the
        # payload of the message" and decompress.
        out = self.decompress(UNCOMPRESSED_TAIL, max_length)
        decompressor = self._decompressor
        # A peer may end a message with a final block (BFINAL=1, §7.2.3.4): that ends
        # the DEFLATE stream, so the next message needs a fresh decompressor. Should
        # such a peer also use context takeover, its next message refers to a window
        # we no longer have: zlib reports a distance too far back and the connection
        # fails with 1007, never with wrong data.
        if self.remote_no_context_takeover or (decompressor is not None and decompressor.eof):
            self._decompressor = None
        return out

    def decompress_message(
        self, data: bytes | bytearray | memoryview, max_length: int | None = None
    ) -> bytes:
        """Decompress a whole compressed message received in one frame.

        The same as :meth:`start_message`, :meth:`decompress` and
        :meth:`finish_message` in a row, with the same ``max_length`` meaning and
        the same errors.
        """
        self.start_message()
        out = self.decompress(data, max_length)
        rest = self.finish_message(None if max_length is None else max_length - len(out))
        return out + rest if rest else out


def deflate_options(value: DeflateOptions | str | None) -> DeflateOptions | None:
    """Normalize a ``compression=`` argument: ``"deflate"``, options, or ``None``."""
    if value is None or isinstance(value, DeflateOptions):
        return value
    if value == "deflate":
        return _DEFAULT_OPTIONS
    raise ValueError(f"unsupported compression {value!r}: use 'deflate' or None")
