"""`stream-moe replay`: a benchmark stream or a data file through the event loop, with a prequential report."""

from __future__ import annotations

import argparse
import importlib
import pathlib

from connectors.files import StreamFileError, UnknownTarget, file_kind, open_file
from stream_moe.commands.arguments import LazyChoices, device, existing_file, non_negative_int, positive_int
from stream_moe.config import EvaluationSettings, LoopSettings, ModelSettings, load_settings
from stream_moe.errors import UsageError
from stream_moe.params import ParamError, check_params, parse_param
from stream_moe.provenance import run_info

# The registries import river and torch: only when the command runs, or when their names are looked at.
MODEL_NAMES = LazyChoices(lambda: importlib.import_module("stream_moe.models.registry").MODELS)
STREAM_NAMES = LazyChoices(lambda: importlib.import_module("connectors.benchmarks").stream_names())

EPILOG = """\
examples:
  stream-moe replay --stream sea_a --model driftmoe-data --n 1000000 --seed 1
  stream-moe replay --stream elec --model arf --size 10
  stream-moe replay --file my_stream.csv --target label --model driftmoe-task
  stream-moe replay --stream led_g --n 200000 --param prediction='"mixture"' --param top_k=4

Synthetic streams are 1,000,000 instances by default; a shorter --n compresses their drift schedule (drifts at n/4,
n/2, 3n/4). Results (results.json, history.csv, accuracy.png, dead_letters.jsonl) go to --out; Ctrl-C stops the
replay after the batch in hand and writes the results so far (marked "complete": false).
Settings can also come from --config FILE and STREAM_MOE_* variables (e.g. STREAM_MOE_DATA=/data/streams); the
defaults said "settings" below are theirs.
"""


def stream_file(text: str) -> pathlib.Path:
    """An existing .arff or .csv file (optionally .gz)."""
    path = existing_file(text)
    try:
        file_kind(path)
    except StreamFileError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return path


def register(p: argparse.ArgumentParser) -> None:
    model, loop, evaluation = ModelSettings(), LoopSettings(), EvaluationSettings()
    p.description = ("Test-then-train replay: every event is predicted, then learned, in micro-batches, through the "
                     "same loop as the daemon. Prints accuracy, kappa, kappa-M, kappa-T and throughput; writes results "
                     "and a plot.")
    p.epilog = EPILOG
    what = p.add_mutually_exclusive_group()
    what.add_argument("--stream", choices=STREAM_NAMES, default="sea_g", metavar="STREAM",
                      help="benchmark stream: %(choices)s")
    what.add_argument("--file", type=stream_file, help="an ARFF or CSV stream file (optionally .gz) instead")
    p.add_argument("--target", help="target column of --file (default: the last one)")
    p.add_argument("--model", choices=MODEL_NAMES, metavar="MODEL",
                   help=f"model: %(choices)s (default: settings model.name, {model.name})")
    p.add_argument("--size", type=positive_int, help="ensemble size (experts / trees / members) of models that have "
                   "one (default: settings model.size, else the model's own)")
    p.add_argument("--param", type=parse_param, action="append", default=[], metavar="NAME=VALUE",
                   help="model constructor parameter, repeatable; checked against the constructor before the run")
    p.add_argument("--n", type=positive_int, help="instances to replay (default: the whole stream; 1,000,000 for "
                   "generated streams)")
    p.add_argument("--seed", type=non_negative_int,
                   help=f"seed of the stream and the model (default: settings model.seed, {model.seed})")
    p.add_argument("--device", type=device, help=f"router device: auto, cpu, cuda or cuda:N (default: settings "
                   f"model.device, {model.device})")
    p.add_argument("--batch-size", type=positive_int,
                   help=f"events per micro-batch (default: settings loop.batch_size, {loop.batch_size})")
    p.add_argument("--window", type=positive_int, help="sliding window of the windowed metrics (default: settings "
                   f"evaluation.window, {evaluation.window})")
    p.add_argument("--data-dir", type=pathlib.Path, action="append",
                   help="where data files are, repeatable (default: settings data, data and ../shared/data)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/replay"), help="results directory")
    p.add_argument("--predictions", type=pathlib.Path, help="also write every prediction to this JSONL file")
    p.add_argument("--config", type=existing_file, help="settings file (YAML or TOML)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def open_input(args, settings):
    """The stream to replay: --file's, or a benchmark's."""
    from connectors.benchmarks import OpenedStream, StreamUnavailable, open_stream

    seed = args.seed if args.seed is not None else settings.model.seed
    if args.file is not None:
        try:
            source, decoder = open_file(args.file, target=args.target, limit=args.n)
        except UnknownTarget as err:
            raise UsageError("--target", str(err)) from None
        return OpenedStream(args.file.name, source, decoder, str(args.file), [], length=args.n)
    if args.target is not None:
        raise UsageError("--target", "names a column of --file; a benchmark stream knows its target")
    try:
        return open_stream(args.stream, n=args.n, seed=seed, data_dirs=args.data_dir or settings.data_dirs)
    except StreamUnavailable as err:
        raise UsageError("--stream", str(err)) from None


def make_model(args, settings):
    """The model the arguments and settings ask for, its parameters checked before it is built."""
    from stream_moe.models.registry import MODELS, build_model

    name = args.model or settings.model.name
    if name not in MODELS:
        raise UsageError("--model", f"unknown model {name!r} (settings model.name); known: {', '.join(MODELS)}")
    spec = MODELS[name]
    size = args.size if args.size is not None else settings.model.size
    if size is not None and spec.size_param is None:
        sized = ", ".join(n for n, s in MODELS.items() if s.size_param)
        raise UsageError("--size", f"model {name!r} has no ensemble size; models with one: {sized}")
    try:
        params = check_params(spec.signature_of or spec.factory, settings.model.params, name)
    except ParamError as err:
        raise UsageError("--param", f"settings model.params: {err}") from None
    try:
        params |= check_params(spec.signature_of or spec.factory, dict(args.param), name)
    except ParamError as err:
        raise UsageError("--param", str(err)) from None
    seed = args.seed if args.seed is not None else settings.model.seed
    return name, build_model(name, size=size, seed=seed, device=args.device or settings.model.device, params=params)


def run(args) -> int:
    settings = load_settings(args.config)
    stream = open_input(args, settings)  # before the model, which loads torch: a bad file is answered at once
    try:
        name, model = make_model(args, settings)
    except BaseException:
        stream.source.close()
        raise
    from stream_moe.predictor import Predictor
    from stream_moe.replay import ReplayFailed, ReplayOptions, replay

    options = ReplayOptions(
        batch_size=args.batch_size or settings.loop.batch_size,
        window=args.window or settings.evaluation.window,
        record_every=settings.evaluation.record_every,
        out=args.out,
        predictions=args.predictions,
        progress=not args.no_progress,
        run={**run_info(args.argv), "requested_n": args.n},
    )
    try:
        report = replay(stream, Predictor(model, name), options)
    except ReplayFailed as err:
        raise RuntimeError(f"{err} (the results up to then are in {args.out / 'results.json'})") from err.__cause__
    print(format_report(report))
    print(f"  results: {args.out / 'results.json'}, history: {args.out / 'history.csv'}, "
          f"plot: {args.out / 'accuracy.png'}")
    if report["stopped"] == "interrupted":
        print(f"interrupted after {report['records']} records: the results so far are in {args.out / 'results.json'}")
        return 130
    if report["n"] == 0:
        raise RuntimeError(f"no instance was scored: {report['records']} records, {report['dead_letters']} dead "
                           f"letters (see {args.out / 'dead_letters.jsonl'})")
    return 0


def format_report(r: dict) -> str:
    lines = [
        f"{r['model']} on {r['stream']}: {r['n']} instances learned of {r['records']} records"
        + ("" if r["complete"] else " (stopped early)"),
        f"  accuracy {100 * r['accuracy']:.2f}%   kappa {100 * r['kappa']:.2f}   kappa-M {100 * r['kappa_m']:.2f}   "
        f"kappa-T {100 * r['kappa_t']:.2f}",
        f"  last {r['window']} instances: accuracy {100 * r['window_accuracy']:.2f}%   "
        f"kappa-M {100 * r['window_kappa_m']:.2f}",
        f"  {r['instances_per_s']:.0f} instances/s ({r['model_instances_per_s']:.0f}/s in the model), "
        f"{r['seconds']:.1f} s"
        + (f" (and {r['compile_seconds']:.1f} s compiling kernels)" if r["compile_seconds"] >= 0.05 else "")
        + f", peak memory {r['peak_rss_mib']:.0f} MiB",
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
