"""Offline replay: a benchmark stream or a file through the event loop with a prequential evaluator attached.

A replay that stops early still writes its results, marked incomplete: on Ctrl-C (the batch in hand is finished; a
second Ctrl-C stops at once) and when the source fails (a file cut short), which `ReplayFailed` then reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import resource
import signal
import sys
import threading

import numpy as np
from tqdm import tqdm

from connectors.benchmarks import OpenedStream
from connectors.sinks import JsonlDeadLetterSink, JsonlPredictionSink
from stream_moe.compilation import CompileClock
from stream_moe.errors import one_line
from stream_moe.evaluation import PrequentialEvaluator, json_value, write_json
from stream_moe.loop import EventLoop
from stream_moe.plots import plot_accuracy, plot_pool_size
from stream_moe.predictor import Predictor
from stream_moe.shards import Shards


@dataclasses.dataclass
class ReplayOptions:
    batch_size: int = 32
    window: int = 1000
    record_every: int = 1000
    out: pathlib.Path | None = None  # results.json, history.csv, accuracy.png, dead_letters.jsonl
    predictions: pathlib.Path | None = None  # JSONL of every prediction
    progress: bool = True
    run: dict = dataclasses.field(default_factory=dict)  # recorded as is: version, command line, start, requested n


class ReplayFailed(Exception):
    """The source or the model failed mid-replay; `report` holds the results up to then (written, when there is an
    `out`), and the cause is chained."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def expert_usage(model) -> dict | None:
    """Per-expert training counts and top-1 routing shares of a mixture, for the report."""
    usage = getattr(model, "usage_", None)
    if usage is None:
        return None
    report = {"learned": np.asarray(usage).tolist()}
    routed = getattr(model, "routed_", None)
    if routed is not None:
        total = max(int(np.sum(routed)), 1)
        report["top1_share"] = [round(int(r) / total, 4) for r in routed]
    return report


def adaptation(model) -> dict | None:
    """Drift, expansion and pruning counts and the pool size history of an adaptive mixture, for the report."""
    counts = getattr(model, "counts_", None)
    if counts is None:
        return None
    sizes = model.pool_sizes_
    return {**counts, "pool_sizes": sizes, "final_experts": sizes[-1][1], "max_experts": max(k for _, k in sizes)}


def detected_drifts(model) -> list[dict]:
    """Where (instance index) an adaptive mixture's detectors signalled a drift, on which expert, and whether the
    expert was replaced or kept (its background expert was not better)."""
    actions = {"drifts": "replaced", "kept": "kept"}
    return [{"at": at, "expert": expert, "action": actions[kind]}
            for at, kind, expert in getattr(model, "events_", ()) if kind in actions]


@contextlib.contextmanager
def stop_on_interrupt(loop: EventLoop):
    """While inside, a first Ctrl-C asks the loop to stop after the batch in hand (a second raises
    KeyboardInterrupt as usual); yields a list that holds True once it was asked. Outside the main thread, where no
    signal handler can be set, Ctrl-C keeps its usual meaning."""
    asked: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return

    def stop(signum, frame):
        print("\nstopping after the batch in hand (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
        asked.append(True)
        loop.stop()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield asked
    finally:
        signal.signal(signal.SIGINT, previous)


def replay(stream: OpenedStream, predictor: Predictor, options: ReplayOptions) -> dict:
    """Run the stream to its end (or until Ctrl-C) and return the report (also written under `options.out` when
    given); raises `ReplayFailed` if the source or the model fails, after writing the results up to then.

    Throughput leaves out the time numba spends compiling kernels (`compile_seconds`): a first run compiles them,
    later ones load them from the cache."""
    evaluator = PrequentialEvaluator(window=options.window, record_every=options.record_every)
    sinks = []
    if options.predictions is not None:
        sinks.append(JsonlPredictionSink(options.predictions, predictor.name, predictor.version))
    dead_letters = None
    if options.out is not None:
        options.out.mkdir(parents=True, exist_ok=True)
        dead_letters = JsonlDeadLetterSink(options.out / "dead_letters.jsonl")
    loop = EventLoop(
        stream.source, stream.decoder, Shards(lambda: predictor), sinks=sinks,
        dead_letters=[dead_letters] if dead_letters is not None else [], evaluator=evaluator,
        batch_size=options.batch_size,
    )
    bar = tqdm(total=stream.length, unit="ev", desc=f"{predictor.name} on {stream.name}", disable=not options.progress)

    def show(stats) -> None:
        bar.update(stats.records - bar.n)
        if stats.batches % 50 == 0:
            bar.set_postfix(acc=f"{100 * evaluator.cumulative()['accuracy']:.2f}%", dead=stats.dead_letters)

    def announce(text: str) -> None:
        bar.write(text, file=sys.stderr)

    stopped, failure = None, None
    try:
        with stop_on_interrupt(loop) as interrupted, CompileClock(announce) as compiling:
            try:
                loop.run(on_batch=show)
            except KeyboardInterrupt:
                interrupted.append(True)
        if interrupted:
            stopped = "interrupted"
    except Exception as err:
        failure = err
        stopped = f"failed: {one_line(err)}"
    finally:
        bar.close()
        stream.source.close()
        for sink in sinks:
            sink.close()
        if dead_letters is not None:
            dead_letters.close()

    stats = loop.stats
    measured = max(stats.wall_seconds - compiling.seconds, 1e-9)
    report = {
        "stream": stream.name,
        "model": predictor.name,
        "params": json_value(predictor.model._get_params()),
        **options.run,
        "complete": stopped is None,
        "stopped": stopped,
        **evaluator.report(),
        "records": stats.records,
        "learned": stats.learned,
        "dead_letters": stats.dead_letters,
        "first_dead_letters": dead_letters.first if dead_letters is not None else [],
        "seconds": measured,
        "compile_seconds": compiling.seconds,
        "instances_per_s": stats.records / measured,
        "model_instances_per_s": stats.records / max(stats.model_seconds - compiling.seconds, 1e-9),
        "peak_rss_mib": peak_rss_mib(),
        "batch_size": options.batch_size,
        "window": options.window,
        "true_drifts": stream.drifts,
        "detected_drifts": detected_drifts(predictor.model),
        "expert_usage": expert_usage(predictor.model),
        "adaptation": adaptation(predictor.model),
    }
    if options.out is not None:
        write_json(options.out / "results.json", report)
        evaluator.write_history_csv(options.out / "history.csv")
        if evaluator.history:
            title = f"{predictor.name} on {stream.name}: {100 * report['accuracy']:.2f}% accuracy"
            plot_accuracy(evaluator.history, stream.drifts, options.out / "accuracy.png", title)
        if report["adaptation"]:
            sizes = report["adaptation"]["pool_sizes"]
            title = f"{predictor.name} on {stream.name}: experts alive"
            plot_pool_size(sizes, report["n"], stream.drifts, options.out / "pool_size.png", title)
    if failure is not None:
        raise ReplayFailed(one_line(failure), report) from failure
    return report
