"""Generated KServe v2 / Triton gRPC stubs (package ``inference``); regenerate with scripts/gen_proto.sh.

Do not edit the ``*_pb2*`` modules by hand. They come from the verbatim protos in ``proto/``.
"""
