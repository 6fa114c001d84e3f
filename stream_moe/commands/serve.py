"""`stream-moe serve`: the long-running service (Kafka in, predictions and dead letters out), or, without a Kafka
section in the settings, the same service on an embedded generated stream with JSONL outputs."""

from __future__ import annotations

import argparse
import logging
import pathlib

from connectors.benchmarks import open_stream
from connectors.json_events import JsonEventDecoder
from connectors.kafka import KafkaDeadLetterSink, KafkaPredictionSink, KafkaSource, make_producer
from connectors.sinks import JsonlDeadLetterSink, JsonlPredictionSink
from stream_moe.config import Settings, load_settings
from stream_moe.evaluation import PrequentialEvaluator
from stream_moe.http_server import OpsServer
from stream_moe.logs import use_json_logs
from stream_moe.loop import EventLoop
from stream_moe.metrics import ServiceMetrics
from stream_moe.models.registry import MODELS, build_model
from stream_moe.pending import PendingLabels
from stream_moe.predictor import Predictor
from stream_moe.service import Service
from stream_moe.shards import Shards

log = logging.getLogger("stream_moe.serve")

EPILOG = """\
examples:
  stream-moe serve                                  embedded demo: 20k SEA events -> results/serve/*.jsonl
  stream-moe serve --config deploy/service.yaml     Kafka in and out, as configured
  STREAM_MOE_SERVE__KAFKA__BOOTSTRAP_SERVERS=kafka:9092 STREAM_MOE_SERVE__KAFKA__TOPICS='["events"]' stream-moe serve

Every setting of the `serve` section (see deploy/service.yaml) can also be set as STREAM_MOE_SERVE__<NAME>, nested
with __ (e.g. STREAM_MOE_SERVE__KAFKA__GROUP_ID, STREAM_MOE_SERVE__CHECKPOINT_DIR, STREAM_MOE_SERVE__HTTP_PORT).
Input events are JSON: {"id", "key", "ts", "x": {...}, "y"}; a later {"id", "y"} labels an earlier event.
Metrics on http://127.0.0.1:9108/metrics, health on /healthz and /readyz. SIGTERM drains, checkpoints and commits.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the service: consume events, predict, learn from labels, publish predictions",
        description="Consume JSON events (Kafka, or an embedded demo stream), predict each, learn test-then-train, "
        "publish predictions and dead letters; checkpoint atomically and commit offsets only after a checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=pathlib.Path, help="settings file (YAML or TOML)")
    p.add_argument("--model", choices=list(MODELS), help="model of every shard (default: the settings' model.name)")
    p.add_argument("--http-port", type=int, help="port of /metrics, /healthz, /readyz (0: any free port)")
    p.add_argument("--checkpoint-dir", help="checkpoint directory (shared by all replicas)")
    p.set_defaults(func=run)


def build_service(settings: Settings) -> Service:
    """Assemble the source, decoder, shards, sinks and metrics that the settings describe."""
    serve, m = settings.serve, settings.model

    def make_predictor() -> Predictor:
        return Predictor(build_model(m.name, size=m.size, seed=m.seed, device=m.device, params=m.params), m.name)

    shards = Shards(
        make_predictor,
        checkpoint_dir=serve.checkpoint_dir,
        keep=serve.checkpoint_keep,
        pending=lambda: PendingLabels(serve.pending_max_size, serve.pending_max_age_s),
        audit=serve.audit_learned_ids,
    )
    metrics = ServiceMetrics()
    kafka = None
    if serve.kafka is None:
        stream = open_stream(serve.embedded_stream, n=serve.embedded_n, seed=m.seed)
        source, decoder = stream.source, stream.decoder
        out = pathlib.Path(serve.out)
        sinks = [JsonlPredictionSink(out / "predictions.jsonl", m.name, "0")]
        dead_letters = [JsonlDeadLetterSink(out / "dead_letters.jsonl")]
    else:
        k = serve.kafka
        topics = [*k.topics, *([k.label_topic] if k.label_topic else [])]
        source = kafka = KafkaSource(k.bootstrap_servers, topics, k.group_id, k.session_timeout_ms, k.client)
        decoder = JsonEventDecoder(serve.features, serve.classes, serve.max_message_bytes)
        producer = make_producer(k.bootstrap_servers, k.client)
        sinks = [KafkaPredictionSink(producer, k.prediction_topic, m.name, "0")] if k.prediction_topic else []
        dead_letters = [KafkaDeadLetterSink(producer, k.dead_letter_topic)] if k.dead_letter_topic else []
    loop = EventLoop(
        source, decoder, shards, sinks=[*sinks, metrics], dead_letters=[*dead_letters, metrics],
        evaluator=PrequentialEvaluator(window=settings.evaluation.window, record_every=10**12),
        batch_size=settings.loop.batch_size, max_wait_s=settings.loop.max_wait_ms / 1000,
    )
    return Service(loop, metrics, serve.checkpoint_every_s, serve.shutdown_deadline_s, serve.stall_after_s, kafka)


def run(args) -> int:
    use_json_logs(logging.getLogger().level)
    settings = load_settings(args.config)
    overrides = {"http_port": args.http_port, "checkpoint_dir": args.checkpoint_dir}
    settings.serve = settings.serve.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if args.model:
        settings.model = settings.model.model_copy(update={"name": args.model})
    service = build_service(settings)
    ops = OpsServer(settings.serve.http_host, settings.serve.http_port, service.metrics.registry, service.healthy,
                    service.ready).start()
    log.info("ops endpoints", extra={"address": ops.address})
    try:
        stats = service.run()
    finally:
        ops.stop()
    print(f"served {stats.records} records: {stats.predictions} predictions, {stats.learned} learned, "
          f"{stats.dead_letters} dead letters, {stats.per_second:.0f} records/s")
    return 0
