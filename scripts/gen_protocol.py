"""Regenerate python/avatarkit/protocol/driveningress_v2_pb2.py(i) from the .proto.

Needs the `dev` dependency group: grpcio-tools pinned to 1.75.1, whose protoc 31.1 writes code that
every protobuf runtime from 6.31.1 to 7.x accepts (a newer protoc would raise the floor), and
mypy-protobuf. The generated files are committed so that users need only the protobuf runtime.
"""

from __future__ import annotations

import pathlib
import sys

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "python" / "avatarkit" / "protocol"


def main() -> int:
    """Run protoc with the Python and mypy-protobuf plugins."""
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={PROTO_DIR}",
        f"--mypy_out={PROTO_DIR}",
        str(PROTO_DIR / "driveningress_v2.proto"),
    ]
    return protoc.main(args)


if __name__ == "__main__":
    sys.exit(main())
