"""The browser's ``WebSocket`` interface, in Python, on asyncio.

This module follows the WHATWG WebSockets Standard and the DOM's ``EventTarget``
closely enough that code written for a browser reads the same here::

    ws = WebSocket("ws://127.0.0.1:9001/")
    ws.onopen = lambda event: ws.send("Hello WebSockets!")
    ws.onmessage = lambda event: (print(event.data), ws.close())
    run()  # until every WebSocket has closed

The DOM names (``readyState``, ``binaryType``, ``onmessage``, ``addEventListener``)
are spelt as in the standard on purpose; the camelCase stays in this module.

Theory of operation
-------------------
A :class:`WebSocket` is a *listener* of :class:`~fullduplex.io.client.ClientProtocol`:
the io layer calls :meth:`WebSocket.on_open`, :meth:`~WebSocket.on_message`,
:meth:`~WebSocket.on_closing` and :meth:`~WebSocket.on_close` from event-loop
callbacks. ``open`` is dispatched at once; the rest is queued and dispatched from
one loop callback per batch of frames, in the order the standard gives
(``message``..., then ``error`` if the connection failed, then ``close``). No task
is created per message. Events are never dispatched from inside
:meth:`~WebSocket.send` or :meth:`~WebSocket.close`: a failure those calls cause is
reported from a later loop callback, as a browser queues a task for it.

One task per socket runs the opening handshake; once the socket is OPEN, only
callbacks run. A socket created while no event loop runs waits for :func:`run`,
which starts it and runs a loop until every socket has closed.

``readyState`` is kept here, not read from the io layer, so that it changes at the
moments the standard says: OPEN before ``open`` fires; CLOSING when :meth:`close`
is called or once the messages received before the peer's close frame have been
dispatched; CLOSED just before ``close`` fires.

``bufferedAmount`` counts the payload bytes (UTF-8 for text) that :meth:`send`
accepted and that have not reached the network. It rises by the message size in
:meth:`send` and does not fall before the event loop has turned (so ``send(x)``
followed by ``bufferedAmount`` gives at least ``len(x)``, as in a browser). After
that it is computed from the transport's write buffer
(:attr:`~fullduplex.io.protocol.WebSocketProtocol.buffered_amount`, in bytes on the
wire, after compression): each send records how much its frame grew that buffer,
and since the buffer drains oldest first, walking the recorded frames from the
newest back tells which are still unsent. A frame partly sent counts in proportion
to its unsent bytes; frame headers are not counted (a control frame written after
a message is briefly counted as part of it). Data passed to ``send`` after the
closing handshake started is never sent and stays counted, as the standard says;
after an unclean close the last count is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import re
import ssl as ssl_module
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from .io.client import ClientProtocol, WebSocketURI
from .io.protocol import WebSocketProtocol
from .protocol.connection import State
from .protocol.deflate import deflate_options

__all__ = [
    "Blob",
    "CloseEvent",
    "DOMException",
    "DOMSyntaxError",
    "Event",
    "EventTarget",
    "InvalidAccessError",
    "InvalidStateError",
    "MessageEvent",
    "WebSocket",
    "run",
]

logger = logging.getLogger("fullduplex.browser")

_TIME_ORIGIN = time.monotonic()


# ---------------------------------------------------------------------------
# DOMException


class DOMException(Exception):
    """A DOM exception: ``name`` is the DOM error name, ``message`` the text.

    The WebSocket API raises the subclasses :class:`DOMSyntaxError`,
    :class:`InvalidStateError` and :class:`InvalidAccessError`; catch them by class
    or test ``exc.name`` as JavaScript code would.
    """

    _codes: ClassVar[dict[str, int]] = {
        "InvalidStateError": 11,
        "SyntaxError": 12,
        "InvalidAccessError": 15,
    }

    def __init__(self, message: str = "", name: str = "Error") -> None:
        super().__init__(message)
        self.message = message
        self.name = name

    @property
    def code(self) -> int:
        """The legacy numeric code of ``name`` (0 for names that have none)."""
        return self._codes.get(self.name, 0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, name={self.name!r})"


class DOMSyntaxError(DOMException):
    """``SyntaxError``: a bad URL, subprotocol or close reason."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message, "SyntaxError")


class InvalidStateError(DOMException):
    """``InvalidStateError``: ``send()`` before the connection is open."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message, "InvalidStateError")


class InvalidAccessError(DOMException):
    """``InvalidAccessError``: a close code other than 1000 or 3000-4999."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message, "InvalidAccessError")


# ---------------------------------------------------------------------------
# Blob


class Blob:
    """Immutable binary data, like the web's ``Blob``.

    ``Blob([b"ab", "c", other_blob], type="text/plain")``. Parts are bytes-like
    objects, ``str`` (encoded as UTF-8) or other blobs.

    As on the web, :meth:`text`, :meth:`arrayBuffer` and :meth:`bytes` are
    coroutines (``await event.data.text()``); ``bytes(blob)`` gives the content
    synchronously, for code that runs outside a coroutine.
    """

    __slots__ = ("_data", "_type")

    def __init__(
        self,
        blobParts: Iterable[str | bytes | bytearray | memoryview | Blob] = (),
        options: Mapping[str, str] | None = None,
        *,
        type: str = "",
    ) -> None:
        if isinstance(blobParts, (str, bytes, bytearray, memoryview, Blob)):
            raise TypeError("blobParts must be a sequence of parts, e.g. [b'data']")
        chunks: list[bytes] = []
        for part in blobParts:
            if isinstance(part, Blob):
                chunks.append(part._data)
            elif isinstance(part, str):
                chunks.append(_usv(part).encode("utf-8"))
            else:
                chunks.append(memoryview(part).tobytes())
        if options is not None and "type" in options:
            type = options["type"]
        self._data = b"".join(chunks)
        self._type = _blob_type(type)

    @classmethod
    def _wrap(cls, data: bytes, content_type: str = "") -> Blob:
        blob = cls.__new__(cls)
        blob._data = data
        blob._type = content_type
        return blob

    @property
    def size(self) -> int:
        """The length in bytes."""
        return len(self._data)

    @property
    def type(self) -> str:
        """The MIME type given at creation, lowercased (``""`` if none or invalid)."""
        return self._type

    def slice(self, start: int = 0, end: int | None = None, contentType: str = "") -> Blob:
        """A new blob with bytes ``start`` to ``end``; negative values count from the end."""
        size = len(self._data)
        lo = max(size + start, 0) if start < 0 else min(start, size)
        if end is None:
            hi = size
        else:
            hi = max(size + end, 0) if end < 0 else min(end, size)
        return Blob._wrap(self._data[lo : max(hi, lo)], _blob_type(contentType))

    async def text(self) -> str:
        """The content decoded as UTF-8 (invalid sequences become U+FFFD)."""
        return self._data.decode("utf-8", "replace")

    async def arrayBuffer(self) -> bytes:
        """The content as ``bytes``."""
        return self._data

    async def bytes(self) -> bytes:
        """The content as ``bytes`` (the web returns a ``Uint8Array``)."""
        return self._data

    def __bytes__(self) -> bytes:
        return self._data

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Blob):
            return NotImplemented
        return self._data == other._data and self._type == other._type

    def __hash__(self) -> int:
        return hash((self._data, self._type))

    def __repr__(self) -> str:
        return f"<Blob size={self.size} type={self.type!r}>"


def _blob_type(value: str) -> str:
    # File API: a type with characters outside U+0020-U+007E is ignored.
    if any(not " " <= ch <= "~" for ch in value):
        return ""
    return value.lower()


def _usv(text: str) -> str:
    """Convert to a USVString: lone surrogates become U+FFFD, as WebIDL does."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# ---------------------------------------------------------------------------
# Events


class Event:
    """A DOM ``Event``: ``Event("open")``. Attributes are read-only."""

    NONE = 0
    CAPTURING_PHASE = 1
    AT_TARGET = 2
    BUBBLING_PHASE = 3

    def __init__(
        self,
        type: str,
        eventInitDict: Mapping[str, Any] | None = None,
        *,
        bubbles: bool = False,
        cancelable: bool = False,
    ) -> None:
        init = dict(eventInitDict or {})
        self._type = str(type)
        self._bubbles = bool(init.get("bubbles", bubbles))
        self._cancelable = bool(init.get("cancelable", cancelable))
        self._target: EventTarget | None = None
        self._current_target: EventTarget | None = None
        self._phase = Event.NONE
        self._canceled = False
        self._stop = False
        self._stop_immediate = False
        self._dispatching = False
        self._trusted = False
        self._time_stamp = (time.monotonic() - _TIME_ORIGIN) * 1000.0

    @property
    def type(self) -> str:
        """The event type, e.g. ``"message"``."""
        return self._type

    @property
    def target(self) -> EventTarget | None:
        """The object the event was dispatched to."""
        return self._target

    @property
    def currentTarget(self) -> EventTarget | None:
        """The object whose listeners are running (``None`` after dispatch)."""
        return self._current_target

    @property
    def srcElement(self) -> EventTarget | None:
        """Legacy alias of :attr:`target`."""
        return self._target

    @property
    def eventPhase(self) -> int:
        """``AT_TARGET`` during dispatch, ``NONE`` otherwise."""
        return self._phase

    @property
    def bubbles(self) -> bool:
        return self._bubbles

    @property
    def cancelable(self) -> bool:
        return self._cancelable

    @property
    def defaultPrevented(self) -> bool:
        """Whether :meth:`preventDefault` was called on a cancelable event."""
        return self._canceled

    @property
    def isTrusted(self) -> bool:
        """True for events fired by the WebSocket itself, false for ``dispatchEvent``."""
        return self._trusted

    @property
    def timeStamp(self) -> float:
        """Milliseconds since this module was loaded, when the event was created."""
        return self._time_stamp

    def preventDefault(self) -> None:
        if self._cancelable:
            self._canceled = True

    def stopPropagation(self) -> None:
        self._stop = True

    def stopImmediatePropagation(self) -> None:
        """Skip the listeners that have not run yet."""
        self._stop = True
        self._stop_immediate = True

    def composedPath(self) -> list[EventTarget]:
        return [self._current_target] if self._current_target is not None else []

    def _repr_fields(self) -> str:
        return f"type={self._type!r}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._repr_fields()}>"


class MessageEvent(Event):
    """A DOM ``MessageEvent``: ``data`` is ``str``, :class:`Blob` or ``bytes``."""

    def __init__(
        self,
        type: str,
        eventInitDict: Mapping[str, Any] | None = None,
        *,
        data: Any = None,
        origin: str = "",
        lastEventId: str = "",
        source: Any = None,
        ports: Sequence[Any] = (),
        bubbles: bool = False,
        cancelable: bool = False,
    ) -> None:
        super().__init__(type, eventInitDict, bubbles=bubbles, cancelable=cancelable)
        init = dict(eventInitDict or {})
        self._data = init.get("data", data)
        self._origin = str(init.get("origin", origin))
        self._last_event_id = str(init.get("lastEventId", lastEventId))
        self._source = init.get("source", source)
        self._ports = tuple(init.get("ports", ports))

    @property
    def data(self) -> Any:
        """The message: ``str`` for text, :class:`Blob` or ``bytes`` for binary."""
        return self._data

    @property
    def origin(self) -> str:
        """The origin of the WebSocket's URL, e.g. ``"ws://127.0.0.1:9001"``."""
        return self._origin

    @property
    def lastEventId(self) -> str:
        return self._last_event_id

    @property
    def source(self) -> Any:
        return self._source

    @property
    def ports(self) -> tuple[Any, ...]:
        return self._ports

    def _repr_fields(self) -> str:
        data = self._data
        shown = repr(data) if not isinstance(data, str) or len(data) <= 40 else repr(data[:40])
        return f"type={self._type!r} data={shown}"


class CloseEvent(Event):
    """A DOM ``CloseEvent``: how the connection ended."""

    def __init__(
        self,
        type: str,
        eventInitDict: Mapping[str, Any] | None = None,
        *,
        wasClean: bool = False,
        code: int = 0,
        reason: str = "",
        bubbles: bool = False,
        cancelable: bool = False,
    ) -> None:
        super().__init__(type, eventInitDict, bubbles=bubbles, cancelable=cancelable)
        init = dict(eventInitDict or {})
        self._was_clean = bool(init.get("wasClean", wasClean))
        self._code = int(init.get("code", code))
        self._reason = str(init.get("reason", reason))

    @property
    def wasClean(self) -> bool:
        """Whether the closing handshake completed."""
        return self._was_clean

    @property
    def code(self) -> int:
        """The peer's close code: 1005 if it gave none, 1006 if there was no close frame."""
        return self._code

    @property
    def reason(self) -> str:
        """The peer's close reason."""
        return self._reason

    def _repr_fields(self) -> str:
        return (
            f"type={self._type!r} code={self._code} reason={self._reason!r} "
            f"wasClean={self._was_clean}"
        )


Listener = Callable[[Event], Any]


class _Entry:
    """One registered listener (DOM "event listener" struct)."""

    __slots__ = ("callback", "capture", "once", "removed", "type")

    def __init__(self, type: str, callback: Any, capture: bool, once: bool) -> None:
        self.type = type
        self.callback = callback
        self.capture = capture
        self.once = once
        self.removed = False


class _HandlerCaller:
    """The listener behind an ``on<type>`` attribute: calls its current value."""

    __slots__ = ("name", "target")

    def __init__(self, target: EventTarget, name: str) -> None:
        self.target = target
        self.name = name

    def __call__(self, event: Event) -> Any:
        handler = self.target._handlers.get(self.name)
        if handler is not None:
            return handler(event)
        return None


class EventTarget:
    """DOM ``EventTarget``: ``addEventListener``, ``removeEventListener``, ``dispatchEvent``.

    Listeners are callables taking the event, or objects with a ``handleEvent``
    method. A listener that returns a coroutine is run as a task; its exception,
    like one raised by any listener, is logged on the ``fullduplex.browser`` logger
    and does not stop the other listeners.
    """

    def __init__(self) -> None:
        self._listeners: dict[str, list[_Entry]] = {}
        self._handlers: dict[str, Listener | None] = {}
        self._handler_entries: dict[str, _Entry] = {}
        self._listener_tasks: set[asyncio.Task[Any]] = set()

    def addEventListener(
        self,
        type: str,
        callback: Any,
        options: bool | Mapping[str, Any] | None = None,
        *,
        once: bool = False,
        capture: bool = False,
    ) -> None:
        """Add ``callback`` for ``type`` unless it is already there (with the same capture).

        ``options`` is a bool (capture) or a mapping like ``{"once": True}``, as in
        JavaScript; ``once=True`` as a keyword argument does the same.
        """
        if callback is None:
            return
        if isinstance(options, Mapping):
            once = bool(options.get("once", once))
            capture = bool(options.get("capture", capture))
        elif options is not None:
            capture = bool(options)
        entries = self._listeners.setdefault(str(type), [])
        for entry in entries:
            if entry.callback == callback and entry.capture == capture:
                return
        entries.append(_Entry(str(type), callback, capture, once))

    def removeEventListener(
        self,
        type: str,
        callback: Any,
        options: bool | Mapping[str, Any] | None = None,
        *,
        capture: bool = False,
    ) -> None:
        """Remove ``callback`` for ``type`` (and the same capture flag), if present."""
        if isinstance(options, Mapping):
            capture = bool(options.get("capture", capture))
        elif options is not None:
            capture = bool(options)
        for entry in self._listeners.get(str(type), ()):
            if entry.callback == callback and entry.capture == capture:
                self._remove_entry(entry)
                return

    def _remove_entry(self, entry: _Entry) -> None:
        entry.removed = True
        entries = self._listeners.get(entry.type)
        if entries is not None and entry in entries:
            entries.remove(entry)

    def dispatchEvent(self, event: Event) -> bool:
        """Run the listeners of ``event.type`` now; False if the default was prevented.

        Raises:
            InvalidStateError: ``event`` is being dispatched already.
        """
        if event._dispatching:
            raise InvalidStateError("the event is already being dispatched")
        event._trusted = False
        return self._dispatch(event)

    def _fire(self, event: Event) -> bool:
        event._trusted = True
        return self._dispatch(event)

    def _dispatch(self, event: Event) -> bool:
        event._dispatching = True
        event._target = self
        event._current_target = self
        event._phase = Event.AT_TARGET
        event._stop = event._stop_immediate = False
        try:
            entries = list(self._listeners.get(event.type, ()))
            # At the target, capturing listeners run first (DOM "dispatch", step 5.x).
            for capture in (True, False):
                for entry in entries:
                    if entry.capture is not capture or entry.removed:
                        continue
                    if entry.once:
                        self._remove_entry(entry)
                    self._invoke(entry, event)
                    if event._stop_immediate:
                        return not event._canceled
        finally:
            event._dispatching = False
            event._current_target = None
            event._phase = Event.NONE
        return not event._canceled

    def _invoke(self, entry: _Entry, event: Event) -> None:
        callback = entry.callback
        try:
            if not callable(callback):
                handle = getattr(callback, "handleEvent", None)
                if handle is None:
                    raise TypeError(f"{callback!r} is not callable and has no handleEvent()")
                callback = handle
            result = callback(event)
            if inspect.isawaitable(result):
                self._run_listener_task(result, event.type)
        except Exception:
            logger.exception("uncaught exception in a %r event listener", event.type)

    def _run_listener_task(self, awaitable: Awaitable[Any], event_type: str) -> None:
        task = asyncio.ensure_future(awaitable)
        self._listener_tasks.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self._listener_tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                logger.error(
                    "uncaught exception in a %r event listener",
                    event_type,
                    exc_info=task.exception(),
                )

        task.add_done_callback(done)

    # ``on<type>`` attributes (HTML "event handlers"): the handler's listener is
    # added when the attribute is first set, keeps its place when the value
    # changes, and is removed when it is set to None.

    def _get_handler(self, name: str) -> Listener | None:
        return self._handlers.get(name)

    def _set_handler(self, name: str, value: Listener | None) -> None:
        if value is not None and not callable(value):
            value = None  # WebIDL: a non-callable value is treated as null
        if value is None:
            self._handlers.pop(name, None)
            entry = self._handler_entries.pop(name, None)
            if entry is not None:
                self._remove_entry(entry)
            return
        self._handlers[name] = value
        if name not in self._handler_entries:
            entry = _Entry(name, _HandlerCaller(self, name), False, False)
            self._handler_entries[name] = entry
            self._listeners.setdefault(name, []).append(entry)


def _handler_property(name: str, doc: str) -> property:
    def fget(self: EventTarget) -> Listener | None:
        return self._get_handler(name)

    def fset(self: EventTarget, value: Listener | None) -> None:
        self._set_handler(name, value)

    return property(fget, fset, doc=doc)


# ---------------------------------------------------------------------------
# URL parsing (the parts of the WHATWG URL Standard a WebSocket URL needs)

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_DEFAULT_PORTS = {"ws": 80, "wss": 443}
_FORBIDDEN_HOST = set("\x00\t\n\r #/:<>?@[\\]^|%\x7f") | {chr(i) for i in range(0x20)}
_C0 = {chr(i) for i in range(0x20)}
_PATH_SET = _C0 | set(' "#<>?`{}')
_QUERY_SET = _C0 | set(" \"#<>'")
_USERINFO_SET = _PATH_SET | set("/:;=@[\\]^|")


def _percent_encode(text: str, encode_set: set[str]) -> str:
    out = []
    for ch in text:
        if ch in encode_set or ch > "~":
            out.extend(f"%{byte:02X}" for byte in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def _parse_ipv4_number(part: str) -> int | None:
    if not part:
        return None
    base = 10
    if part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, base = part[1:], 8
    if part == "":
        return 0
    try:
        return int(part, base)
    except ValueError:
        return None


def _parse_host(text: str) -> str:
    if text.startswith("["):
        if not text.endswith("]"):
            raise DOMSyntaxError("invalid IPv6 address")
        try:
            return "[" + ipaddress.IPv6Address(text[1:-1]).compressed + "]"
        except ValueError:
            raise DOMSyntaxError("invalid IPv6 address") from None
    domain = urllib.parse.unquote(text, errors="strict")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower() if domain else ""
    except UnicodeError:
        raise DOMSyntaxError(f"invalid host {text!r}") from None
    if not ascii_domain or any(ch in _FORBIDDEN_HOST for ch in ascii_domain):
        raise DOMSyntaxError(f"invalid host {text!r}")
    # A host whose last label is a number is an IPv4 address (possibly short or hex).
    labels = ascii_domain.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]
    last = labels[-1]
    if last.isdigit() or (last[:2] == "0x" and all(c in "0123456789abcdef" for c in last[2:])):
        numbers = [_parse_ipv4_number(label) for label in labels]
        if len(numbers) > 4 or any(n is None for n in numbers):
            raise DOMSyntaxError(f"invalid IPv4 address {text!r}")
        values = [n for n in numbers if n is not None]
        if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
            raise DOMSyntaxError(f"invalid IPv4 address {text!r}")
        address = values[-1]
        for index, n in enumerate(values[:-1]):
            address += n * 256 ** (3 - index)
        return str(ipaddress.IPv4Address(address))
    return ascii_domain


def _normalize_path(path: str) -> str:
    segments: list[str] = []
    parts = path.split("/")[1:] if path else [""]
    for index, segment in enumerate(parts):
        last = index == len(parts) - 1
        lowered = segment.lower()
        if lowered in ("..", ".%2e", "%2e.", "%2e%2e"):
            if segments:
                segments.pop()
            if last:
                segments.append("")
        elif lowered in (".", "%2e"):
            if last:
                segments.append("")
        else:
            segments.append(segment)
    return "/" + "/".join(segments)


def _parse_url(url: str) -> tuple[str, WebSocketURI, str]:
    """Parse a WebSocket URL as a browser does: (serialized URL, connection target, origin).

    Raises:
        DOMSyntaxError: not absolute, not ws/wss/http/https, unparsable, or with a fragment.
    """
    text = str(url).strip("".join(_C0) + " ")
    text = text.replace("\t", "").replace("\n", "").replace("\r", "")
    match = _SCHEME_RE.match(text)
    if match is None:
        raise DOMSyntaxError(f"{url!r} is not an absolute URL (there is no base URL here)")
    scheme = match.group()[:-1].lower()
    scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    if scheme not in _DEFAULT_PORTS:
        raise DOMSyntaxError(f"the URL's scheme must be ws or wss, not {scheme!r}")
    rest = text[match.end() :].replace("\\", "/")
    if "#" in rest:
        raise DOMSyntaxError(f"{url!r} has a fragment; WebSocket URLs cannot have one")
    rest = rest.lstrip("/")  # "ws:host", "ws:/host" and "ws:///host" all mean ws://host
    end = len(rest)
    for delimiter in "/?":
        position = rest.find(delimiter)
        if position != -1:
            end = min(end, position)
    authority, rest = rest[:end], rest[end:]
    username = password = None
    if "@" in authority:
        userinfo, authority = authority.rsplit("@", 1)
        user, _, pwd = userinfo.partition(":")
        username = _percent_encode(user, _USERINFO_SET) or None
        password = _percent_encode(pwd, _USERINFO_SET) or None
    if authority.startswith("["):
        close = authority.find("]")
        host_text, port_text = authority[: close + 1], authority[close + 1 :]
        if port_text and not port_text.startswith(":"):
            raise DOMSyntaxError(f"invalid host in {url!r}")
        port_text = port_text[1:]
    else:
        host_text, _, port_text = authority.partition(":")
    if not host_text:
        raise DOMSyntaxError(f"{url!r} has no host")
    host = _parse_host(host_text)
    default_port = _DEFAULT_PORTS[scheme]
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
            raise DOMSyntaxError(f"invalid port in {url!r}")
        port = int(port_text)
    else:
        port = default_port
    path, question, query = rest.partition("?")
    path = _normalize_path(_percent_encode(path, _PATH_SET))
    query = _percent_encode(query, _QUERY_SET)

    shown_port = "" if port == default_port else f":{port}"
    origin = f"{scheme}://{host}{shown_port}"
    credentials = ""
    if username or password:
        credentials = (username or "") + (f":{password}" if password else "") + "@"
    resource = path + (f"?{query}" if question else "")
    serialized = f"{scheme}://{credentials}{host}{shown_port}{resource}"

    target = WebSocketURI(
        secure=scheme == "wss",
        host=host[1:-1] if host.startswith("[") else host,
        port=port,
        resource=resource,
        username=urllib.parse.unquote(username) if username else None,
        password=urllib.parse.unquote(password) if password else None,
    )
    return serialized, target, origin


_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _check_protocols(protocols: str | Sequence[str] | None) -> list[str]:
    if protocols is None:
        return []
    if isinstance(protocols, str):
        protocols = [protocols]
    result: list[str] = []
    seen: set[str] = set()
    for value in protocols:
        if not isinstance(value, str):
            raise TypeError(f"subprotocols must be str, not {type(value).__name__}")
        if _TOKEN_RE.fullmatch(value) is None:
            raise DOMSyntaxError(f"{value!r} is not a valid subprotocol name (an HTTP token)")
        folded = value.lower()
        if folded in seen:
            raise DOMSyntaxError(f"subprotocol {value!r} is given more than once")
        seen.add(folded)
        result.append(value)
    return result


# ---------------------------------------------------------------------------
# The sockets that keep run() going

_pending: list[WebSocket] = []  # created while no loop ran; run() starts them
_active: set[WebSocket] = set()  # started and not CLOSED yet (also keeps them alive)


def run(
    main: Callable[[], Any] | None = None,
    *,
    timeout: float | None = None,
) -> None:
    """Run an event loop until every :class:`WebSocket` has closed.

    This is the one call a plain script needs::

        ws = WebSocket("ws://127.0.0.1:9001/")
        ws.onopen = lambda event: ws.send("Hello WebSockets!")
        ws.onmessage = lambda event: (print(event.data), ws.close())
        run()

    Sockets created before ``run()`` (with no event loop running) start when it
    starts; sockets created by listeners while it runs are waited for too.

    Args:
        main: optional function called once the loop runs (before waiting); if it
            returns an awaitable, that is awaited too. Create sockets in it to
            start them inside the loop.
        timeout: give up after this many seconds (``TimeoutError``); sockets still
            open are then dropped as the loop ends.
    """

    async def body() -> None:
        loop = asyncio.get_running_loop()
        waiting, _pending[:] = list(_pending), []
        for ws in waiting:
            ws._start(loop)
        if main is not None:
            result = main()
            if inspect.isawaitable(result):
                await result
        while True:
            live = [ws._closed for ws in _active if ws._loop is loop]
            if not live:
                return
            await asyncio.wait(live)

    async def bounded() -> None:
        if timeout is None:
            await body()
        else:
            try:
                await asyncio.wait_for(body(), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"WebSockets still open after {timeout} s") from None

    asyncio.run(bounded())


# ---------------------------------------------------------------------------
# WebSocket


class WebSocket(EventTarget):
    """A WebSocket client with the browser's interface.

    ``WebSocket(url, protocols=None)`` validates its arguments like a browser and
    starts connecting by itself: on the running event loop, or when :func:`run`
    starts one if none is running. Not thread-safe: use it from its loop only.

    Args:
        url: ``ws://``, ``wss://``, ``http://`` or ``https://`` URL (the latter two
            mean ``ws``/``wss``), absolute, without a fragment.
        protocols: one subprotocol or a sequence of them, in order of preference.

    Keyword-only extras a browser does not have: ``origin`` (an ``Origin`` header to
    send; none by default), ``additional_headers`` (pairs or a mapping), ``ssl`` (a
    client :class:`ssl.SSLContext` for ``wss://``), and the protocol options of
    :func:`fullduplex.connect` (``open_timeout``, ``max_size``, ``ping_interval``,
    ``ping_timeout``, ``close_timeout``, ``write_limit``, ``compression``).

    Raises:
        DOMSyntaxError: a bad URL, or a subprotocol that is not a token or repeats.
        TypeError: a subprotocol is not a ``str``.
    """

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3

    onopen = _handler_property("open", "Handler for ``open`` events (or None).")
    onmessage = _handler_property("message", "Handler for ``message`` events (or None).")
    onerror = _handler_property("error", "Handler for ``error`` events (or None).")
    onclose = _handler_property("close", "Handler for ``close`` events (or None).")

    def __init__(
        self,
        url: str,
        protocols: str | Sequence[str] | None = None,
        *,
        origin: str | None = None,
        additional_headers: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
        ssl: ssl_module.SSLContext | None = None,
        open_timeout: float | None = 10,
        **protocol_options: Any,
    ) -> None:
        super().__init__()
        self._url, self._target, self._origin = _parse_url(url)
        self._protocols = _check_protocols(protocols)
        if ssl is not None and not self._target.secure:
            raise ValueError("ssl= was given for a ws:// URL; use wss://")
        headers = additional_headers or ()
        if isinstance(headers, Mapping):
            headers = list(headers.items())
        self._request_origin = origin
        self._headers = list(headers)
        self._ssl = ssl
        self._open_timeout = open_timeout
        if "compression" in protocol_options:
            protocol_options["compression"] = deflate_options(protocol_options["compression"])
        self._protocol_options = protocol_options

        self._state = WebSocket.CONNECTING
        self._binary_type = "blob"
        self._protocol = ""
        self._extensions = ""
        self._proto: WebSocketProtocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._close_called = False
        self._ended = False  # the close event was fired
        self._refused = False  # the handshake succeeded but broke a browser rule

        # bufferedAmount bookkeeping (see the module docstring)
        self._sent: deque[tuple[int, int]] = deque()  # (payload, wire) per message
        self._discarded = 0
        self._live = 0
        self._snapshot: int | None = None
        self._inbox: deque[tuple[Any, ...]] = deque()  # events waiting for dispatch

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _pending.append(self)
        else:
            self._start(loop)

    # ------------------------------------------------------------ attributes

    @property
    def url(self) -> str:
        """The URL, parsed and serialized (``http``/``https`` become ``ws``/``wss``)."""
        return self._url

    @property
    def readyState(self) -> int:
        """CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3)."""
        self._sync_closing()
        return self._state

    @property
    def protocol(self) -> str:
        """The subprotocol the server selected (``""`` before ``open`` or if none)."""
        return self._protocol

    @property
    def extensions(self) -> str:
        """The extensions the server accepted (``""``: none are offered)."""
        return self._extensions

    @property
    def binaryType(self) -> str:
        """``"blob"`` (the default: binary messages are :class:`Blob`) or ``"arraybuffer"``
        (they are ``bytes``). Other values are ignored, as in a browser."""
        return self._binary_type

    @binaryType.setter
    def binaryType(self, value: str) -> None:
        if value in ("blob", "arraybuffer"):
            self._binary_type = value

    @property
    def bufferedAmount(self) -> int:
        """Payload bytes accepted by :meth:`send` and not yet written to the network."""
        if self._snapshot is not None:
            return self._snapshot
        return self._compute_live() + self._discarded

    def _compute_live(self) -> int:
        proto = self._proto
        if proto is None or proto.transport is None or proto.closed.done():
            return self._live  # frozen once the connection is gone
        unsent = proto.buffered_amount
        live = 0
        keep = 0
        for payload, wire in reversed(self._sent):
            if unsent <= 0:
                break
            keep += 1
            if unsent >= wire:
                live += payload
                unsent -= wire
            else:  # the oldest message still buffered: part of it has gone out
                live += -(-payload * unsent // wire)
                unsent = 0
        sent = self._sent
        while len(sent) > keep:
            sent.popleft()
        self._live = live
        return live

    def _end_snapshot(self) -> None:
        self._snapshot = None
        self._compute_live()

    # -------------------------------------------------------------- methods

    def send(self, data: str | bytes | bytearray | memoryview | Blob) -> None:
        """Send a message: ``str`` as text, bytes-like or :class:`Blob` as binary.

        After the closing handshake has started, the data is dropped but still
        counted in :attr:`bufferedAmount`, as the standard says.

        Raises:
            InvalidStateError: the connection is still CONNECTING.
            TypeError: ``data`` is of another type.
        """
        if self._state == WebSocket.CONNECTING:
            raise InvalidStateError("send() before the connection is open (CONNECTING)")
        message: str | bytes | memoryview
        if isinstance(data, str):
            message = data if data.isascii() else _usv(data)
            size = len(message) if data.isascii() else len(message.encode("utf-8"))
        elif isinstance(data, Blob):
            message = data._data
            size = len(message)
        else:
            try:
                view = memoryview(data)  # type: ignore[arg-type]
            except TypeError:
                raise TypeError(
                    f"send() takes str, a bytes-like object or a Blob, not {type(data).__name__}"
                ) from None
            message = view if view.format == "B" and view.c_contiguous else view.tobytes()
            size = view.nbytes
        current = self.bufferedAmount
        self._sync_closing()
        proto = self._proto
        if self._state == WebSocket.OPEN and proto is not None and proto.state is State.OPEN:
            # Our listeners never run inside the io layer's dispatch, so the frame
            # is handed to the transport now: what the transport's buffer grew by
            # is this frame's unsent part (after compression, if any).
            before = proto.buffered_amount
            try:
                proto.send(message)
            except Exception:  # the core refused it (closing): counted as dropped
                logger.debug("send() after the closing handshake started", exc_info=True)
                self._discarded += size
            else:
                buffered = proto.buffered_amount - before
                if buffered > 0:
                    self._sent.append((size, buffered))
        else:
            self._discarded += size
        if self._snapshot is None and self._loop is not None:
            self._loop.call_soon(self._end_snapshot)
        self._snapshot = current + size

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Start the closing handshake; while CONNECTING, fail the connection instead.

        With neither argument the close frame has no status (the peer sees 1005);
        with only ``reason``, the code is 1000. Calling it again does nothing.

        Raises:
            InvalidAccessError: ``code`` is neither 1000 nor in 3000-4999.
            DOMSyntaxError: ``reason`` is longer than 123 bytes in UTF-8.
        """
        if code is not None:
            if isinstance(code, bool) or not isinstance(code, int):
                raise TypeError(f"code must be an int, not {type(code).__name__}")
            if code != 1000 and not 3000 <= code <= 4999:
                raise InvalidAccessError(f"close code {code} is neither 1000 nor in 3000-4999")
        if reason is not None:
            reason = _usv(str(reason))
            if len(reason.encode("utf-8")) > 123:
                raise DOMSyntaxError("the close reason is longer than 123 bytes in UTF-8")
        self._sync_closing()
        if self._state in (WebSocket.CLOSING, WebSocket.CLOSED):
            return
        self._close_called = True
        if self._state == WebSocket.CONNECTING:
            # "Fail the WebSocket connection": the error and close events follow
            # from the connecting task's end, never from inside this call.
            self._state = WebSocket.CLOSING
            if self._proto is not None:
                self._proto.abort()
            if self._connecting is not None:
                self._connecting.cancel()
            return
        self._state = WebSocket.CLOSING
        proto = self._proto
        assert proto is not None
        if code is None and reason:
            code = 1000
        with contextlib.suppress(Exception):  # already closing at the protocol level
            proto.close(code, reason or "")

    # ------------------------------------------------------- connecting

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._closed = loop.create_future()
        _active.add(self)
        if self._state != WebSocket.CONNECTING:  # close() was called before the loop ran
            loop.call_soon(self._fail)
            return
        self._connecting = loop.create_task(self._connect())
        self._connecting.add_done_callback(self._connect_done)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        target = self._target
        options = dict(self._protocol_options)
        options.setdefault("open_timeout", self._open_timeout)

        def factory() -> ClientProtocol:
            proto = ClientProtocol(
                target,
                self,
                subprotocols=self._protocols,
                additional_headers=self._headers,
                origin=self._request_origin,
                **options,
            )
            self._proto = proto
            return proto

        kwargs: dict[str, Any] = {}
        if target.secure:
            kwargs["ssl"] = self._ssl or ssl_module.create_default_context()
            kwargs["server_hostname"] = target.host
        connecting = loop.create_connection(factory, target.host, target.port, **kwargs)
        if self._open_timeout is None:
            await connecting
        else:
            await asyncio.wait_for(connecting, self._open_timeout)
        proto = self._proto
        assert isinstance(proto, ClientProtocol)
        try:
            await proto.opened
        except BaseException:
            proto.abort()
            raise

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        self._connecting = None
        if task.cancelled():
            error: BaseException | None = None
        else:
            error = task.exception()
            if error is None:
                return  # OPEN: on_open has run
        if self._state in (WebSocket.CONNECTING, WebSocket.CLOSING) and not self._ended:
            if not self._close_called:
                logger.warning("WebSocket connection to %r failed: %s", self._url, error)
            self._fail()

    def _fail(self) -> None:
        """The connection failed before it opened: ``error``, then ``close`` (1006)."""
        if self._ended:
            return
        self._state = WebSocket.CLOSED
        self._ended = True
        self._finish()
        self._fire(Event("error"))
        self._fire(CloseEvent("close", wasClean=False, code=1006, reason=""))

    def _finish(self) -> None:
        _active.discard(self)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    # -------------------------------------------------------- listener interface
    # The io layer calls these from event-loop callbacks. ``open`` is dispatched at
    # once (no frame has been processed yet); everything after it goes through
    # ``_inbox`` and is dispatched from one loop callback per batch, in order, so
    # that listeners never run inside the io layer's own dispatch: what they send
    # reaches the transport at once (see ``send``), and readyState can stay OPEN
    # while the messages that came before the peer's close frame are dispatched.

    def on_open(self, ws: WebSocketProtocol) -> None:
        self._proto = ws
        if self._state != WebSocket.CONNECTING:
            return
        if self._protocols and not ws.subprotocol:
            # Fetch, "establish a WebSocket connection": subprotocols were offered and
            # the server chose none, so the connection fails (RFC 6455 alone allows it).
            logger.warning("WebSocket connection to %r failed: no subprotocol chosen", self._url)
            self._refused = True
            ws.abort()
            return
        self._state = WebSocket.OPEN
        self._protocol = ws.subprotocol or ""
        self._extensions = ws.extensions or ""
        self._fire(Event("open"))

    def on_message(self, ws: WebSocketProtocol, data: str | bytes) -> None:
        self._post(("message", data))

    def on_closing(self, ws: WebSocketProtocol) -> None:
        self._post(("closing",))

    def on_close(self, ws: WebSocketProtocol, code: int, reason: str, was_clean: bool) -> None:
        core = ws.core
        # We failed the connection (a protocol error by the server, a keepalive
        # timeout) if the io layer sent a close frame we did not ask for and got
        # none back: a browser then fires "error" and reports 1006.
        failed = self._refused or (
            core is not None
            and (
                core.failure is not None
                or (
                    core.close_sent is not None
                    and core.close_rcvd is None
                    and not self._close_called
                )
            )
        )
        if failed:
            code, reason, was_clean = 1006, "", False
        self._post(("close", code, reason, was_clean, failed))

    def _post(self, item: tuple[Any, ...]) -> None:
        if not self._inbox:
            assert self._loop is not None
            self._loop.call_soon(self._dispatch_inbox)
        self._inbox.append(item)

    def _dispatch_inbox(self) -> None:
        inbox = self._inbox
        while inbox:
            item = inbox[0]
            kind = item[0]
            if kind == "message":
                # "If ready state is not OPEN, then return."
                if self._state == WebSocket.OPEN:
                    data = item[1]
                    if not isinstance(data, str) and self._binary_type == "blob":
                        data = Blob._wrap(data)
                    self._fire(MessageEvent("message", data=data, origin=self._origin))
            elif kind == "closing":
                if self._state == WebSocket.OPEN:
                    self._state = WebSocket.CLOSING
            elif not self._ended:
                _, code, reason, was_clean, failed = item
                if was_clean:
                    self._sent.clear()
                    self._live = 0
                self._state = WebSocket.CLOSED
                self._ended = True
                self._finish()
                if failed:
                    self._fire(Event("error"))
                self._fire(CloseEvent("close", wasClean=was_clean, code=code, reason=reason))
            inbox.popleft()

    def _sync_closing(self) -> None:
        # The io layer may not say when the closing handshake started; ask it, once
        # the messages received before are dispatched.
        proto = self._proto
        if (
            self._state == WebSocket.OPEN
            and not self._inbox
            and proto is not None
            and proto.state is not State.OPEN
        ):
            self._state = WebSocket.CLOSING

    def __repr__(self) -> str:
        names = ("CONNECTING", "OPEN", "CLOSING", "CLOSED")
        return f"<WebSocket {self._url} {names[self._state]}>"
