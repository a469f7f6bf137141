"""Pure-Python masking (RFC 6455 §5.3), the reference twin of the C speedup."""

from __future__ import annotations

__all__ = ["apply_mask"]


def apply_mask(data: bytes | bytearray | memoryview, key: bytes, offset: int = 0) -> bytes:
    """XOR ``data`` with the 4-byte ``key``, starting at key position ``offset % 4``.

    ``offset`` lets a payload be unmasked in pieces as it arrives: pass the number of
    payload bytes already unmasked. Masking and unmasking are the same operation.
    """
    n = len(data)
    if n == 0:
        return b""
    offset &= 3
    if offset:
        key = key[offset:] + key[:offset]
    # One big-integer XOR runs in C and is linear in n: far faster than a byte loop.
    stream = key * ((n >> 2) + 1)
    if len(stream) != n:
        stream = stream[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")
