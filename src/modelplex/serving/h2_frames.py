"""HTTP/2 frames and the few HPACK and gRPC wire encodings the gRPC edge writes (RFC 9113, RFC
7541, gRPC's PROTOCOL-HTTP2). Pure: bytes in, bytes out. Header blocks are decoded by `hpack`;
the edge writes its own few header fields as literals that never touch the peer's dynamic table,
so they are encoded once, at import.
"""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEAD = 9  # bytes before each frame's payload

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x8, 0x9
# settings
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6

DEFAULT_WINDOW = 65_535  # every window's size until SETTINGS or WINDOW_UPDATE say otherwise
DEFAULT_MAX_FRAME = 16_384  # the largest payload a peer accepts until its SETTINGS say otherwise
MAX_WINDOW = 2**31 - 1
DEFAULT_TABLE_SIZE = 4096  # each side's HPACK dynamic table until SETTINGS say otherwise

_HEAD = struct.Struct(">HBBBI")  # length (24 bits, as 16 + 8), type, flags, stream id
_SETTING = struct.Struct(">HI")
_U32 = struct.Struct(">I")
_MESSAGE_PREFIX = struct.Struct(">BI")  # gRPC: compressed flag, message length


class H2Error(Exception):
    """A frame the connection cannot go on after: the peer gets GOAWAY with `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def frame(kind: int, flags: int, stream: int, payload: bytes | bytearray | memoryview = b"") -> bytes:
    n = len(payload)
    return _HEAD.pack(n >> 8, n & 0xFF, kind, flags, stream) + payload


def read_head(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int, int, int]:
    """The frame head at `pos`: (payload length, type, flags, stream id)."""
    hi, lo, kind, flags, stream = _HEAD.unpack_from(buf, pos)
    return (hi << 8) | lo, kind, flags, stream & 0x7FFF_FFFF


Frame = tuple[int, int, int, memoryview]  # type, flags, stream id, payload


def split_frames(data: bytes, pos: int) -> tuple[list[Frame], int]:
    """The whole frames in `data` from `pos`, and where the rest (a frame not yet whole) starts.
    A frame longer than DEFAULT_MAX_FRAME (neither side here allows more) is an H2Error."""
    view, frames, size = memoryview(data), [], len(data)
    while size - pos >= FRAME_HEAD:
        length, kind, flags, stream = read_head(data, pos)
        if length > DEFAULT_MAX_FRAME:
            raise H2Error(FRAME_SIZE_ERROR, f"frame of {length} bytes (at most {DEFAULT_MAX_FRAME})")
        end = pos + FRAME_HEAD + length
        if end > size:
            break
        frames.append((kind, flags, stream, view[pos + FRAME_HEAD:end]))
        pos = end
    return frames, pos


def settings(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in values.items()))


def read_settings(payload: memoryview) -> list[tuple[int, int]]:
    if len(payload) % 6:
        raise H2Error(FRAME_SIZE_ERROR, f"SETTINGS payload of {len(payload)} bytes is not a multiple of 6")
    return [_SETTING.unpack_from(payload, i) for i in range(0, len(payload), 6)]


def window_update(stream: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream, _U32.pack(increment))


def read_u32(payload: memoryview, kind: str) -> int:
    if len(payload) != 4:
        raise H2Error(FRAME_SIZE_ERROR, f"{kind} payload of {len(payload)} bytes (4 expected)")
    return int(_U32.unpack_from(payload)[0]) & 0x7FFF_FFFF


def goaway(last_stream: int, code: int, message: str = "") -> bytes:
    return frame(GOAWAY, 0, 0, _U32.pack(last_stream) + _U32.pack(code) + message.encode()[:256])


def rst_stream(stream: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream, _U32.pack(code))


def unpad(flags: int, payload: memoryview, kind: str) -> memoryview:
    """The payload of a DATA or HEADERS frame without its padding (and HEADERS' priority fields)."""
    start, end = 0, len(payload)
    if flags & PADDED:
        if not end or payload[0] >= end:
            raise H2Error(PROTOCOL_ERROR, f"{kind} frame padded beyond its length")
        start, end = 1, end - payload[0]
    if kind == "HEADERS" and flags & PRIORITY_FLAG:
        start += 5
        if start > end:
            raise H2Error(FRAME_SIZE_ERROR, "HEADERS frame too short for its priority fields")
    return payload[start:end]


# --------------------------------------------------------------------------- HPACK, writing only


def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """RFC 7541 5.1: `value` with an N-bit prefix, the byte's other bits from `first`."""
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes([first | value])
    out = bytearray([first | top])
    value -= top
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """A header field as a literal without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


TABLE_SIZE_ZERO = hpack_int(0, 5, 0x20)  # a dynamic table size update to 0 (RFC 7541 6.3)
STATUS_200 = b"\x88"  # :status 200, static table entry 8
GRPC_HEAD = STATUS_200 + literal(b"content-type", b"application/grpc")  # a call's response headers
GRPC_OK = literal(b"grpc-status", b"0")  # a call's trailers, when it succeeded


def grpc_status(code: int, message: str) -> bytes:
    """The header fields of a call's status (trailers, or a trailers-only answer after GRPC_HEAD)."""
    return literal(b"grpc-status", str(code).encode()) + literal(b"grpc-message", percent_encode(message))


def percent_encode(message: str) -> bytes:
    """grpc-message's encoding: UTF-8, every byte outside printable ASCII and '%' as %XX."""
    return b"".join(bytes([b]) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in message.encode())


# --------------------------------------------------------------------------- gRPC messages and timeouts

_TIMEOUT_UNIT_S = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def grpc_timeout_s(value: bytes) -> float:
    """grpc-timeout (at most 8 digits and a unit: 100m, 5S) in seconds; ValueError if malformed."""
    digits, unit = value[:-1], value[-1:]
    if not (1 <= len(digits) <= 8 and digits.isdigit() and unit in _TIMEOUT_UNIT_S):
        raise ValueError(f"grpc-timeout {value.decode('latin-1')!r} is not 1-8 digits and one of H M S m u n")
    return int(digits) * _TIMEOUT_UNIT_S[unit]


def grpc_message(payload: bytes) -> bytes:
    """A message framed as gRPC sends it: uncompressed flag, length, bytes."""
    return _MESSAGE_PREFIX.pack(0, len(payload)) + payload


def read_message_prefix(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    """(compressed flag, length) of the message framed at `pos`."""
    flag, length = _MESSAGE_PREFIX.unpack_from(buf, pos)
    return int(flag), int(length)
