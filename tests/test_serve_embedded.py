"""`stream-moe serve` without Kafka: the embedded demo stream, its outputs, resume from checkpoints, the metrics and
health endpoints; and the loop's label join, offline."""

from __future__ import annotations

import json
import urllib.request

from connectors.json_events import JsonEventDecoder
from connectors.sinks import ListSink
from connectors.source import IterableSource
from stream_moe.commands.serve import build_service
from stream_moe.config import Settings
from stream_moe.events import Position, Record
from stream_moe.http_server import OpsServer
from stream_moe.loop import EventLoop
from stream_moe.predictor import Predictor
from stream_moe.shards import Shards
from river import tree


def settings(tmp_path, n: int) -> Settings:
    return Settings(
        model={"name": "hoeffding-tree"},
        serve={"out": str(tmp_path / "out"), "checkpoint_dir": str(tmp_path / "ckpt"), "embedded_n": n},
    )


def test_embedded_serve_writes_predictions_and_resumes(tmp_path):
    service = build_service(settings(tmp_path, 500))
    ops = OpsServer("127.0.0.1", 0, service.metrics.registry, service.healthy, service.ready).start()
    try:
        assert urllib.request.urlopen(ops.address + "/healthz").status == 200
        stats = service.run()
        metrics = urllib.request.urlopen(ops.address + "/metrics").read().decode()
    finally:
        ops.stop()
    assert stats.predictions == stats.learned == 500
    assert "stream_moe_predictions_total 500.0" in metrics and "stream_moe_learned_total 500.0" in metrics
    assert "stream_moe_checkpoint_age_seconds" in metrics and "stream_moe_batch_seconds_bucket" in metrics
    lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 500 and set(json.loads(lines[0])) == {"id", "key", "y_pred", "proba", "experts", "model", "ts"}

    again = build_service(settings(tmp_path, 800)).run()  # a longer stream: resumes after the 500 already learned
    assert again.records == 300
    assert build_service(settings(tmp_path, 800)).shards.get(0).predictor.learned == 800


def test_loop_joins_later_labels_keeps_early_ones_and_dead_letters_repeats():
    records = [
        {"id": "a", "ts": 1, "x": {"f": 1.0}},
        {"id": "b", "ts": 2, "x": {"f": 2.0}, "y": "no"},
        {"id": "a", "y": "yes"},
        {"id": "zzz", "y": "yes"},
        {"id": "a", "y": "yes"},  # a second label: already joined
    ]
    source = IterableSource("in", (Record(json.dumps(r).encode(), Position("in", i)) for i, r in enumerate(records)))
    shards = Shards(lambda: Predictor(tree.HoeffdingTreeClassifier(), "ht"), audit=True)
    dead = ListSink()
    stats = EventLoop(source, JsonEventDecoder(), shards, dead_letters=[dead], batch_size=2).run()
    letters = dead.items
    shard = shards.get(0)
    assert (stats.predictions, stats.learned, stats.labels_joined) == (2, 2, 1)
    assert shard.learned_ids == ["b", "a"] and shard.predictor.learned == 2
    assert [(d.kind, d.position.offset) for d in letters] == [("unknown_id", 4)]
    assert "zzz" in shard.joins.early  # may still come: its label waits for it
    assert shard.positions == {("in", 0): 5}
