"""Offline replay: a benchmark stream or a file through the event loop with a prequential evaluator attached."""

from __future__ import annotations

import dataclasses
import pathlib
import resource

import numpy as np
from tqdm import tqdm

from connectors.benchmarks import OpenedStream
from connectors.sinks import JsonlDeadLetterSink, JsonlPredictionSink
from stream_moe.evaluation import PrequentialEvaluator, write_json
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


def replay(stream: OpenedStream, predictor: Predictor, options: ReplayOptions) -> dict:
    """Run the stream to its end and return the report (also written under `options.out` when given)."""
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

    try:
        stats = loop.run(on_batch=show)
    finally:
        bar.close()
        stream.source.close()
        for sink in sinks:
            sink.close()
        if dead_letters is not None:
            dead_letters.close()

    report = {
        "stream": stream.name,
        "model": predictor.name,
        "params": {k: repr(v) for k, v in predictor.model._get_params().items()},
        **evaluator.report(),
        "records": stats.records,
        "learned": stats.learned,
        "dead_letters": stats.dead_letters,
        "first_dead_letters": dead_letters.first if dead_letters is not None else [],
        "seconds": stats.wall_seconds,
        "instances_per_s": stats.per_second,
        "model_instances_per_s": stats.model_per_second,
        "peak_rss_mib": peak_rss_mib(),
        "batch_size": options.batch_size,
        "window": options.window,
        "drifts": stream.drifts,
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
    return report
