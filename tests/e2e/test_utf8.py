"""UTF-8 in text messages. RFC 6455 §5.6, §8.1; RFC 3629 for what UTF-8 is.

§8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte
stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
Connection_." §7.4.1: 1007 is the code for data inconsistent with the message type.
The fail-fast cases below also require the failure as soon as a byte arrives that no
continuation could make valid, without waiting for the rest of the frame or message.
"""

from __future__ import annotations

import pytest

from .rawclient import CONT, TEXT, encode_frame, let_peer_run, raw_client
from .support import assert_echo, echo_server, first_impossible_byte

VALID = {
    # RFC 3629 §7 examples
    "rfc3629-a-not-identical-alpha": b"\x41\xe2\x89\xa2\xce\x91\x2e",
    "rfc3629-korean": b"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
    "rfc3629-japanese": b"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
    "rfc3629-bom-and-u233b4": b"\xef\xbb\xbf\xf0\xa3\x8e\xb4",
    "kosme": "κόσμε".encode(),
    "latin": "Hello-µ@ßöäüàá-UTF-8!!".encode(),
    "empty": b"",
    "nul": b"\x00",
    "u+007f": b"\x7f",
    "u+0080": b"\xc2\x80",
    "u+07ff": b"\xdf\xbf",
    "u+0800": b"\xe0\xa0\x80",
    "u+d7ff": b"\xed\x9f\xbf",
    "u+e000": b"\xee\x80\x80",
    "u+fffd": b"\xef\xbf\xbd",
    "u+fffe": b"\xef\xbf\xbe",
    "u+ffff": b"\xef\xbf\xbf",
    "u+10000": b"\xf0\x90\x80\x80",
    "u+1f600": b"\xf0\x9f\x98\x80",
    "u+10ffff": b"\xf4\x8f\xbf\xbf",
    "four-byte-run": "𝄞𝄢😀🂡".encode() * 20,
}

INVALID = {
    "overlong-nul-c0": b"\xc0\x80",
    "overlong-c1": b"\xc1\xbf",
    "overlong-slash-3": b"\xe0\x80\xaf",
    "overlong-slash-4": b"\xf0\x80\x80\xaf",
    "overlong-u+07ff-3": b"\xe0\x9f\xbf",
    "overlong-u+ffff-4": b"\xf0\x8f\xbf\xbf",
    "five-byte": b"\xf8\x88\x80\x80\x80",
    "six-byte": b"\xfc\x84\x80\x80\x80\x80",
    "surrogate-d800": b"\xed\xa0\x80",
    "surrogate-dbff": b"\xed\xaf\xbf",
    "surrogate-dc00": b"\xed\xb0\x80",
    "surrogate-dfff": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "f7-bfbfbf": b"\xf7\xbf\xbf\xbf",
    "lone-80": b"\x80",
    "lone-bf": b"\xbf",
    "continuations": b"\x80\xbf\x80\xbf",
    "ascii-then-continuation": b"abc\x80def",
    "byte-c0": b"\xc0",
    "byte-c1": b"\xc1",
    "byte-f5": b"\xf5",
    "byte-f8": b"\xf8",
    "byte-fe": b"\xfe",
    "byte-ff": b"\xff",
    "truncated-2-at-end": b"abc\xc3",
    "truncated-3-at-end": b"abc\xe2\x82",
    "truncated-4-at-end": b"abc\xf0\x9f\x98",
    "truncated-then-ascii": b"\xe2\x82abc",
    "kosme-surrogate-edited": b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    "kosme-above-max-edited": b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",
}

# Messages with an impossible byte followed by more data: the fail-fast cases.
FAIL_FAST = {
    name: data
    for name, data in INVALID.items()
    if name
    in {
        "kosme-surrogate-edited",
        "kosme-above-max-edited",
        "overlong-slash-4",
        "ascii-then-continuation",
        "truncated-then-ascii",
        "surrogate-pair",
    }
}


def test_the_invalid_samples_are_invalid_and_the_valid_ones_valid() -> None:
    for name, data in VALID.items():
        data.decode("utf-8")  # a mistake in the table would make the tests meaningless
        assert first_impossible_byte(data) is None, name
    for data in INVALID.values():
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
    for name, data in FAIL_FAST.items():
        bad = first_impossible_byte(data)
        assert bad is not None and bad < len(data) - 1, name


@pytest.mark.parametrize("data", list(VALID.values()), ids=list(VALID))
async def test_valid_text_is_echoed(data: bytes) -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await assert_echo(peer, TEXT, data)


@pytest.mark.parametrize("data", list(VALID.values()), ids=list(VALID))
async def test_valid_text_in_one_byte_fragments_is_echoed(data: bytes) -> None:
    frames = [
        (TEXT if i == 0 else CONT, data[i : i + 1], i >= len(data) - 1) for i in range(len(data))
    ] or [(TEXT, b"", True)]
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frames(frames)
        assert await peer.recv_message() == (TEXT, data)


@pytest.mark.parametrize("data", list(INVALID.values()), ids=list(INVALID))
async def test_invalid_text_fails_1007(data: bytes) -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await assert_echo(peer, TEXT, b"valid first")
        await peer.send_frame(TEXT, data)
        assert await peer.expect_close(1007) == []


@pytest.mark.parametrize("data", list(INVALID.values()), ids=list(INVALID))
async def test_invalid_text_across_two_fragments_fails_1007(data: bytes) -> None:
    half = len(data) // 2
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frames([(TEXT, data[:half], False), (CONT, data[half:], True)])
        assert await peer.expect_close(1007) == []


@pytest.mark.parametrize("data", list(FAIL_FAST.values()), ids=list(FAIL_FAST))
async def test_fail_fast_across_fragments(data: bytes) -> None:
    """The message never ends: fragments up to the impossible byte, then nothing.

    Every split of that prefix into two complete, non-final fragments is tried.
    """
    bad = first_impossible_byte(data)
    assert bad is not None
    async with echo_server() as server:
        for cut in range(bad + 2):
            async with raw_client(server.port) as peer:
                await peer.send_frame(TEXT, data[:cut], fin=False)
                await let_peer_run()
                await peer.send_frame(CONT, data[cut : bad + 1], fin=False)
                try:
                    assert await peer.expect_close(1007) == []
                except AssertionError as exc:
                    raise AssertionError(
                        f"fragments {data[:cut]!r} + {data[cut : bad + 1]!r} of an unfinished"
                        f" message: {exc}"
                    ) from exc


@pytest.mark.parametrize("data", list(FAIL_FAST.values()), ids=list(FAIL_FAST))
async def test_fail_fast_within_one_frame(data: bytes) -> None:
    """One final text frame announcing the whole message; the payload stops right
    after the impossible byte, sent as two separate pieces split at every point."""
    bad = first_impossible_byte(data)
    assert bad is not None
    wire = encode_frame(TEXT, data)
    header = len(wire) - len(data)
    async with echo_server() as server:
        for cut in range(bad + 1):
            async with raw_client(server.port) as peer:
                await peer.send(wire[: header + cut])
                await let_peer_run()
                await peer.send(wire[header + cut : header + bad + 1])
                try:
                    # Mid-frame: no close frame can be sent back; the server must still
                    # send its close and then drop TCP (§7.1.7).
                    assert await peer.expect_close(1007, reply=False) == []
                except AssertionError as exc:
                    raise AssertionError(
                        f"payload {data[:cut]!r} then {data[cut : bad + 1]!r} of a"
                        f" {len(data)}-byte frame: {exc}"
                    ) from exc


async def test_fail_fast_within_a_frame_with_a_random_mask() -> None:
    data = INVALID["kosme-surrogate-edited"]
    bad = first_impossible_byte(data)
    assert bad is not None
    wire = encode_frame(TEXT, data + b"x" * 1000)
    header = len(wire) - len(data) - 1000
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send(wire[: header + bad + 1], chop=1)
        assert await peer.expect_close(1007, reply=False) == []


async def test_invalid_text_after_valid_fragments_of_a_big_message() -> None:
    async with echo_server() as server, raw_client(server.port) as peer:
        await peer.send_frame(TEXT, "a" * 70000, fin=False)
        await peer.send_frame(CONT, "κόσμε" * 1000, fin=False)
        await peer.send_frame(CONT, b"\xed\xa0\x80", fin=False)
        assert await peer.expect_close(1007) == []
