"""STOMP errors, a branch of the package's one exception tree.

::

    FullDuplexError                  (fullduplex.errors)
    └── StompError                   anything STOMP refuses; becomes an ERROR frame
        ├── FrameError               bytes that are not a well-formed frame
        │   └── FrameTooLarge        a configured size or count limit was exceeded
        ├── StompProtocolError       a well-formed frame the protocol does not allow here
        └── DestinationError         the broker engine refuses an operation

Every :class:`StompError` carries what the ERROR frame it leads to needs: a short
``message`` (the frame's ``message`` header), a longer ``description`` (the frame's
body) and optional extra ``headers`` (e.g. ``version`` when negotiation fails), plus a
stable machine-readable ``code``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from ..errors import FullDuplexError

__all__ = [
    "DestinationError",
    "FrameError",
    "FrameTooLarge",
    "StompError",
    "StompProtocolError",
]


class StompError(FullDuplexError):
    """Base class of the STOMP errors; each one maps to an ERROR frame.

    Args:
        message: a short summary, sent as the ERROR frame's ``message`` header.
        description: a longer explanation, sent as the ERROR frame's body.
        headers: extra headers for the ERROR frame, such as ``("version", "1.2")``.
        code: a stable machine-readable identifier; defaults to the class's.
    """

    default_code: ClassVar[str] = "STOMP_ERROR"

    def __init__(
        self,
        message: str,
        description: str = "",
        *,
        headers: Iterable[tuple[str, str]] = (),
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.description = description or message
        self.headers = list(headers)
        self.code = code or self.default_code


class FrameError(StompError):
    """The peer sent bytes that do not form a valid STOMP frame."""

    default_code = "STOMP_MALFORMED_FRAME"


class FrameTooLarge(FrameError):
    """A frame exceeded a configured limit (size, header count, header length, body)."""

    default_code = "STOMP_FRAME_TOO_LARGE"


class StompProtocolError(StompError):
    """A well-formed frame that the protocol forbids (missing header, wrong state...)."""

    default_code = "STOMP_PROTOCOL_ERROR"


class DestinationError(StompError):
    """The broker engine refuses an operation (unknown destination, ack id, transaction...)."""

    default_code = "STOMP_DESTINATION_ERROR"
