"""Benchmark suite: models x streams x seeds through the replay loop, each run appended to a results file.

    python benchmarks/suite.py --streams elec,sea_a --models driftmoe-data,arf:10 --n 50000 --seeds 1,2 \\
        --out benchmarks/results/accuracy.jsonl
    python benchmarks/suite.py --streams sea_g,elec --models "driftmoe-data;arf:10" --n 20000 --rounds 3 \\
        --out benchmarks/results/speed.jsonl
    python benchmarks/suite.py forecast --scenarios euro28-drastic --models cfc,persistence --seeds 3 \\
        --out benchmarks/results/forecast.jsonl

A model is `name[:size][:param=value,...]`, e.g. `arf:10` or `driftmoe-data::prediction='mixture',router_batch=32`
(`;`-separated in `--models` when a spec holds commas). `moa-ht`, `moa-arf:N` and `moa-srp:N` are MOA's Hoeffding tree,
adaptive random forest and streaming random patches, run by CapyMOA in its own environment (`--moa-python`, the `moa`
extra of the package, which needs Java 17) in MOA's own prequential loop. When a stream's models include a MOA learner,
the stream is written once to an ARFF file and every model of that stream and seed reads that file, so both sides
learn the same instances and both loops count parsing them; MOA's time is its loop's alone (not the start of the Java
virtual machine, nor the writing of the file).

A stream `moa:NAME` (`moa:sea_a`, `moa:led_g`, `moa:rbf_f5`, ... for the DriftMoE streams) is that stream as MOA
generates it: MOA's generators and ConceptDriftStream, written to ARFF by MOA itself (through `--moa-python`), cached in
the temporary directory by definition, length and seed, and replayed from that file by every model of the stream.

Every run is one JSON line with its metrics, the command that made it, the machine, the load average before and after
it and the date, appended as soon as it ends: an interrupted suite keeps what it did, and a rerun skips the runs that
are already in the file. With `--rounds R` (R > 1) the models of a stream and seed are run R times, the order reversed
every other round, after an untimed warm-up of each on the stream's first instances; each run keeps its rounds'
speeds, so speed ratios can be taken within a round and their median reported (`benchmarks/tables.py` does).

The markdown tables of the docs are written from these files by `benchmarks/tables.py`; this script prints a summary
table of what it ran, and with `--plots DIR` the pool size over time of every run whose pool was expanded or pruned.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import hashlib
import json
import os
import pathlib
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import typing

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from connectors import generators  # noqa: E402
from connectors.benchmarks import OpenedStream, StreamUnavailable, describe, open_stream  # noqa: E402
from connectors.files import open_file  # noqa: E402
from stream_moe.config import load_settings  # noqa: E402
from stream_moe.models.registry import build_model  # noqa: E402
from stream_moe.plots import plot_pool_size  # noqa: E402
from stream_moe.predictor import Predictor  # noqa: E402
from stream_moe.replay import ReplayOptions, replay  # noqa: E402

DEFAULT_STREAMS = "elec,weather,sea_a,sea_g,led_a,led_g,rbf_m,rbf_f"
DEFAULT_MODELS = "driftmoe-data,driftmoe-task,hoeffding-tree,arf:10"
MOA_MODELS = {"moa-arf": "AdaptiveRandomForestClassifier", "moa-ht": "HoeffdingTree",
              "moa-srp": "StreamingRandomPatches"}
WARMUP = 1000  # instances of the untimed warm-up run of each model before timed rounds
MOA_STREAM_PREFIX = "moa:"
MOA_STREAMS = ("sea_a", "sea_g", "led_a", "led_g", "rbf_m", "rbf_f", "rbf_m5", "rbf_f5")
MOA_STREAM_CACHE = pathlib.Path(tempfile.gettempdir()) / "stream-moe-moa-streams"


def parse_model(spec: str) -> tuple[str, int | None, dict]:
    """'name[:size][:p=v,...]' -> (name, size, params); values are Python literals (tuples and lists included).

    >>> parse_model("driftmoe-data::top_k=16,leaf_predictions=('nb', 'nba')")
    ('driftmoe-data', None, {'top_k': 16, 'leaf_predictions': ('nb', 'nba')})
    """
    name, _, rest = spec.partition(":")
    size_text, _, params_text = rest.partition(":")
    call = ast.parse(f"f({params_text})", mode="eval").body  # keyword arguments; each value a literal
    if call.args or any(kw.arg is None for kw in call.keywords):
        raise ValueError(f"model parameters must be name=value pairs, not {params_text!r}")
    params = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    return name, int(size_text) if size_text else None, params


def split_models(text: str) -> list[str]:
    """Models separated by `;`, or by `,` when no spec has parameters (`arf:10,hoeffding-tree`).

    >>> split_models("driftmoe-data::top_k=8,bagging_lambda=12")
    ['driftmoe-data::top_k=8,bagging_lambda=12']
    """
    return [m for m in (text.split(";") if ";" in text or "::" in text else text.split(",")) if m]


def machine() -> dict:
    """What the figures were measured on."""
    cpu = platform.processor()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory_gib, "system": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def load() -> list[float]:
    """The 1, 5 and 15-minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def provenance(command: str) -> dict:
    return {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine()}


def _arff_value(value, nominal: bool) -> str:
    if value is None:
        return "?"
    if nominal:
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(float(value))


def write_arff(stream_name: str, n: int | None, seed: int, data_dirs, path: pathlib.Path) -> int:
    """The instances the replay loop would see, as an ARFF file (numbers numeric, anything else nominal; a feature an
    event lacks is missing). Returns the instance count."""
    opened = open_stream(stream_name, n=n, seed=seed, data_dirs=data_dirs)
    events = [e for batch in opened.source.batches(1000) for e in map(opened.decoder.decode, batch)]
    opened.source.close()
    names: dict = {}
    for e in events:
        for k, v in e.x.items():
            kind = names.setdefault(k, set())
            if v is not None:
                kind.add(isinstance(v, (int, float)) and not isinstance(v, bool))
    nominal = {k: kinds != {True} for k, kinds in names.items()}
    values = {k: sorted({str(e.x[k]) for e in events if e.x.get(k) is not None}) for k in names if nominal[k]}
    classes = sorted({str(e.y) for e in events})
    with open(path, "w") as f:
        f.write(f"@relation {stream_name}\n")
        for i, k in enumerate(names):
            kind = "{" + ",".join(_arff_value(v, True) for v in values[k]) + "}" if nominal[k] else "numeric"
            f.write(f"@attribute f{i} {kind}\n")
        f.write("@attribute class {" + ",".join(_arff_value(c, True) for c in classes) + "}\n@data\n")
        for e in events:
            row = [_arff_value(e.x.get(k), nominal[k]) for k in names]
            f.write(",".join(row + [_arff_value(e.y, True)]) + "\n")
    return len(events)


MOA_SCRIPT = """
import json, sys
from capymoa.stream import ARFFStream
from capymoa.evaluation import prequential_evaluation
import capymoa.classifier as classifiers
path, learner_name, size, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
stream = ARFFStream(path)
kwargs = {"schema": stream.get_schema(), "random_seed": seed}
if size:
    kwargs["ensemble_size"] = size
learner = getattr(classifiers, learner_name)(**kwargs)
result = prequential_evaluation(stream=stream, learner=learner, window_size=1000)
seconds = result.wallclock()  # MOA's loop alone: the Java virtual machine started when capymoa was imported
m = result.cumulative.metrics_dict()
windows = result.windowed.accuracy()[: int(m["instances"]) // 1000]  # tumbling windows of 1,000, full ones only
curve = [sum(windows[: k + 1]) / (k + 1) / 100 for k in range(len(windows))]  # accuracy over the first (k+1)*1,000
print(json.dumps({"n": int(m["instances"]), "accuracy": m["accuracy"] / 100, "kappa": m["kappa"] / 100,
                  "kappa_m": m["kappa_m"] / 100, "kappa_t": m["kappa_t"] / 100, "seconds": seconds,
                  "instances_per_s": m["instances"] / seconds, "curve_every": 1000, "accuracy_curve": curve,
                  "capymoa": __import__("capymoa").__version__}))
"""


def is_moa(spec: str) -> bool:
    return parse_model(spec)[0] in MOA_MODELS


def is_moa_stream(stream: str) -> bool:
    return stream.startswith(MOA_STREAM_PREFIX)


def moa_stream_cli(name: str, n: int, seed: int) -> str:
    """MOA's definition of the DriftMoE stream `name` of length `n`, as a MOA command-line string: the generators,
    concepts and drift schedule of ours (`connectors.generators`), seeded MOA's way (every concept and every drift
    with `seed`; seed 1 is MOA's default).

    >>> moa_stream_cli("rbf_f5", 1000, 2)
    'generators.RandomRBFGeneratorDrift -s 0.001 -k 50 -n 50 -a 10 -c 5 -r 2 -i 2'
    """
    if name not in MOA_STREAMS:
        raise ValueError(f"no MOA definition of {name!r}; MOA streams: "
                         + ", ".join(MOA_STREAM_PREFIX + s for s in MOA_STREAMS))
    if name.startswith("rbf"):
        params = generators.GENERATORS[name][0].keywords
        return (f"generators.RandomRBFGeneratorDrift -s {params['change_speed']} -k 50 -n 50 -a 10 "
                f"-c {params['n_classes']} -r {seed} -i {seed}")
    if name.startswith("sea"):
        concepts = [f"generators.SEAGenerator -f {v + 1} -p 10 -i {seed}" for v in generators.SEA_VARIANTS]
    else:
        concepts = [f"generators.LEDGeneratorDrift -d {d} -n 10 -i {seed}" for d in generators.LED_DRIFTING_ATTRIBUTES]
    positions, width = generators.nested_positions(n, gradual=name.endswith("_g"))
    stream = concepts[-1]
    for concept, position in zip(concepts[-2::-1], positions[::-1]):
        stream = f"ConceptDriftStream -s ({concept}) -d ({stream}) -p {position} -w {width} -r {seed}"
    return stream


MOA_STREAM_SCRIPT = """
import os, sys
import capymoa  # starts the Java virtual machine, MOA on its class path
from moa.tasks import WriteStreamToARFFFile
cli, path, n = sys.argv[1], sys.argv[2], sys.argv[3]
task = WriteStreamToARFFFile()
task.getOptions().setViaCLIString(f"-s ({cli}) -f {path}.moa -m {n}")
task.prepareForUse()
task.doTask()
with open(path + ".moa") as moa, open(path + ".part", "w") as out:
    for line in moa:  # MOA ends every row with a comma, which other readers take for one more value
        out.write(line.rstrip("\\n").rstrip(",") + "\\n")
os.remove(path + ".moa")
os.replace(path + ".part", path)
"""


def moa_stream_arff(stream: str, n: int | None, seed: int, moa_python: str) -> pathlib.Path:
    """The first `n` instances of MOA stream `stream` (`moa:NAME`), written to ARFF by MOA in the `moa_python`
    interpreter, or the copy already cached for the same definition, length and seed."""
    length = generators.BENCHMARK_LENGTH if n is None else n
    name = stream.removeprefix(MOA_STREAM_PREFIX)
    cli = moa_stream_cli(name, length, seed)
    path = MOA_STREAM_CACHE / f"{name}-{length}-{seed}-{hashlib.sha1(cli.encode()).hexdigest()[:10]}.arff"
    if not path.exists():
        MOA_STREAM_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([moa_python, "-c", MOA_STREAM_SCRIPT, cli, str(path), str(length)],
                       capture_output=True, text=True, check=True)
    return path


def run_moa(spec: str, arff: pathlib.Path | None, seed: int, moa_python: str | None) -> dict:
    """A MOA learner through CapyMOA on the ARFF file, in a separate interpreter (its own environment: a JVM and its
    packages)."""
    if not moa_python:
        raise RuntimeError(f"{spec} needs --moa-python: an interpreter with capymoa installed")
    name, size, params = parse_model(spec)
    if params:
        raise ValueError(f"{spec}: MOA models take a size only")
    out = subprocess.run([moa_python, "-c", MOA_SCRIPT, str(arff), MOA_MODELS[name], str(size or 0), str(seed)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def open_run_stream(stream_name: str, n: int | None, seed: int, data_dirs, arff: pathlib.Path | None) -> OpenedStream:
    """The stream as `open_stream` gives it, or, given the ARFF copy of it, its first `n` instances read from there
    (a MOA stream's only copy)."""
    if is_moa_stream(stream_name):
        name, length = stream_name.removeprefix(MOA_STREAM_PREFIX), n or generators.BENCHMARK_LENGTH
        source, decoder = open_file(arff, limit=n)
        return OpenedStream(stream_name, source, decoder, f"{describe(name)}, as MOA generates it",
                            generators.drifts(name, length), length)
    stream = open_stream(stream_name, n=n, seed=seed, data_dirs=data_dirs)
    if arff is None:
        return stream
    stream.source.close()
    source, decoder = open_file(arff, limit=n)
    return dataclasses.replace(stream, source=source, decoder=decoder)


def run_one(stream_name: str, spec: str, n: int | None, seed: int, data_dirs, batch_size: int,
            moa_python: str | None = None, arff: pathlib.Path | None = None) -> dict:
    """One model on one stream: through the replay loop, or MOA's (which reads the ARFF file)."""
    if is_moa(spec):
        report = run_moa(spec, arff, seed, moa_python)
    else:
        name, size, params = parse_model(spec)
        stream = open_run_stream(stream_name, n, seed, data_dirs, arff)
        model = build_model(name, size=size, seed=seed, params=params)
        report = replay(stream, Predictor(model, name),
                        ReplayOptions(batch_size=batch_size, progress=sys.stderr.isatty()))
    if arff is not None:
        report["read_from"] = "arff"
    if is_moa_stream(stream_name):
        report["moa_stream"] = moa_stream_cli(stream_name.removeprefix(MOA_STREAM_PREFIX),
                                              n or generators.BENCHMARK_LENGTH, seed)
    return {**report, "stream": stream_name, "model": spec, "seed": seed, "n_requested": n}


def timed(stream_name, spec, n, seed, data_dirs, batch_size, moa_python, arff) -> dict:
    before = load()
    run = run_one(stream_name, spec, n, seed, data_dirs, batch_size, moa_python, arff)
    run["load_before"], run["load_after"] = before, load()
    return run


def run_group(stream: str, seed: int, models: list[str], args, data_dirs) -> typing.Iterator[dict]:
    """The models on one stream and seed: once each (each run yielded as it ends), or `args.rounds` alternating
    rounds after a warm-up (the runs yielded when the last round ends). With a MOA learner among them, every model
    reads the stream's ARFF copy, written once for the group (and deleted after it); on a MOA stream, every model
    reads MOA's ARFF file."""
    with tempfile.TemporaryDirectory(prefix="suite-arff-") as tmp:
        arff = None
        if is_moa_stream(stream):
            arff = moa_stream_arff(stream, args.n, seed, args.moa_python)
        elif any(map(is_moa, models)):
            arff = pathlib.Path(tmp) / f"{stream}.arff"
            write_arff(stream, args.n, seed, data_dirs, arff)
        if args.rounds <= 1:
            for m in models:
                yield timed(stream, m, args.n, seed, data_dirs, args.batch_size, args.moa_python, arff)
            return
        warm_n = WARMUP if args.n is None else min(WARMUP, args.n)
        for m in models:
            if not is_moa(m):
                run_one(stream, m, warm_n, seed, data_dirs, args.batch_size, arff=arff)
        rounds: dict[str, list[dict]] = {m: [] for m in models}
        for r in range(args.rounds):
            for m in models if r % 2 == 0 else models[::-1]:
                rounds[m].append(timed(stream, m, args.n, seed, data_dirs, args.batch_size, args.moa_python, arff))
    for m in models:
        first = rounds[m][0]
        first["rounds"] = [{"round": i, "accuracy": run["accuracy"], "seconds": run["seconds"],
                            "instances_per_s": run["instances_per_s"],
                            "model_instances_per_s": run.get("model_instances_per_s"),
                            "load_before": run["load_before"], "load_after": run["load_after"]}
                           for i, run in enumerate(rounds[m])]
        first["instances_per_s"] = statistics.median(x["instances_per_s"] for x in first["rounds"])
        yield first


def summary(runs: list[dict], models: list[str], streams: list[str]) -> str:
    """Accuracy, kappa-M and instances/s per stream and model, averaged over seeds."""
    lines = ["| stream | model | n | seeds | accuracy (%) | kappa-M (%) | instances/s |", "|---|---|---|---|---|---|---|"]
    for stream in streams:
        for model in models:
            mine = [r for r in runs if r["stream"] == stream and r["model"] == model]
            if mine:
                mean = lambda key, scale=1: statistics.fmean(scale * r[key] for r in mine)  # noqa: E731
                lines.append(f"| {stream} | {model} | {mine[0]['n']:,} | {len(mine)} | {mean('accuracy', 100):.2f} | "
                             f"{mean('kappa_m', 100):.2f} | {mean('instances_per_s'):,.0f} |")
    return "\n".join(lines)


def plot_pool_sizes(runs: list[dict], out: pathlib.Path) -> list[pathlib.Path]:
    """For every run whose pool was expanded or pruned, its pool size over time with the stream's drift centres
    marked: `<out>/pool_size_<stream>_<model>_<seed>.png` (the model spec made file-safe). (MoE-Task's pool grows
    with the classes as they appear: that is not adaptation, and gets no plot.)"""
    paths = []
    out.mkdir(parents=True, exist_ok=True)
    for run in runs:
        adaptation = run.get("adaptation") or {}
        if not (adaptation.get("expansions") or adaptation.get("prunes")):
            continue
        sizes = adaptation["pool_sizes"]
        name = run["stream"]
        base = name.removeprefix(MOA_STREAM_PREFIX)
        drifts = generators.drifts(base, run["n"]) if base in generators.GENERATORS else []
        slug = "".join(c if c.isalnum() else "_" for c in run["model"]).strip("_")
        path = out / f"pool_size_{name.replace(':', '_')}_{slug}_{run['seed']}.png"
        plot_pool_size([tuple(pair) for pair in sizes], run["n"], drifts, path,
                       f"{name} ({run['n']:,}): {run['model']}, seed {run['seed']}")
        paths.append(path)
    return paths


def read_runs(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def append(path: pathlib.Path, run: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(run, default=str) + "\n")


def classify(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="suite.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default=DEFAULT_STREAMS)
    parser.add_argument("--models", default=DEFAULT_MODELS, help="';'-separated when a spec holds commas")
    parser.add_argument("--n", type=int, default=50_000, help="instances per synthetic stream (files: whole)")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds per model, alternating the order")
    parser.add_argument("--moa-python", default=os.environ.get("MOA_PYTHON"),
                        help="interpreter with capymoa installed, for moa-* models and moa:* streams "
                             "(default: $MOA_PYTHON)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/suite.jsonl"),
                        help="results file (JSON lines), appended to")
    parser.add_argument("--plots", type=pathlib.Path, help="directory for pool-size plots of growing pools")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    streams = args.streams.split(",")
    models = split_models(args.models)
    seeds = [int(s) for s in args.seeds.split(",")]
    for stream in filter(is_moa_stream, streams):
        if not args.moa_python:
            raise SystemExit(f"{stream} needs --moa-python (or MOA_PYTHON): an interpreter with capymoa installed")
        try:
            moa_stream_cli(stream.removeprefix(MOA_STREAM_PREFIX), args.n or 1, 1)
        except ValueError as err:  # an unknown name fails before any run
            raise SystemExit(str(err)) from None
    data_dirs = load_settings().data_dirs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = read_runs(args.out)
    done = {(r["stream"], r["model"], r["seed"], r["n_requested"]) for r in runs}
    meta = provenance(shlex.join(["python", "benchmarks/suite.py", *argv]))

    for stream in streams:
        for seed in seeds:
            todo = [m for m in models if (stream, m, seed, args.n) not in done]
            if not todo:
                continue
            try:
                for run in run_group(stream, seed, todo, args, data_dirs):
                    run.update(meta, rounds_requested=args.rounds)
                    runs.append(run)
                    append(args.out, run)
                    print(f"{stream} {run['model']} seed {seed}: {100 * run['accuracy']:.2f}% kappa-M "
                          f"{100 * run['kappa_m']:.2f} {run['instances_per_s']:.0f}/s (load {run['load_before'][0]})",
                          flush=True)
            except StreamUnavailable as err:
                print(f"skipped {stream}: {err}", file=sys.stderr)
                break
    mine = [r for r in runs if r["n_requested"] == args.n and r["stream"] in streams and r["model"] in models]
    print(summary(mine, models, streams))
    if args.plots:
        for path in plot_pool_sizes(mine, args.plots):
            print(f"wrote {path}")
    return 0


def forecast_main(argv: list[str]) -> int:
    """Failure scenarios x forecasters x seeds through the walk-forward backtest (`benchmarks/forecast_suite.py`'s
    runs), each run appended to the results file with its provenance."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import forecast_suite  # noqa: PLC0415
    from connectors.network.scenario import BUILTIN  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="suite.py forecast")
    parser.add_argument("--scenarios", default=",".join(BUILTIN))
    parser.add_argument("--models", default="cfc,mlp-retrained,persistence,seasonal,snarimax")
    parser.add_argument("--seeds", default="3,4,5", help="seeds 0-2 chose the liquid network's inputs; report others")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/forecast.jsonl"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["scenario"], r["model"], r["seed"]) for r in read_runs(args.out)}
    meta = provenance(shlex.join(["python", "benchmarks/suite.py", "forecast", *argv]))
    for scenario in args.scenarios.split(","):
        for model in args.models.split(","):
            for seed in map(int, args.seeds.split(",")):
                if (scenario, model, seed) in done:
                    continue
                before = load()
                run = forecast_suite.run_one(scenario, model, seed)
                run.update(meta, load_before=before, load_after=load())
                append(args.out, run)
                print(f"{scenario} {model} seed {seed}: RMSE {run['rmse']:.3f}, {run['ms_per_step']:.2f} ms/step",
                      flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["forecast"]:
        return forecast_main(argv[1:])
    return classify(argv)


if __name__ == "__main__":
    sys.exit(main())
