"""The `stream-moe` command: one subcommand per job (replay a stream, serve, forecast, list what is available).

Each subcommand lives in `stream_moe/commands/<name>.py` and exposes `register(subparsers)`, which adds its parser
and sets `func` to the function that runs it and returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

import torch

from stream_moe.allocator import keep_freed_memory

COMMANDS = ("replay", "serve", "forecast", "streams")

EPILOG = """\
examples:
  stream-moe streams                                   list the benchmark streams and models
  stream-moe replay --stream sea_g --n 200000          DriftMoE-Data on SEA with gradual drifts, report and plot
  stream-moe replay --stream elec --model arf --size 10
  stream-moe serve                                     the service (embedded demo without a Kafka section)
  stream-moe forecast --scenario euro28-drastic --model cfc

Every subcommand has its own --help.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream-moe",
        description="Online learning on drifting event streams: predict every event, learn when its label arrives.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: the router's matrices are small, and more threads only spin)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"stream_moe.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    keep_freed_memory()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
