"""Types of the optional C accelerator; see protocol/_accel.py for the chooser."""

from typing_extensions import Buffer

def apply_mask(data: Buffer, key: Buffer, offset: int = 0) -> bytes: ...
def mask_into(buffer: Buffer, start: int, end: int, key: Buffer, offset: int = 0) -> None: ...
def utf8_check(data: Buffer, state: int = 0) -> int: ...
def encode_frame(
    opcode: int,
    payload: Buffer = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask_key: Buffer | None = None,
) -> bytes: ...
def scan(
    buffer: Buffer, pos: int, end: int, is_client: bool, max_size: int | None
) -> tuple[int, list[str | bytes]]: ...
