"""The service's Prometheus metrics, in a registry of their own (so tests and several services in one process do
not collide), updated once per micro-batch from the loop's counts and the shards' state."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream_moe.events import DeadLetter, Prediction
from stream_moe.forecast.serving import ForecastPredictor, rolling_error
from stream_moe.keyed_models import KeyedModels
from stream_moe.loop import LoopStats
from stream_moe.shards import Shards

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """Counters, gauges and histograms of one service. It is also a prediction and a dead-letter sink: it observes
    the latency from each event's timestamp to its prediction and counts dead letters by kind."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.events_in = Counter("stream_moe_events_in", "records consumed", registry=r)
        self.predictions = Counter("stream_moe_predictions", "predictions emitted", registry=r)
        self.learned = Counter("stream_moe_learned", "labelled events learned", registry=r)
        self.labels_joined = Counter("stream_moe_labels_joined", "later labels joined to their events", registry=r)
        self.dead_letters = Counter("stream_moe_dead_letters", "refused records", ["kind"], registry=r)
        self.batch_seconds = Histogram("stream_moe_batch_seconds", "time to process a (non-empty) micro-batch", registry=r,
                                       buckets=LATENCY_BUCKETS)
        self.latency = Histogram("stream_moe_prediction_latency_seconds", "from event timestamp to prediction",
                                 registry=r, buckets=LATENCY_BUCKETS)
        self.lag = Gauge("stream_moe_consumer_lag", "records behind the end of the partition", ["topic", "partition"],
                         registry=r)
        self.accuracy = Gauge("stream_moe_rolling_accuracy", "accuracy over the evaluator's window", registry=r)
        self.forecast_error = Gauge("stream_moe_forecast_error", "one-step forecast error over the recent values "
                                    "of the owned forecasters", ["measure"], registry=r)
        self.drifts = Gauge("stream_moe_drifts", "drifts detected by the owned models", registry=r)
        self.expansions = Gauge("stream_moe_expansions", "experts added by the owned models", registry=r)
        self.experts = Gauge("stream_moe_experts_alive", "experts in the owned models' pools", registry=r)
        self.pending = Gauge("stream_moe_pending_labels", "predicted events waiting for a label", registry=r)
        self.pending_dropped = Gauge("stream_moe_pending_dropped", "waiting events dropped unlabelled", ["why"],
                                     registry=r)
        self.early_labels = Gauge("stream_moe_early_labels", "labels waiting for their event", registry=r)
        self.early_dropped = Gauge("stream_moe_early_labels_dropped", "labels dropped (dead-lettered) without their "
                                   "event", ["why"], registry=r)
        self.dead_letters_lost = Gauge("stream_moe_dead_letters_lost", "dead letters that no sink took (logged)",
                                       registry=r)
        self.shards = Gauge("stream_moe_shards_owned", "partitions (models) owned by this replica", registry=r)
        self.keyed_models = Gauge("stream_moe_keyed_models", "models per key in the owned shards (model_per key)",
                                  ["state"], registry=r)
        self.keyed_moves = Gauge("stream_moe_keyed_model_moves", "models per key spilled or reloaded, since the "
                                 "owned shards were made", ["move"], registry=r)
        self.checkpoint_age = Gauge("stream_moe_checkpoint_age_seconds", "since the last checkpoint", registry=r)
        self.checkpoint_seconds = Gauge("stream_moe_checkpoint_seconds", "time to write the last checkpoint",
                                        registry=r)
        self.checkpoint_bytes = Gauge("stream_moe_checkpoint_bytes", "size of the last checkpoint of the shards saved",
                                      registry=r)
        self._last = LoopStats()

    def write(self, items: list) -> None:
        now = time.time()
        for item in items:
            if isinstance(item, Prediction):
                if item.ts is not None:
                    self.latency.observe(max(0.0, now - item.ts))
            elif isinstance(item, DeadLetter):
                self.dead_letters.labels(item.kind).inc()

    def close(self) -> None:
        pass

    def update(self, stats: LoopStats, shards: Shards, accuracy: float | None, lag: dict, lost: int = 0) -> None:
        """After each batch: the counters' increments since the last call, and the gauges (`lost`: dead letters the
        sinks failed to deliver, besides those the loop saw fail)."""
        if stats.records > self._last.records:
            self.batch_seconds.observe(stats.last_batch_seconds)
        self.events_in.inc(stats.records - self._last.records)
        self.predictions.inc(stats.predictions - self._last.predictions)
        self.learned.inc(stats.learned - self._last.learned)
        self.labels_joined.inc(stats.labels_joined - self._last.labels_joined)
        self._last = LoopStats(**{k: getattr(stats, k) for k in ("records", "predictions", "learned", "labels_joined")})
        if accuracy is not None:
            self.accuracy.set(accuracy)
        for (topic, partition), value in lag.items():
            self.lag.labels(topic, str(partition)).set(value)
        owned = [shard for _, shard in shards]
        error = rolling_error([s.predictor for s in owned if isinstance(s.predictor, ForecastPredictor)])
        for measure, value in (error or {}).items():
            self.forecast_error.labels(measure).set(value)
        counts = [getattr(s.predictor.model, "counts_", {}) for s in owned]
        self.drifts.set(sum(c.get("drifts", 0) for c in counts))
        self.expansions.set(sum(c.get("expansions", 0) for c in counts))
        self.experts.set(sum(len(getattr(s.predictor.model, "pool_", ())) for s in owned))
        joins = [s.joins for s in owned]
        self.pending.set(sum(len(j.pending) for j in joins))
        self.pending_dropped.labels("evicted").set(sum(j.pending.evicted for j in joins))
        self.pending_dropped.labels("expired").set(sum(j.pending.expired for j in joins))
        self.early_labels.set(sum(len(j.early) for j in joins))
        self.early_dropped.labels("evicted").set(sum(j.early.evicted for j in joins))
        self.early_dropped.labels("expired").set(sum(j.early.expired for j in joins))
        self.dead_letters_lost.set(stats.dead_letters_lost + lost)
        self.shards.set(len(owned))
        keyed = [s.predictor.model for s in owned if isinstance(s.predictor.model, KeyedModels)]
        if keyed:
            self.keyed_models.labels("live").set(sum(len(k.live) for k in keyed))
            self.keyed_models.labels("spilled").set(sum(len(k.spilled) for k in keyed))
            self.keyed_moves.labels("spilled").set(sum(k.spills for k in keyed))
            self.keyed_moves.labels("reloaded").set(sum(k.reloads for k in keyed))
        if shards.saved_at is not None:
            self.checkpoint_age.set(time.time() - shards.saved_at)
            self.checkpoint_seconds.set(shards.save_seconds)
            self.checkpoint_bytes.set(shards.saved_bytes)
