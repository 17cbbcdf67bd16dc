"""The gRPC edge's wire encodings, table-driven (serving.h2_frames)."""

from __future__ import annotations

import hpack
import pytest

from modelplex.serving import h2_frames as h2


@pytest.mark.parametrize("value, prefix, expected", [
    (10, 5, b"\x0a"),  # RFC 7541 C.1.1
    (1337, 5, b"\x1f\x9a\x0a"),  # RFC 7541 C.1.2
    (42, 8, b"\x2a"),  # RFC 7541 C.1.3
    (127, 7, b"\x7f\x00"),
    (0, 7, b"\x00"),
])
def test_hpack_integers(value: int, prefix: int, expected: bytes) -> None:
    assert h2.hpack_int(value, prefix) == expected


@pytest.mark.parametrize("block, fields", [
    (h2.GRPC_HEAD, [(b":status", b"200"), (b"content-type", b"application/grpc")]),
    (h2.GRPC_OK, [(b"grpc-status", b"0")]),
    (h2.grpc_status(3, "bad tensor: 100%\n"), [(b"grpc-status", b"3"), (b"grpc-message", b"bad tensor: 100%25%0A")]),
    (h2.literal(b"x-long", b"v" * 300), [(b"x-long", b"v" * 300)]),
])
def test_header_blocks_decode_as_written(block: bytes, fields: list[tuple[bytes, bytes]]) -> None:
    decoder = hpack.Decoder()
    assert [(bytes(k), bytes(v)) for k, v in decoder.decode(block, raw=True)] == fields
    assert not decoder.header_table.dynamic_entries  # literals never touch the peer's table


@pytest.mark.parametrize("message, expected", [
    ("plain", b"plain"),
    ("50%", b"50%25"),
    ("über", b"%C3%BCber"),
    ("a\tb", b"a%09b"),
])
def test_grpc_message_percent_encoding(message: str, expected: bytes) -> None:
    assert h2.percent_encode(message) == expected


@pytest.mark.parametrize("value, seconds", [
    (b"100m", 0.1), (b"5S", 5.0), (b"2M", 120.0), (b"1H", 3600.0), (b"250u", 250e-6), (b"99999999n", 0.099999999),
])
def test_grpc_timeouts(value: bytes, seconds: float) -> None:
    assert h2.grpc_timeout_s(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [b"", b"S", b"10", b"10x", b"123456789S", b"-1S", b"1.5S"])
def test_malformed_grpc_timeouts_are_refused(value: bytes) -> None:
    with pytest.raises(ValueError, match="grpc-timeout"):
        h2.grpc_timeout_s(value)


def test_frame_head_round_trip() -> None:
    framed = h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 7, b"x" * 70_000)
    assert h2.read_head(framed, 0) == (70_000, h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 7)
    assert h2.read_u32(memoryview(h2.window_update(3, 1 << 20))[h2.FRAME_HEAD:], "WINDOW_UPDATE") == 1 << 20


@pytest.mark.parametrize("flags, payload, kind, expected, error", [
    (0, b"abc", "DATA", b"abc", None),
    (h2.PADDED, b"\x02abcxx", "DATA", b"abc", None),
    (h2.PADDED, b"\x09abc", "DATA", None, "padded beyond"),
    (h2.PADDED, b"", "DATA", None, "padded beyond"),
    (h2.PRIORITY_FLAG, b"\0\0\0\1\x10hdr", "HEADERS", b"hdr", None),
    (h2.PRIORITY_FLAG, b"\0\0", "HEADERS", None, "priority"),
])
def test_unpad(flags: int, payload: bytes, kind: str, expected: bytes | None, error: str | None) -> None:
    if error is not None:
        with pytest.raises(h2.H2Error, match=error):
            h2.unpad(flags, memoryview(payload), kind)
    else:
        assert bytes(h2.unpad(flags, memoryview(payload), kind)) == expected


def test_settings_of_a_bad_length_are_a_frame_size_error() -> None:
    with pytest.raises(h2.H2Error) as caught:
        h2.read_settings(memoryview(b"\0" * 7))
    assert caught.value.code == h2.FRAME_SIZE_ERROR
    assert h2.read_settings(memoryview(h2.settings({h2.SETTINGS_INITIAL_WINDOW_SIZE: 5})[h2.FRAME_HEAD:])) == [(4, 5)]
