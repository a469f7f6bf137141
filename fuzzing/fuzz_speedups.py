"""Fuzz the C accelerator against its pure-Python twins, under AddressSanitizer.

Every input picks one function of ``fullduplex._speedups`` (or its ``Payload``
type) and arbitrary arguments for it: bytes, keys of any length, offsets, cut
points, buffer alignments, frame headers, request heads, handshake keys. The C
result must equal the twin's bit for bit, or both must raise the same exception
type; anything else, or any memory error ASan sees, is a crash.

Run it through ``fuzzing/run.sh``, which builds an instrumented copy of the
extension and sets up the sanitizer; ``FULLDUPLEX_FUZZ_MODULE`` names that copy.
Extra arguments go to libFuzzer (``-max_total_time=60``, a corpus directory, ...).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import itertools
import os
import sys
from collections.abc import Callable
from typing import Any

import atheris

with atheris.instrument_imports(include=["fullduplex"]):
    from fullduplex.protocol import _accel_py
    from fullduplex.protocol.frames import encode_frame as py_encode_frame
    from fullduplex.protocol.mask import apply_mask as py_apply_mask


def load_extension() -> Any:
    """The instrumented build named by FULLDUPLEX_FUZZ_MODULE, else the installed one."""
    path = os.environ.get("FULLDUPLEX_FUZZ_MODULE")
    if not path:
        from fullduplex import _speedups

        return _speedups
    spec = importlib.util.spec_from_file_location("fullduplex._speedups", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


C = load_extension()


def outcome(func: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """("ok", result) or ("error", exception type name)."""
    try:
        return "ok", func(*args, **kwargs)
    except (ValueError, TypeError, BufferError, OverflowError) as exc:
        return "error", type(exc).__name__


def view_at(data: bytes, align: int) -> memoryview:
    """``data`` as a view ``align`` bytes into its buffer, so every alignment is seen."""
    return memoryview(bytes(align) + data)[align:]


def grow(fdp: atheris.FuzzedDataProvider, data: bytes) -> bytes:
    """Sometimes repeat ``data`` so large inputs are covered without large test cases."""
    times = fdp.ConsumeIntInRange(1, 4)
    if times == 4 and data:
        times = fdp.ConsumeIntInRange(2, 70_000 // len(data) + 2)
    return data * times


def fuzz_apply_mask(fdp: atheris.FuzzedDataProvider) -> None:
    key = fdp.ConsumeBytes(fdp.ConsumeIntInRange(3, 5))
    offset = fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 10))
    align = fdp.ConsumeIntInRange(0, 7)
    data = grow(fdp, fdp.ConsumeBytes(fdp.remaining_bytes()))
    got = outcome(C.apply_mask, view_at(data, align), key, offset)
    if len(key) != 4:
        assert got == ("error", "ValueError"), got
        return
    assert got == ("ok", py_apply_mask(data, key, offset))


def fuzz_mask_into(fdp: atheris.FuzzedDataProvider) -> None:
    key = fdp.ConsumeBytes(fdp.ConsumeIntInRange(3, 5))
    offset = fdp.ConsumeInt(4)
    data = grow(fdp, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096)))
    n = len(data)
    start = fdp.ConsumeIntInRange(-2, n + 2)
    end = fdp.ConsumeIntInRange(-2, n + 2)
    a, b = bytearray(data), bytearray(data)
    got = outcome(C.mask_into, a, start, end, key, offset)
    want = outcome(_accel_py.mask_into, b, start, end, key, offset)
    assert got == want, (got, want)
    assert a == b


def fuzz_utf8_check(fdp: atheris.FuzzedDataProvider) -> None:
    state = fdp.ConsumeIntInRange(-1, 8)
    cuts = sorted(fdp.ConsumeIntInRange(0, 64) for _ in range(fdp.ConsumeIntInRange(0, 4)))
    align = fdp.ConsumeIntInRange(0, 7)
    data = grow(fdp, fdp.ConsumeBytes(fdp.remaining_bytes()))
    view = view_at(data, align)
    bounds = [0, *(min(c, len(data)) for c in cuts), len(data)]
    c_state = py_state = state
    for lo, hi in itertools.pairwise(bounds):
        got = outcome(C.utf8_check, view[lo:hi], c_state)
        want = outcome(_accel_py.utf8_check, data[lo:hi], py_state)
        assert got == want, (got, want, lo, hi)
        if got[0] == "error" or got[1] < 0:
            return
        c_state = py_state = got[1]
    if state == 0:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            assert c_state != 0
        else:
            assert c_state == 0


def fuzz_encode_frame(fdp: atheris.FuzzedDataProvider) -> None:
    opcode = fdp.ConsumeIntInRange(0, 15)
    fin = fdp.ConsumeBool()
    rsv1 = fdp.ConsumeBool()
    key = fdp.ConsumeBytes(4) if fdp.ConsumeBool() else None
    align = fdp.ConsumeIntInRange(0, 7)
    payload = grow(fdp, fdp.ConsumeBytes(fdp.remaining_bytes()))
    got = outcome(C.encode_frame, opcode, view_at(payload, align), fin=fin, rsv1=rsv1, mask_key=key)
    if key is not None and len(key) != 4:
        assert got == ("error", "ValueError"), got
        return
    want = py_encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask_key=key)
    assert got == ("ok", want)


def frames_from(fdp: atheris.FuzzedDataProvider, is_client: bool) -> bytes:
    """Mostly well-formed frames as the peer of ``is_client`` sends them."""
    out = []
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        b0 = fdp.PickValueInList([0x81, 0x82, 0x81, 0x82, 0x01, 0x80, 0x89, 0xC1, 0x83])
        payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300))
        if fdp.ConsumeIntInRange(0, 7) == 0:
            payload = payload * 300  # over 64 KiB now and then: the 64-bit length form
        masked = not is_client if fdp.ConsumeIntInRange(0, 15) else is_client
        key = fdp.ConsumeBytes(4).ljust(4, b"\0") if masked else None
        form = fdp.ConsumeIntInRange(0, 3)  # 0: minimal, else 7/16/64-bit (may lie)
        n = len(payload)
        mbit = 0x80 if masked else 0
        if form == 1 or (form == 0 and n < 126):
            head = bytes((b0, mbit | (n & 0x7F)))
        elif form == 2 or (form == 0 and n < 0x10000):
            head = bytes((b0, mbit | 126)) + (n & 0xFFFF).to_bytes(2, "big")
        else:
            head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
        out.append(head + (key + py_apply_mask(payload, key) if key else payload))
    return b"".join(out)


def fuzz_scan(fdp: atheris.FuzzedDataProvider) -> None:
    is_client = fdp.ConsumeBool()
    max_size: int | None = None
    if fdp.ConsumeBool():
        max_size = fdp.ConsumeIntInRange(-1, 70_000) if fdp.ConsumeBool() else fdp.ConsumeInt(9)
    pos = fdp.ConsumeIntInRange(-1, 8)
    trim = fdp.ConsumeIntInRange(-1, 8)
    data = bytes(max(pos, 0)) + frames_from(fdp, is_client) if fdp.ConsumeBool() else b""
    data += fdp.ConsumeBytes(fdp.remaining_bytes())
    end = len(data) - trim
    a, b = bytearray(data), bytearray(data)
    got = outcome(C.scan, a, pos, end, is_client, max_size)
    want = outcome(_accel_py.scan, b, pos, end, is_client, max_size)
    assert got == want, (got, want)
    if got[0] == "ok":
        new_pos, messages = got[1]
        assert pos <= new_pos <= end
        assert a[new_pos:] == data[new_pos:]
        for c_msg, py_msg in zip(messages, want[1][1], strict=True):
            assert type(c_msg) is type(py_msg)


def fuzz_payload(fdp: atheris.FuzzedDataProvider) -> None:
    """A large frame's payload from arbitrary pieces, starts and take() calls."""
    key = fdp.ConsumeBytes(fdp.ConsumeIntInRange(3, 5)) if fdp.ConsumeBool() else None
    size = fdp.ConsumeIntInRange(-1, 300_000)
    steps = [
        (
            fdp.ConsumeIntInRange(0, 3),
            fdp.ConsumeIntInRange(-1, 200_000),
            fdp.ConsumeIntInRange(0, 7),
        )
        for _ in range(fdp.ConsumeIntInRange(0, 8))
    ]
    stream = grow(fdp, fdp.ConsumeBytes(fdp.remaining_bytes()))
    made = [outcome(cls, size, key) for cls in (C.Payload, _accel_py.Payload)]
    if made[0][0] == "error" or made[1][0] == "error":
        assert made[0] == made[1], made
        return
    c_payload, py_payload = made[0][1], made[1][1]
    pos = 0
    for action, start, align in steps:
        if action == 0:  # take, complete or not
            got, want = outcome(c_payload.take), outcome(py_payload.take)
        else:  # feed a piece of the stream from some start (maybe out of range)
            piece = stream[pos : pos + fdp.ConsumeIntInRange(0, 70_000) if action == 1 else None]
            got = outcome(c_payload.feed, view_at(piece, align), start % (len(piece) + 2) - 1)
            want = outcome(py_payload.feed, piece, start % (len(piece) + 2) - 1)
            if got[0] == "ok":
                pos += got[1]
        assert got == want, (got, want)
        assert c_payload.remaining == py_payload.remaining


# Pieces of request heads: mostly what the grammar wants, some of what it refuses.
METHODS = [b"GET", b"GET", b"POST", b"G(T", b""]
REQUEST_TARGETS = [b"/", b"/chat?room=1", b"*", b"/a b", b""]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.10"]
NAMES = [
    b"Host",
    b"host",
    b"HOST",
    b"Upgrade",
    b"Connection",
    b"Sec-WebSocket-Key",
    b"sec-websocket-version",
    b"Sec-Websocket-Extensions",
    b"X-Real-IP",
    b"X-A",
    b"x_b!~",
    b"",
    b" Host",
    b"Ho st",
]
SEPARATORS = [b":", b": ", b":\t", b": \t", b" :", b""]
EOLS = [b"\r\n"] * 12 + [b"\n", b"\r", b"\r\n ", b"\r\n\t"]


def request_head(fdp: atheris.FuzzedDataProvider) -> bytes:
    """A request head built from pieces and fuzzer bytes; it parses more often than not."""
    line = (
        fdp.PickValueInList(METHODS)
        + b" "
        + (fdp.PickValueInList(REQUEST_TARGETS) if fdp.ConsumeBool() else fdp.ConsumeBytes(8))
        + b" "
        + fdp.PickValueInList(VERSIONS)
    )
    head = [line + b"\r\n"]
    for _ in range(fdp.ConsumeIntInRange(0, 10)):
        name = fdp.PickValueInList(NAMES) if fdp.ConsumeBool() else fdp.ConsumeBytes(12)
        value = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40))
        if fdp.ConsumeBool():
            # Into the bytes a value may hold (HTAB, SP, VCHAR, obs-text), most of them.
            value = bytes(b if b >= 0x20 and b != 0x7F else 0x61 + b % 26 for b in value)
        head.append(name + fdp.PickValueInList(SEPARATORS) + value + fdp.PickValueInList(EOLS))
    data = b"".join(head) + (b"\r\n" if fdp.ConsumeIntInRange(0, 7) else b"")
    if fdp.ConsumeIntInRange(0, 3) == 0:
        pos = fdp.ConsumeIntInRange(0, len(data))
        data = data[:pos] + fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 3)) + data[pos:]
    return data


def head_limit(fdp: atheris.FuzzedDataProvider) -> int:
    choice = fdp.ConsumeIntInRange(0, 3)
    if choice == 0:
        return 8192
    if choice == 1:
        return fdp.ConsumeIntInRange(-2, 600)
    return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 10))  # any size, either sign


def fuzz_parse_request_head(fdp: atheris.FuzzedDataProvider) -> None:
    max_headers = fdp.ConsumeIntInRange(-1, 12) if fdp.ConsumeBool() else head_limit(fdp)
    limits = (head_limit(fdp), head_limit(fdp), max_headers)
    kind = fdp.ConsumeIntInRange(0, 15)
    data: Any
    if kind == 0:
        data = bytearray(fdp.ConsumeBytes(fdp.remaining_bytes()))  # not bytes: TypeError
    elif kind < 6:
        data = fdp.ConsumeBytes(fdp.remaining_bytes())
    else:
        data = request_head(fdp)
        data += grow(fdp, fdp.ConsumeBytes(fdp.remaining_bytes()))[:100_000]
    got = outcome(C.parse_request_head, data, *limits)
    want = outcome(_accel_py.parse_request_head, data, *limits)
    assert got == want, (got, want)
    if got[0] == "ok" and got[1] is not None:
        method, target, items, index, rest = got[1]
        assert type(method) is str and type(target) is str and type(rest) is int
        assert all(type(name) is str and type(value) is str for name, value in items)
        assert all(type(key) is str for key in index)
        assert list(index) == list(want[1][3])


B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def fuzz_websocket_accept(fdp: atheris.FuzzedDataProvider) -> None:
    kind = fdp.ConsumeIntInRange(0, 4)
    key: Any
    if kind == 0:
        key = base64.b64encode(fdp.ConsumeBytes(fdp.ConsumeIntInRange(14, 18))).decode()
    elif kind == 1:
        key = bytes(B64[b % 64] for b in fdp.ConsumeBytes(22)).decode() + "=="
    elif kind == 2:
        key = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 30))  # surrogates too
    elif kind == 3:
        key = fdp.ConsumeBytes(24)  # not a str: None
    else:
        key = fdp.ConsumeString(24)
    if isinstance(key, str) and fdp.ConsumeBool():
        pos = fdp.ConsumeIntInRange(0, len(key))
        key = (
            key[:pos]
            + fdp.PickValueInList(["=", "A", "+", "/", "-", "_", "\n", "\xe9"])
            + key[pos:]
        )
    got = outcome(C.websocket_accept, key)
    want = outcome(_accel_py.websocket_accept, key)
    assert got == want, (key, got, want)
    if isinstance(key, str):
        try:
            valid = key.isascii() and len(base64.b64decode(key, validate=True)) == 16
        except binascii.Error:
            valid = False
        if valid:
            oracle = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            assert got == ("ok", oracle), (key, got)
        else:
            assert got == ("ok", None), (key, got)


TARGETS = [
    fuzz_apply_mask,
    fuzz_mask_into,
    fuzz_utf8_check,
    fuzz_encode_frame,
    fuzz_scan,
    fuzz_payload,
    fuzz_parse_request_head,
    fuzz_websocket_accept,
]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    TARGETS[fdp.ConsumeIntInRange(0, len(TARGETS) - 1)](fdp)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
