"""The generated parts of the README and the docs: tables of results from `benchmarks/results/`, and the reference
tables of the settings model and the service's metrics.

    python benchmarks/tables.py            # rewrite every generated region of README.md and docs/*.md
    python benchmarks/tables.py --check    # exit 1, naming them, when regions differ from what the sources give
    python benchmarks/tables.py --show speed

A generated region is `<!-- table:NAME -->`, the table, `<!-- /table -->`. Nothing between the markers is written
by hand: `tests/test_docs.py` checks that every region is exactly what this script renders.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import shlex
import statistics
import sys
import typing

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
# the results files these tables are written from (other benchmarks keep theirs beside them)
RESULT_FILES = ("accuracy.jsonl", "speed.jsonl", "speed_moa.jsonl", "defaults.jsonl", "broad.jsonl",
                "broad_defaults.jsonl", "split_speed.jsonl", "task.jsonl", "forecast.jsonl", "recur4.jsonl")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REGION = re.compile(r"(<!-- table:([\w-]+) -->\n)(.*?)(<!-- /table -->)", re.S)

STREAMS = ["sea_a", "sea_g", "led_a", "led_g", "rbf_m", "rbf_f", "rbf_m5", "rbf_f5", "agrawal_a", "agrawal_g", "hyper",
           "stagger_a", "rtg_a", "mixed_a", "sine_a", "waveform_a", "phishing", "bananas", "segment", "elec", "weather"]
STREAM_NAMES = {"sea_a": "SEA abrupt", "sea_g": "SEA gradual", "led_a": "LED abrupt", "led_g": "LED gradual",
                "rbf_m": "RandomRBF moderate", "rbf_f": "RandomRBF fast", "rbf_m5": "RandomRBF moderate, 5 classes",
                "rbf_f5": "RandomRBF fast, 5 classes", "elec": "Electricity", "weather": "NOAA weather",
                "recur4": "four recurring concepts", "agrawal_a": "AGRAWAL abrupt", "agrawal_g": "AGRAWAL gradual",
                "hyper": "Hyperplane", "stagger_a": "STAGGER abrupt", "rtg_a": "RandomTree abrupt",
                "mixed_a": "Mixed abrupt", "sine_a": "SINE abrupt", "waveform_a": "Waveform abrupt",
                "phishing": "Phishing", "bananas": "Bananas", "segment": "Image segments"}
MODEL_NAMES = {
    "driftmoe-data": "DriftMoE-Data", "driftmoe-task": "DriftMoE-Task", "driftmoe-river": "DriftMoE-Data, river's trees",
    "hoeffding-tree": "river HT", "fast-tree": "fast HT (ours)", "arf:10": "river ARF(10)", "arf:100": "river ARF(100)",
    "moa-ht": "MOA HT", "moa-arf:10": "MOA ARF(10)", "moa-arf:100": "MOA ARF(100)", "moa-srp:10": "MOA SRP(10)",
    "driftmoe-data::split_confidence=1e-07": "DriftMoE-Data, split confidence 1e-7",
}
MOA_PEERS = ["moa-ht", "moa-arf:10", "moa-arf:100", "moa-srp:10"]  # the broad suite's columns, in this order
DEFAULT = "driftmoe-data"
VARIANTS = {  # the defaults tables: one change from the default each, then other models set beside it
    "driftmoe-paper::experts='fast'": "paper's configuration",
    "driftmoe-data::split_confidence=1e-07": "split confidence 1e-7",
    "driftmoe-data::drift_detector=None,warning_detector=None": "no detection",
    "driftmoe-data::drift_detector='adwin(delta=0.001)',warning_detector='adwin(delta=0.01)'": "two-sided ADWIN",
    "driftmoe-data::top_k=8": "8 learn",
    "driftmoe-data::leaf_predictions=('nb',)": "naive-Bayes leaves",
    "driftmoe-data::expansion=True": "+ self-expansion",
    "driftmoe-data:32": "32 experts (24 learn)",
    "driftmoe-task": "MoE-Task",
    "driftmoe-task::generalist_fade=None": "class experts alone",
    "hoeffding-tree": "Hoeffding tree",
}


def read(name: str) -> list[dict]:
    path = RESULTS / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def model_name(spec: str) -> str:
    return MODEL_NAMES.get(spec, spec)


def stream_order(runs: list[dict]) -> list[str]:
    present = {r["stream"] for r in runs}
    return [s for s in STREAMS if s in present] + sorted(present - set(STREAMS))


def by(runs: list[dict], stream: str, model: str, n: int | None = None) -> list[dict]:
    """The runs of a model on a stream (of `n` instances, when given)."""
    return [r for r in runs if r["stream"] == stream and r["model"] == model and n in (None, r["n"])]


def chosen_n(runs: list[dict], stream: str, first: str = DEFAULT) -> int | None:
    """The length at which most runs of a stream were made (the runs of model `first` decide ties by coming first)."""
    lengths = [r["n"] for r in runs if r["stream"] == stream and r["model"] == first] or \
        [r["n"] for r in runs if r["stream"] == stream]
    return max(dict.fromkeys(lengths), key=lambda n: sum(r["n"] == n for r in runs if r["stream"] == stream),
               default=None)


def pct(values: list[float]) -> str:
    return f"{100 * statistics.fmean(values):.2f}" if values else "—"


def number(value: float) -> str:
    return f"{value:,.0f}"


def row(cells: list) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def header(cells: list[str], align: str | None = None) -> list[str]:
    return [row(cells), "|" + "|".join(align or ("---" for _ in cells)) + "|"]


def speed_ratios(runs: list[dict], stream: str, model: str, reference: str = DEFAULT) -> list[float]:
    """reference's instances/s over model's, round by round (rounds run side by side, alternating order)."""
    mine, ref = by(runs, stream, model), by(runs, stream, reference)
    if not mine or not ref:
        return []
    return [a["instances_per_s"] / b["instances_per_s"] for a, b in zip(ref[0]["rounds"], mine[0]["rounds"])]


def times(ratios: list[float]) -> str:
    if not ratios:
        return "—"
    median = statistics.median(ratios)
    return f"{median:.1f}x" if len(ratios) == 1 else f"{median:.1f}x ({min(ratios):.1f}-{max(ratios):.1f})"


# ---- result tables ------------------------------------------------------------------------------------------------

def summary() -> str:
    """The README's: accuracy of the default against river's and MOA's forests and trees, and speed side by side."""
    accuracy, speed = read("accuracy.jsonl"), read("speed.jsonl")
    lines = header(["stream (instances)", "DriftMoE-Data", "river ARF(10)", "MOA ARF(10)", "river HT", "MOA HT",
                    "speed vs river ARF(10)", "speed vs MOA ARF(10)"])
    for stream in stream_order(accuracy):
        n = chosen_n(accuracy, stream)
        if not by(accuracy, stream, DEFAULT, n):
            continue
        cells = [pct([r["accuracy"] for r in by(accuracy, stream, m, n)])
                 for m in (DEFAULT, "arf:10", "moa-arf:10", "hoeffding-tree", "moa-ht")]
        lines.append(row([f"{STREAM_NAMES.get(stream, stream)} ({n:,})", *cells,
                          times(speed_ratios(speed, stream, "arf:10")),
                          times(speed_ratios(speed, stream, "moa-arf:10"))]))
    return "\n".join(lines)


def accuracy() -> str:
    """Every model of the accuracy runs: accuracy / kappa-M, instances/s of that single run."""
    runs = read("accuracy.jsonl")
    order = list(MODEL_NAMES)  # ours first, then river's, then MOA's
    models = sorted(dict.fromkeys(r["model"] for r in runs), key=lambda m: order.index(m) if m in order else len(order))
    lines = header(["stream (instances)", *(model_name(m) for m in models)])
    for stream in stream_order(runs):
        n, cells = chosen_n(runs, stream), []
        for m in models:
            mine = by(runs, stream, m, n)
            cells.append(f"{pct([r['accuracy'] for r in mine])} / {pct([r['kappa_m'] for r in mine])}" if mine else "—")
        lines.append(row([f"{STREAM_NAMES.get(stream, stream)} ({n:,})", *cells]))
    lines.append(row(["instances/s (one run each)", *("" for _ in models)]))
    for stream in stream_order(runs):
        n = chosen_n(runs, stream)
        cells = [number(by(runs, stream, m, n)[0]["instances_per_s"]) if by(runs, stream, m, n) else "—"
                 for m in models]
        lines.append(row([STREAM_NAMES.get(stream, stream), *cells]))
    return "\n".join(lines)


def speed(name: str = "speed.jsonl") -> str:
    """Rounds side by side: median instances/s (range), accuracy, and DriftMoE-Data's speed over each model's."""
    runs = read(name)
    models = list(dict.fromkeys(r["model"] for r in runs))
    lines = header(["stream (instances)", "model", "accuracy %", "instances/s: median (range)",
                    "DriftMoE-Data's speed over this: median (range)", "load (1 min) during"])
    for stream in stream_order(runs):
        for m in models:
            mine = by(runs, stream, m)
            if not mine:
                continue
            rounds = mine[0]["rounds"]
            ips = [x["instances_per_s"] for x in rounds]
            loads = [v for x in rounds for v in (x["load_before"][0], x["load_after"][0])]
            ratio = "1" if m == DEFAULT else times(speed_ratios(runs, stream, m))
            lines.append(row([f"{STREAM_NAMES.get(stream, stream)} ({mine[0]['n']:,})", model_name(m),
                              pct([mine[0]["accuracy"]]),
                              f"{number(statistics.median(ips))} ({number(min(ips))}-{number(max(ips))})",
                              ratio, f"{min(loads):.1f}-{max(loads):.1f}"]))
    return "\n".join(lines)


def per_seed(runs: list[dict], stream: str, model: str, n: int | None) -> dict[int, dict]:
    """A model's run on a stream of `n` instances, by seed (the first, where a seed ran twice)."""
    found: dict[int, dict] = {}
    for r in by(runs, stream, model, n):
        found.setdefault(r["seed"], r)
    return found


def relative(ratios: list[float]) -> str:
    """Speed ratios near 1: their median (range) to two decimals."""
    if not ratios:
        return "—"
    median = statistics.median(ratios)
    return f"{median:.2f}x" if len(ratios) == 1 else f"{median:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def defaults(name: str = "defaults.jsonl", versus: tuple[str, str] | None = None, speed: bool = False,
             base_model: str = DEFAULT) -> str:
    """`base_model` (the default) against one change at a time (the other models of `VARIANTS` in the file): accuracy
    % (mean over the seeds, with a `seeds` column when the file holds several) and the difference from it in points,
    paired by seed; `versus` adds a column of one variant's difference from another, `speed` a last row of each
    variant's instances/s over its own on the same stream and seed (median and range over those pairs)."""
    runs = read(name)
    variants = [v for v in VARIANTS if v != base_model and any(r["model"] == v for r in runs)]
    several = len({r["seed"] for r in runs}) > 1
    columns = [VARIANTS[v] for v in variants]
    if versus:
        columns.append(f"{VARIANTS[versus[0]]} vs {VARIANTS[versus[1]]}")
    label = "default" if base_model == DEFAULT else VARIANTS[base_model]
    lines = header(["stream (instances)", *(["seeds"] if several else []), label, *columns])
    diffs: dict[str, list[float]] = {v: [] for v in [*variants, "versus"]}
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    for stream in stream_order(runs):
        n = chosen_n(runs, stream, base_model)
        base = per_seed(runs, stream, base_model, n)
        if not base:
            continue
        cells = []
        for v in variants:
            mine = {seed: r for seed, r in per_seed(runs, stream, v, n).items() if seed in base}
            if mine:
                diff = statistics.fmean(100 * (r["accuracy"] - base[seed]["accuracy"]) for seed, r in mine.items())
                diffs[v].append(diff)
                ratios[v] += [r["instances_per_s"] / base[seed]["instances_per_s"] for seed, r in mine.items()]
                cells.append(f"{pct([r['accuracy'] for r in mine.values()])} ({diff:+.2f})")
            else:
                cells.append("—")
        if versus:
            one, other = (per_seed(runs, stream, m, n) for m in versus)
            pairs = [100 * (one[seed]["accuracy"] - other[seed]["accuracy"]) for seed in one if seed in other]
            if pairs:
                diffs["versus"].append(statistics.fmean(pairs))
            cells.append(f"{diffs['versus'][-1]:+.2f}" if pairs else "—")
        lines.append(row([f"{STREAM_NAMES.get(stream, stream)} ({n:,})", *([len(base)] if several else []),
                          pct([r["accuracy"] for r in base.values()]), *cells]))
    means = [f"{statistics.fmean(diffs[v]):+.2f}" if diffs[v] else "—"
             for v in [*variants, *(["versus"] if versus else [])]]
    lines.append(row(["mean difference", *([""] if several else []), "", *means]))
    if speed:
        lines.append(row([f"instances/s over {label}'s", *([""] if several else []), "1",
                          *(relative(ratios[v]) for v in variants), *([""] if versus else [])]))
    return "\n".join(lines)


def broad_models(runs: list[dict]) -> list[str]:
    present = dict.fromkeys(r["model"] for r in runs)
    return [m for m in [DEFAULT, *MOA_PEERS] if m in present] + [m for m in present if m not in [DEFAULT, *MOA_PEERS]]


def same_run_ratios(runs: list[dict], stream: str, model: str) -> list[float]:
    """The default's instances/s over model's on the same stream and seed, one ratio per seed (the two ran one after
    the other in one suite run)."""
    mine = {r["seed"]: r["instances_per_s"] for r in by(runs, stream, model)}
    return [r["instances_per_s"] / mine[r["seed"]] for r in by(runs, stream, DEFAULT) if r["seed"] in mine]


def broad(kind: str) -> str:
    """The broad suite against MOA's learners on the same ARFF instances: `accuracy` % (mean over seeds) with the
    default's difference from ARF(10) and ARF(100) in points; `speed` instances/s, the default's speed over ARF(10)'s
    within each stream and seed, and the load."""
    runs = read("broad.jsonl")
    models = broad_models(runs)
    if kind == "accuracy":
        lines = header(["stream (instances)", "seeds", *(model_name(m) for m in models), "vs MOA ARF(10)",
                        "vs MOA ARF(100)"])
    else:
        lines = header(["stream (instances)", *(f"{model_name(m)} /s" for m in models),
                        "DriftMoE-Data's speed over MOA ARF(10)", "load (1 min) around the runs"])
    diffs: dict[str, list[float]] = {"moa-arf:10": [], "moa-arf:100": []}
    for stream in stream_order(runs):
        n = chosen_n(runs, stream)
        if not by(runs, stream, DEFAULT, n):
            continue
        label = f"{STREAM_NAMES.get(stream, stream)} ({n:,})"
        if kind == "accuracy":
            base = statistics.fmean(r["accuracy"] for r in by(runs, stream, DEFAULT, n))
            cells = []
            for peer in diffs:
                other = [r["accuracy"] for r in by(runs, stream, peer, n)]
                if other:
                    diffs[peer].append(100 * (base - statistics.fmean(other)))
                cells.append(f"{diffs[peer][-1]:+.2f}" if other else "—")
            seeds = len(by(runs, stream, DEFAULT, n))
            lines.append(row([label, seeds, *(pct([r["accuracy"] for r in by(runs, stream, m, n)]) for m in models),
                              *cells]))
        else:
            loads = [v for r in runs if r["stream"] == stream for v in (r["load_before"][0], r["load_after"][0])]
            speeds = [number(statistics.fmean(r["instances_per_s"] for r in by(runs, stream, m, n)))
                      if by(runs, stream, m, n) else "—" for m in models]
            lines.append(row([label, *speeds, times(same_run_ratios(runs, stream, "moa-arf:10")),
                              f"{min(loads):.1f}-{max(loads):.1f}"]))
    if kind == "accuracy":
        lines.append(row(["mean difference", "", *("" for _ in models),
                          *(f"{statistics.fmean(d):+.2f}" if d else "—" for d in diffs.values())]))
    else:
        every = [x for stream in stream_order(runs) for x in same_run_ratios(runs, stream, "moa-arf:10")]
        lines.append(row(["all streams", *("" for _ in models), times(every), ""]))
    return "\n".join(lines)


def accuracy_over_first(run: dict, n: int) -> float | None:
    """A run's accuracy over its stream's first `n` instances (from its `accuracy_curve`), None when shorter."""
    k = n // run["curve_every"]
    curve = run["accuracy_curve"]
    return curve[k - 1] if n % run["curve_every"] == 0 and 0 < k <= len(curve) else None


def first_instances(name: str = "broad.jsonl", spans: tuple[int, ...] = (1000, 5000)) -> str:
    """The default against MOA's ARF(10) over the first 1,000 and 5,000 instances of each stream of the broad suite
    (the same runs' `accuracy_curve`): accuracy % (mean over the seeds) and the default's difference in points,
    paired by seed."""
    runs = [r for r in read(name) if "accuracy_curve" in r]
    models = [DEFAULT, "moa-arf:10"]
    lines = header(["stream", "seeds", *(f"{model_name(m)}, first {n:,}" for n in spans for m in models),
                    *(f"vs MOA ARF(10), first {n:,}" for n in spans)])
    diffs: dict[int, list[float]] = {n: [] for n in spans}
    for stream in stream_order(runs):
        base = per_seed(runs, stream, DEFAULT, None)
        if not base:
            continue
        cells, versus = [], []
        for n in spans:
            for m in models:
                values = [accuracy_over_first(r, n) for r in per_seed(runs, stream, m, None).values()]
                cells.append(pct(values) if values and None not in values else "—")
            arf = per_seed(runs, stream, "moa-arf:10", None)
            mine = {seed: accuracy_over_first(r, n) for seed, r in base.items() if seed in arf}
            pairs = [a - accuracy_over_first(arf[seed], n) for seed, a in mine.items() if a is not None]
            if pairs:
                diffs[n].append(100 * statistics.fmean(pairs))
            versus.append(f"{diffs[n][-1]:+.2f}" if pairs else "—")
        lines.append(row([STREAM_NAMES.get(stream, stream), len(base), *cells, *versus]))
    lines.append(row(["mean difference", "", *("" for _ in spans for _ in models),
                      *(f"{statistics.fmean(diffs[n]):+.2f}" if diffs[n] else "—" for n in spans)]))
    return "\n".join(lines)


def forecast() -> str:
    """Forecasters through the failure scenarios: means over seeds, and over failures for the failure columns."""
    runs = read("forecast.jsonl")
    lines = header(["scenario", "model", "seeds", "RMSE", "MAPE %", "RMSE, day after failures",
                    "same, affected links", "recovery (steps)", "recovered", "ms/step"])
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["scenario"], r["model"]), []).append(r)
    for (scenario, model), rs in groups.items():
        changes = [c for r in rs for c in r["changes"]]
        mean = statistics.fmean
        lines.append(row([
            scenario, model, ",".join(str(r["seed"]) for r in rs), f"{mean(r['rmse'] for r in rs):.3f}",
            f"{mean(r['mape'] for r in rs):.2f}", f"{mean(c['rmse_after'] for c in changes):.3f}",
            f"{mean(c['rmse_after_affected'] for c in changes):.3f}",
            f"{mean(c['recovery_or_limit'] for c in changes):.0f}",
            f"{sum(c['recovery_steps'] is not None for c in changes)}/{len(changes)}",
            f"{mean(r['ms_per_step'] for r in rs):.2f}"]))
    return "\n".join(lines)


def provenance() -> str:
    """Each results file: the command(s), when, on what, and the load average around its runs."""
    lines = header(["results file", "runs", "command", "date (UTC)", "machine", "load (1 min) around runs"])
    for path in (RESULTS / name for name in RESULT_FILES):
        runs = read(path.name)
        for command in dict.fromkeys(r["command"] for r in runs):
            mine = [r for r in runs if r["command"] == command]
            loads = [v for r in mine for x in (r.get("rounds") or [r]) for v in (x["load_before"][0],
                                                                                 x["load_after"][0])]
            dates = sorted(r["date"] for r in mine)
            m = mine[0]["machine"]
            when = dates[0][:16].replace("T", " ") + (f" to {dates[-1][11:16]}" if dates[-1] != dates[0] else "")
            lines.append(row([f"`{path.relative_to(ROOT)}`", len(mine), f"`{pretty(command)}`", when,
                              f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']}",
                              f"{min(loads):.1f}-{max(loads):.1f}"]))
    return "\n".join(lines)


def quote(arg: str) -> str:
    """A shell word, in double quotes where single ones would need escaping."""
    if re.fullmatch(r"[\w@%+=:,./-]+", arg):
        return arg
    if not re.search(r'["$`\\!]', arg):
        return f'"{arg}"'
    return shlex.quote(arg)


def pretty(command: str) -> str:
    """A recorded command line, quoted for reading; the interpreter given to MOA's runs, a path of the machine that
    ran them, as `$MOA_PYTHON`.

    >>> pretty("python benchmarks/suite.py --models 'a;b' --moa-python /tmp/capy/bin/python")
    'python benchmarks/suite.py --models "a;b" --moa-python "$MOA_PYTHON"'
    """
    words = shlex.split(command)
    return " ".join('"$MOA_PYTHON"' if i and words[i - 1] == "--moa-python" else quote(a) for i, a in enumerate(words))


def commands(*files: str) -> str:
    """The commands that wrote these results files, in the order they first appear, as a shell block."""
    seen = dict.fromkeys(pretty(r["command"]) for name in files for r in read(name))
    return "```bash\n" + "\n".join(seen) + "\n" + "python benchmarks/tables.py\n```"


# ---- reference tables ---------------------------------------------------------------------------------------------

def type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def submodel(annotation):
    """The settings class a field holds (also inside `X | None`), or None."""
    from pydantic import BaseModel

    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def default_text(field) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if value is None:
        return "none"
    return f"`{json.dumps(value)}`"


def settings_rows(cls, prefix: str = "") -> list[list[str]]:
    rows = []
    for name, field in cls.model_fields.items():
        key = f"{prefix}{name}"
        nested = submodel(field.annotation)
        env = "STREAM_MOE_" + key.upper().replace(".", "__")
        if nested is not None:
            optional = type(None) in typing.get_args(field.annotation)
            if optional:
                rows.append([f"`{key}`", f"`{env}__*`", "section or none", default_text(field),
                             field.description or ""])
            rows.extend(settings_rows(nested, key + "."))
            continue
        rows.append([f"`{key}`", f"`{env}`", type_name(field.annotation), default_text(field),
                     (field.description or "").replace("\n", " ")])
    return rows


def settings() -> str:
    """Every setting of `stream_moe/config.py`: key in a settings file, environment variable, type, default."""
    from stream_moe.config import Settings

    lines = header(["key", "environment variable", "type", "default", "what it sets"])
    lines += [row(r) for r in settings_rows(Settings)]
    return "\n".join(lines)


def metrics() -> str:
    """Every metric the service exposes on /metrics (`stream_moe/metrics.py`)."""
    from prometheus_client.metrics import MetricWrapperBase

    from stream_moe.metrics import ServiceMetrics

    service = ServiceMetrics()
    lines = header(["metric", "type", "labels", "what it counts"])
    for metric in vars(service).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        kind = metric._type
        name = metric._name + ("_total" if kind == "counter" else "")
        lines.append(row([f"`{name}`", kind, ", ".join(metric._labelnames) or "", metric._documentation]))
    return "\n".join(lines)


def modules() -> str:
    """The module map: every module of the packages and the first sentence of its docstring."""
    import ast

    lines = header(["module", "what it is"])
    for package in ("stream_moe", "connectors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__init__.py" and path.parent.name in ("stream_moe", "connectors"):
                continue
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            first = " ".join(doc.split("\n\n")[0].split())
            sentence = re.split(r"(?<=\.)\s+(?=[A-Z`])", first, maxsplit=1)[0].rstrip(".")
            if not sentence:
                continue
            name = path.relative_to(ROOT).as_posix()
            lines.append(row([f"`{name}`", sentence]))
    return "\n".join(lines)


def read_json(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


def soak() -> str:
    """The soak run of the service (`benchmarks/soak.py`): what was produced, and what became of it."""
    r = read_json("soak.json")
    if not r:
        return "(no soak results)"
    produced, letters = r["produced"], r["dead_letters_by_kind"]
    rss = r["rss_mib"]
    lines = header(["", "count"], ["---", "--:"])
    lines += [
        row(["minutes of traffic, SIGKILLs (every 60-120 s)", f"{r['minutes']:g}, {r['kills']}"]),
        row(["valid events produced", f"{produced['events']:,}"]),
        row(["of which labelled inline / labelled later / label first / never labelled",
             f"{produced['labelled_inline']:,} / {produced['labels_later']:,} / {produced['labels_first']:,} / "
             f"{produced['never_labelled']:,}"]),
        row(["events predicted (distinct ids) / missing", f"{r['predicted_distinct']:,} / {r['predicted_missing']}"]),
        row(["predictions sent (at least once: again after each kill)", f"{r['predictions_total']:,}"]),
        row(["events whose label was produced (expected learned)", f"{r['expected_learned']:,}"]),
        row(["learned, from the checkpoints", f"{r['learned']:,}"]),
        row(["lost (expected - learned)", f"{r['lost']}"]),
        row(["labels that came before their event, joined", f"{r['early_joined']:,}"]),
        row(["waiting at the end: events without a label / labels without an event",
             f"{r['pending']:,} / {r['early_waiting']}"]),
    ]
    for kind, count in r["malformed_produced"].items():
        lines.append(row([f"malformed `{kind}` produced / dead-lettered", f"{count:,} / {letters.get(kind, 0):,}"]))
    for kind in sorted(set(letters) - set(r["malformed_produced"])):
        lines.append(row([f"other dead letters: `{kind}`", f"{letters[kind]:,}"]))
    lines += [
        row(["service RSS, MiB: at 5 minutes / largest / at the end",
             f"{rss['after_first_5_min'][0]:.0f} / {rss['max']:.0f} / {rss['last']:.0f}"]),
        row(["load average (1 min), median", f"{r['loadavg_1m_median']:.1f}"]),
    ]
    return "\n".join(lines)


def serve_speed() -> str:
    """The service through the broker against offline replay (`benchmarks/serve_kafka.py`), run by run."""
    r = read_json("serve_kafka-sea_a-driftmoe-data.json")
    if not r:
        return "(no service speed results)"
    lines = header(["run", "load (1 min)", "replay /s", "service /s", "service / replay", "latency p50 / p99 ms",
                    "restart to first prediction s"], ["--:"] * 7)
    for i, run in enumerate(r["runs"], 1):
        lines.append(row([i, f"{run['loadavg_1m']:.1f}", f"{run['replay_per_s']:,.0f}", f"{run['serve_per_s']:,.0f}",
                          f"{run['serve_vs_replay']:.2f}", f"{run['latency_p50_ms']:.0f} / {run['latency_p99_ms']:.0f}",
                          f"{run['restart_to_first_prediction_s']:.1f}"]))
    m = r["median"]
    lines.append(row(["median", f"{m['loadavg_1m']:.1f}", f"{m['replay_per_s']:,.0f}", f"{m['serve_per_s']:,.0f}",
                      f"**{m['serve_vs_replay']:.2f}**", f"{m['latency_p50_ms']:.0f} / {m['latency_p99_ms']:.0f}",
                      f"{m['restart_to_first_prediction_s']:.1f}"]))
    return "\n".join(lines)


def checkpoint_stores() -> str:
    """Save and restore of a state in each checkpoint store (`benchmarks/checkpoint_store.py`): medians."""
    r = read_json("checkpoint_store.json")
    if not r:
        return "(no checkpoint store results)"
    lines = header(["store", "chunk KiB", "state MB", "save s (CPU s)", "restore s (CPU s)"],
                   ["---", "--:", "--:", "--:", "--:"])
    for store in r["stores"]:
        m = store["median"]
        lines.append(row([store["store"], store["chunk_kib"] or "", f"{store['state_mb']:g}",
                          f"{m['save_s']:.2f} ({m['save_cpu_s']:.2f})", f"{m['restore_s']:.2f} ({m['restore_cpu_s']:.2f})"]))
    return "\n".join(lines)


def router_bank() -> str:
    """Routing and training throughput of the router bank over separate routers (`benchmarks/router_bank.py`)."""
    r = read_json("router_bank-cpu.json")
    if not r:
        return "(no router bank results)"
    rows = sorted({x["rows"] for x in r["results"]})
    lines = header(["members", *[f"{n} rows: bank / separate" for n in rows]], ["--:"] * (len(rows) + 1))
    for members in sorted({x["members"] for x in r["results"]}):
        cells = {x["rows"]: x for x in r["results"] if x["members"] == members}
        lines.append(row([members, *[f"{cells[n]['speedup']['bank_over_separate']:.2f}x"
                                     f" ({cells[n]['ms_per_micro_batch']['bank']:.1f} ms)" if n in cells else ""
                                     for n in rows]]))
    return "\n".join(lines)


KEYED_CONFIGS = {"shared": "one model for every key", "own routers": "one model per key, each its own router",
                 "bank": "one model per key, routers in one bank"}


def keyed_serving() -> str:
    """One model per key through the embedded service against one shared model (`benchmarks/keyed_serving.py`):
    medians over rounds, and the bank's speed-up over own routers within each round."""
    r = read_json("keyed_serving.json")
    if not r:
        return "(no keyed serving results)"
    m = r["median"]
    lines = header(["configuration", "events/s", "prequential accuracy", "final checkpoint s (MB)"],
                   ["---", "--:", "--:", "--:"])
    for name, label in KEYED_CONFIGS.items():
        lines.append(row([label, f"{m[name]['events_per_s']:,.0f}", f"{100 * m[name]['accuracy']:.1f}%",
                          f"{m[name]['final_checkpoint_s']:.1f} ({m[name]['checkpoint_mb']:,.0f})"]))
    ratios = ", ".join(f"{x['bank_over_own']:.2f}" for x in r["rounds"])
    loads = [run["load"][0] for x in r["rounds"] for run in x["runs"].values()]
    lines.append(row([f"bank / own routers (rounds: {ratios}; load {min(loads):.1f}-{max(loads):.1f})",
                      f"**{m['bank_over_own']:.2f}x**", "", ""]))
    return "\n".join(lines)


def keyed_checkpoints() -> str:
    """Checkpoints of per-key models as blobs against a snapshot holding them all (`benchmarks/keyed_checkpoints.py`)."""
    r = read_json("keyed_checkpoints.json")
    if not r:
        return "(no keyed checkpoint results)"
    a, changed = r["settings"], r["changed"]
    lines = header(["checkpoint", "seconds", "MB written"], ["---", "--:", "--:"])
    lines.append(row([f"every model in the snapshot ({r['models']:,} models, {a['max_live']} live)",
                      f"{r['inline']['seconds']:.2f}", f"{r['inline']['mb']:,.1f}"]))
    lines.append(row(["first, every model put as a blob", f"{r['first']['seconds']:.2f}", f"{r['first']['mb']:,.1f}"]))
    lines.append(row([f"after {changed[0]['keys']} keys learned ({len(changed)} rounds of about "
                      f"{changed[0]['events']} events, median)", f"{r['changed_median']['seconds']:.2f}",
                      f"{r['changed_median']['mb']:,.1f}"]))
    lines.append(row(["nothing learned since", f"{r['unchanged']['seconds']:.2f}", f"{r['unchanged']['mb']:,.2f}"]))
    memory = r["spilled_in_memory_mb"]
    lines.append(row([f"spilled models in memory: {memory['before']:,.0f} MB before the first, {memory['after']:,.0f} "
                      f"after the last (load {r['load_before'][0]:.1f}-{r['load_after'][0]:.1f})", "", ""]))
    return "\n".join(lines)


def forecast_speed() -> str:
    """Milliseconds per forecaster step, all links one batch (`benchmarks/forecast_speed.py`)."""
    r = read_json("forecast_speed.json")
    if not r:
        return "(no forecast speed results)"
    lines = header(["model", "series", "ms/step (CPU)", "ms/step (wall)"], ["---", "--:", "--:", "--:"])
    for run in r["runs"]:
        lines.append(row([run["model"], f"{run['links']:,}", f"{run['cpu_ms']:.1f}", f"{run['wall_ms']:.1f}"]))
    return "\n".join(lines)


def forecast_network(kind: str) -> str:
    """The forecasters that know the network against persistence (`benchmarks/forecast_suite.py`, its own renderers):
    `targets` per scenario and seed, `means` over seeds; `ablation` the ways of telling a link CfC of failures."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import forecast_ablation  # noqa: PLC0415 (torch and the forecasters: loaded only for these tables)
    import forecast_suite  # noqa: PLC0415

    runs = read("forecast_network.jsonl")
    if kind == "ablation":
        return forecast_ablation.table(read("forecast_ablation.jsonl"), runs)
    return forecast_suite.target_table(runs) if kind == "targets" else forecast_suite.mean_table(runs)


TABLES: dict[str, typing.Callable[[], str]] = {
    "soak": soak, "serve-speed": serve_speed, "checkpoint-stores": checkpoint_stores, "router-bank": router_bank,
    "keyed-serving": keyed_serving, "keyed-checkpoints": keyed_checkpoints,
    "summary": summary, "accuracy": accuracy, "speed": speed, "forecast": forecast,
    "defaults": lambda: defaults(speed=True),
    "provenance": provenance, "settings": settings, "metrics": metrics, "modules": modules,
    "summary-commands": lambda: commands("accuracy.jsonl", "speed.jsonl"),
    "defaults-commands": lambda: commands("defaults.jsonl"),
    "broad": lambda: broad("accuracy"), "broad-speed": lambda: broad("speed"),
    "broad-commands": lambda: commands("broad.jsonl"),
    "broad-defaults": lambda: defaults("broad_defaults.jsonl", speed=True),
    "broad-defaults-commands": lambda: commands("broad_defaults.jsonl"),
    "split-speed": lambda: speed("split_speed.jsonl"), "split-speed-commands": lambda: commands("split_speed.jsonl"),
    "task": lambda: defaults("task.jsonl", speed=True, base_model="driftmoe-task"),
    "task-commands": lambda: commands("task.jsonl"),
    "first-instances": first_instances,
    "speed-moa": lambda: speed("speed_moa.jsonl"), "speed-moa-commands": lambda: commands("speed_moa.jsonl"),
    "forecast-commands": lambda: commands("forecast.jsonl"),
    "forecast-speed": forecast_speed,
    "forecast-network-targets": lambda: forecast_network("targets"),
    "forecast-network": lambda: forecast_network("means"),
    "forecast-ablation": lambda: forecast_network("ablation"),
    "forecast-network-commands": lambda: commands("forecast_network.jsonl", "forecast_ablation.jsonl"),
}


def rewrite(text: str, cache: dict | None = None) -> str:
    """The page with every generated region rendered afresh."""
    cache = {} if cache is None else cache

    def fill(match: re.Match) -> str:
        name = match.group(2)
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        if name not in cache:
            cache[name] = TABLES[name]()
        return f"{match.group(1)}{cache[name]}\n{match.group(4)}"

    return REGION.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only say which pages are out of date")
    parser.add_argument("--show", choices=sorted(TABLES), help="print one table")
    args = parser.parse_args(argv)
    if args.show:
        print(TABLES[args.show]())
        return 0
    cache: dict = {}
    stale = []
    for page in PAGES:
        text = page.read_text()
        new = rewrite(text, cache)
        if new != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(new)
    verb = "out of date" if args.check else "rewritten"
    for page in stale:
        print(f"{page}: {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
