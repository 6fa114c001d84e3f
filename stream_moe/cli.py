"""The `stream-moe` command: one subcommand per job (replay a stream, serve, forecast, list what is available).

Each subcommand lives in `stream_moe/commands/<name>.py` and exposes `register(subparsers)`, which adds its parser
and sets `func` to the function that runs it and returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

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
    """Run a subcommand. A usage mistake exits 2 (argparse); a failure at run time exits 1 with one line naming it
    (and, with --verbose, its traceback)."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    keep_freed_memory()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except Exception as err:
        if args.verbose:
            traceback.print_exc()
        print(f"stream-moe {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1


def one_line(err: BaseException) -> str:
    """An exception's message on one line (its type when the message is empty).

    >>> one_line(FileNotFoundError(2, "No such file or directory"))
    'FileNotFoundError: [Errno 2] No such file or directory'
    """
    text = " ".join(str(err).split())
    return text if text and not isinstance(err, (OSError, KeyError)) else f"{type(err).__name__}: {text}".rstrip(": ")


if __name__ == "__main__":
    sys.exit(main())
