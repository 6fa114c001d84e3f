"""`stream-moe replay`: a benchmark stream or a data file through the event loop, with a prequential report."""

from __future__ import annotations

import argparse
import ast
import logging
import pathlib

from connectors.benchmarks import OpenedStream, StreamUnavailable, open_stream, stream_names
from connectors.files import open_file
from stream_moe.config import load_settings
from stream_moe.models.registry import MODELS, build_model
from stream_moe.predictor import Predictor
from stream_moe.replay import ReplayOptions, replay

log = logging.getLogger("stream_moe.replay")

EPILOG = """\
examples:
  stream-moe replay --stream sea_a --model driftmoe-data --n 1000000 --seed 1
  stream-moe replay --stream elec --model arf --size 10
  stream-moe replay --file my_stream.csv --target label --model driftmoe-task
  stream-moe replay --stream led_g --n 200000 --param prediction='"mixture"' --param top_k=4

Synthetic streams are 1,000,000 instances by default; a shorter --n compresses their drift schedule (drifts at n/4,
n/2, 3n/4). Results (results.json, history.csv, accuracy.png, dead_letters.jsonl) go to --out.
Settings can also come from --config FILE and STREAM_MOE_* variables (e.g. STREAM_MOE_DATA=/data/streams).
"""


def parse_param(text: str) -> tuple[str, object]:
    """name=value, the value read as a Python literal (numbers, strings in quotes, tuples), else kept as text."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "replay",
        help="replay a benchmark stream or a file through a model and report prequential metrics",
        description="Test-then-train replay: every event is predicted, then learned, in micro-batches, through the same "
        "loop as the daemon. Prints accuracy, kappa, kappa-M, kappa-T and throughput; writes results and a plot.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--stream", choices=stream_names(), default="sea_g", help="benchmark stream (default: sea_g)")
    what.add_argument("--file", type=pathlib.Path, help="an ARFF or CSV stream file (optionally .gz) instead")
    p.add_argument("--target", help="target column of --file (default: the last one)")
    p.add_argument("--model", choices=list(MODELS), help="model (default: driftmoe-data)")
    p.add_argument("--size", type=int, help="ensemble size (experts / trees / members) for models that have one")
    p.add_argument("--param", type=parse_param, action="append", default=[], metavar="NAME=VALUE",
                   help="model constructor parameter, repeatable")
    p.add_argument("--n", type=int, help="instances to replay (default: the whole stream; 1,000,000 for generators)")
    p.add_argument("--seed", type=int, help="seed of the stream and the model (default: 1)")
    p.add_argument("--device", help="router device: auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, help="events per micro-batch (default: 32)")
    p.add_argument("--window", type=int, help="sliding window of the windowed metrics (default: 1000)")
    p.add_argument("--data-dir", type=pathlib.Path, action="append", help="where data files are (repeatable)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/replay"), help="results directory")
    p.add_argument("--predictions", type=pathlib.Path, help="also write every prediction to this JSONL file")
    p.add_argument("--config", type=pathlib.Path, help="settings file (YAML or TOML)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def open_input(args, settings) -> OpenedStream:
    seed = args.seed if args.seed is not None else settings.model.seed
    if args.file is not None:
        source, decoder = open_file(args.file, target=args.target, limit=args.n)
        return OpenedStream(args.file.name, source, decoder, str(args.file), [], length=args.n)
    data_dirs = args.data_dir or settings.data_dirs
    return open_stream(args.stream, n=args.n, seed=seed, data_dirs=data_dirs)


def run(args) -> int:
    settings = load_settings(args.config)
    try:
        stream = open_input(args, settings)
    except StreamUnavailable as err:
        log.error("%s", err)
        return 2
    name = args.model or settings.model.name
    model = build_model(
        name,
        size=args.size if args.size is not None else settings.model.size,
        seed=args.seed if args.seed is not None else settings.model.seed,
        device=args.device or settings.model.device,
        params={**settings.model.params, **dict(args.param)},
    )
    options = ReplayOptions(
        batch_size=args.batch_size or settings.loop.batch_size,
        window=args.window or settings.evaluation.window,
        record_every=settings.evaluation.record_every,
        out=args.out,
        predictions=args.predictions,
        progress=not args.no_progress,
    )
    report = replay(stream, Predictor(model, name), options)
    print(format_report(report))
    return 0


def format_report(r: dict) -> str:
    lines = [
        f"{r['model']} on {r['stream']}: {r['n']} instances learned of {r['records']} records",
        f"  accuracy {100 * r['accuracy']:.2f}%   kappa {100 * r['kappa']:.2f}   kappa-M {100 * r['kappa_m']:.2f}   "
        f"kappa-T {100 * r['kappa_t']:.2f}",
        f"  last {r['window']} instances: accuracy {100 * r['window_accuracy']:.2f}%   "
        f"kappa-M {100 * r['window_kappa_m']:.2f}",
        f"  {r['instances_per_s']:.0f} instances/s ({r['model_instances_per_s']:.0f}/s in the model), "
        f"{r['seconds']:.1f} s, peak memory {r['peak_rss_mib']:.0f} MiB",
        f"  dead letters: {r['dead_letters']}",
    ]
    lines += [f"    line {d['offset']}: {d['reason']}" for d in r["first_dead_letters"]]
    if r["adaptation"]:
        a = r["adaptation"]
        lines.append(
            f"  adaptation: {a['drifts']} drifts replaced an expert "
            f"({a['background_takeovers']} by its background expert)"
            + (f", {a['kept']} left it in place (its background expert was not better)" if a["kept"] else "")
            + f", {a['warnings']} warnings, {a['expansions']} expansions, {a['prunes']} prunes; "
            f"experts {a['final_experts']} at the end, {a['max_experts']} at most"
        )
    if r["expert_usage"]:
        lines.append(f"  instances learned per expert: {r['expert_usage']['learned']}")
        if "top1_share" in r["expert_usage"]:
            shares = " ".join(f"{100 * s:.1f}%" for s in r["expert_usage"]["top1_share"])
            lines.append(f"  top-1 routing share per expert: {shares}")
    return "\n".join(lines)
