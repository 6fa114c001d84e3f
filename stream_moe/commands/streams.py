"""`stream-moe streams`: the benchmark streams and models there are, and which data files are present."""

from __future__ import annotations

from connectors.benchmarks import REAL_STREAMS, StreamUnavailable, describe, find_file, stream_names
from stream_moe.config import load_settings
from stream_moe.models.registry import MODELS


def register(p) -> None:
    p.set_defaults(func=run)


def run(args) -> int:
    data_dirs = load_settings().data_dirs
    print("streams:")
    for name in stream_names():
        where = ""
        if name in REAL_STREAMS:
            try:
                where = f"  [{find_file(name, data_dirs)}]"
            except StreamUnavailable:
                where = "  [file not found: set STREAM_MOE_DATA]"
        print(f"  {name:10} {describe(name)}{where}")
    print("models:")
    for name, spec in MODELS.items():
        print(f"  {name:15} {spec.description}")
    return 0
