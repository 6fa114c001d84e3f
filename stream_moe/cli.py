"""The `stream-moe` command: one subcommand per job (replay a stream, serve, forecast, list what is available).

Each subcommand lives in `stream_moe/commands/<name>.py` and exposes `register(parser)`, which adds its arguments to
its parser and sets `func` to the function that runs it and returns the exit status. Only the module of the command
given is imported (the others' import torch and river for nothing), so a mistake in the arguments is answered at once.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.util
import logging
import sys
import traceback

from stream_moe.allocator import keep_freed_memory
from stream_moe.commands.arguments import ArgumentParser, HelpFormatter, positive_int
from stream_moe.config import SettingsError
from stream_moe.errors import UsageError, one_line
from stream_moe.provenance import package_version

COMMANDS = {
    "replay": "replay a benchmark stream or a file through a model and report prequential metrics",
    "serve": "run the service: consume events, predict, learn from labels, publish predictions",
    "forecast": "forecast link loads through link failures and report RMSE, MAPE and recovery per failure",
    "streams": "list benchmark streams (and whether their data is here) and models",
}
INTERRUPTED = 130  # the shell's status for a process ended by Ctrl-C (128 + SIGINT)

EPILOG = """\
examples:
  stream-moe streams                                   list the benchmark streams and models
  stream-moe replay --stream sea_g --n 200000          DriftMoE-Data on SEA with gradual drifts, report and plot
  stream-moe replay --stream elec --model arf --size 10
  stream-moe serve                                     the service (embedded demo without a Kafka section)
  stream-moe forecast --scenario euro28-drastic --model cfc

Every subcommand has its own --help. Exit status: 0 done, 1 failed while running, 2 a mistake in the arguments or
the settings, 130 interrupted (Ctrl-C).
"""


def common_options() -> argparse.ArgumentParser:
    """Options taken before or after the subcommand's name (`stream-moe -v replay` or `stream-moe replay -v`)."""
    common = ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug messages, and show the traceback of an error")
    common.add_argument("--torch-threads", type=positive_int, default=argparse.SUPPRESS,
                        help="torch intra-op threads (default: 1; the router's matrices are small, more threads spin)")
    return common


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of the whole command; of the subcommands, only the one named in `argv` gets its arguments (all of
    them when `argv` is None)."""
    named = [a for a in (argv or []) if a in COMMANDS][:1] if argv is not None else list(COMMANDS)
    parser = ArgumentParser(
        prog="stream-moe",
        description="Online learning on drifting event streams: predict every event, learn when its label arrives.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
        parents=[common_options()],
    )
    parser.add_argument("--version", action="version", version=f"stream-moe {package_version()}")
    parser.set_defaults(verbose=False, torch_threads=1)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=ArgumentParser)
    common = common_options()
    for name, summary in COMMANDS.items():
        sub = subparsers.add_parser(name, help=summary, description=summary[:1].upper() + summary[1:] + ".",
                                    parents=[common], formatter_class=HelpFormatter)
        if name in named:
            importlib.import_module(f"stream_moe.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand. A mistake in the arguments or the settings exits 2 and a failure at run time 1, each with one
    line naming it (and, with --verbose, its traceback); Ctrl-C exits 130."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    args.argv = argv  # recorded in results files
    use_torch_threads(args.torch_threads)
    keep_freed_memory()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (UsageError, SettingsError) as err:
        return fail(args, 2, one_line(err))
    except KeyboardInterrupt:
        return fail(args, INTERRUPTED, "interrupted")
    except Exception as err:
        return fail(args, 1, one_line(err))


def fail(args, status: int, message: str) -> int:
    """Report the exception being handled: its line (and with --verbose its traceback); returns `status`."""
    if args.verbose:
        traceback.print_exc()
    print(f"stream-moe {args.command}: error: {message}", file=sys.stderr)
    return status


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls `then(module)` once the module `name` has been imported (by whoever imports it first)."""

    def __init__(self, name: str, then):
        self.name = name
        self.then = then

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                self.then(module)

            spec.loader.exec_module = exec_module
        return spec


def use_torch_threads(count: int) -> None:
    """torch's intra-op threads: set now if torch is loaded, else as soon as it is. The commands import torch only
    when they come to need it, so that a mistake found before is answered without the seconds it takes to load."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    else:
        sys.meta_path.insert(0, _AfterImport("torch", lambda torch: torch.set_num_threads(count)))


if __name__ == "__main__":
    sys.exit(main())
