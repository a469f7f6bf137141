"""The one place that picks the C accelerator or its pure-Python twins.

Import the hot-path functions from here, never from ``fullduplex._speedups``
directly. Both implementations give the same results bit for bit
(``tests/protocol/test_speedups.py``); only the speed differs.

- ``FULLDUPLEX_NO_SPEEDUPS`` set (non-empty and not ``0``): always pure Python.
- ``FULLDUPLEX_REQUIRE_SPEEDUPS=1``: raise :class:`ImportError` at import if the C
  extension cannot be loaded, so a broken build cannot pass as pure Python (CI).
- otherwise: the C versions if the extension was built, else pure Python.

:data:`SPEEDUPS` says which one is in use.

Note for callers: ``frames.py`` must not import this module at import time (this
module imports ``frames`` for the twin of :func:`encode_frame`).
"""

from __future__ import annotations

import os

from ._accel_py import (
    Payload,
    mask_into,
    parse_request_head,
    scan,
    utf8_check,
    websocket_accept,
)
from .frames import encode_frame
from .mask import apply_mask

__all__ = [
    "SPEEDUPS",
    "Payload",
    "apply_mask",
    "encode_frame",
    "mask_into",
    "parse_request_head",
    "scan",
    "utf8_check",
    "websocket_accept",
]


def _flag(name: str) -> bool:
    value = os.environ.get(name, "")
    return value not in ("", "0")


SPEEDUPS = False

if _flag("FULLDUPLEX_NO_SPEEDUPS"):
    pass
else:
    try:
        from .._speedups import (
            Payload,
            apply_mask,
            encode_frame,
            mask_into,
            parse_request_head,
            scan,
            utf8_check,
            websocket_accept,
        )
    except ImportError as exc:
        if _flag("FULLDUPLEX_REQUIRE_SPEEDUPS"):
            raise ImportError(
                "FULLDUPLEX_REQUIRE_SPEEDUPS is set but the C extension "
                f"fullduplex._speedups could not be imported: {exc}"
            ) from exc
    else:
        SPEEDUPS = True
