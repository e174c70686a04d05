"""Generate the Python gRPC code for every ``protos/*.proto``.

Run from anywhere: ``python scripts/gen_protos.py [--out DIR]``. The proto folder path equals the
Python import path (``protos/edge_agent.proto`` -> ``from protos import edge_agent_pb2``), so the
generated code needs no import rewriting. ``--out`` writes the files under another root, which the
drift test uses to compare a fresh generation with the committed files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parent.parent


def proto_files(root: Path = REPO_ROOT) -> list[Path]:
    """The ``.proto`` files of the project, relative to the repository root."""
    return sorted(p.relative_to(root) for p in (root / "protos").glob("*.proto"))


def generate(out_root: Path) -> None:
    """Run protoc for all protos, writing ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py``.

    Args:
        out_root: folder that receives ``protos/...`` generated files.

    Raises:
        RuntimeError: protoc reported an error.
    """
    (out_root / "protos").mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{REPO_ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(p) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="root to write protos/ under")
    generate(parser.parse_args().out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
