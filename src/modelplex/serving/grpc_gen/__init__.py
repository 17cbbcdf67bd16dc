"""Generated KServe v2 / Triton gRPC stubs (package ``inference``); regenerate with scripts/gen_proto.sh.

Do not edit the ``*_pb2*`` modules by hand. They come from the verbatim protos in ``proto/``.

The stubs are protobuf 5.26.1 gencode, so they load on every protobuf runtime from 5.26.1 on (5.x,
6.x, 7.x), beside clients such as tritonclient and the KServe SDK that need protobuf < 7. Importing
this package checks the installed runtime first and refuses an unsupported one with a readable
message instead of a traceback from inside the generated code.
"""

from __future__ import annotations

import re

from google.protobuf import __version__ as _PROTOBUF_VERSION

GENCODE_VERSION = (5, 26, 1)
SUPPORTED_PROTOBUF = ">=5.26.1,<8"
_MAX_MAJOR = 7


def protobuf_version_problem(version: str) -> str | None:
    """Why ``version`` of the protobuf runtime cannot load these stubs, or None when it can."""
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if found is None:
        return f"unrecognised protobuf version {version!r}"
    parts = tuple(int(p) for p in found.groups())
    if parts < GENCODE_VERSION or parts[0] > _MAX_MAJOR:
        return (
            f"modelplex's gRPC stubs support protobuf {SUPPORTED_PROTOBUF} (5.x, 6.x, 7.x); "
            f"protobuf {version} is installed. Install a supported one, e.g. "
            f"pip install 'protobuf{SUPPORTED_PROTOBUF}'"
        )
    return None


_problem = protobuf_version_problem(_PROTOBUF_VERSION)
if _problem is not None:
    raise ImportError(_problem)
