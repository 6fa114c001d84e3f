"""`stream-moe serve`: the long-running service (Kafka in, predictions and dead letters out), or, without a Kafka
section in the settings, the same service on an embedded generated stream with JSONL outputs. It serves a classifier
(labelled feature events in, class predictions out) or, when the model is a forecaster, a forecaster (link loads in,
forecasts out)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import pathlib
import typing

from connectors.benchmarks import open_stream
from connectors.forecast_events import ForecastEventDecoder
from connectors.json_events import JsonEventDecoder
from connectors.kafka import KafkaDeadLetterSink, KafkaPredictionSink, KafkaSource, make_producer
from connectors.network.events import scenario_source
from connectors.network.scenario import load_scenario
from connectors.network.topology import load_topology
from connectors.sinks import JsonlDeadLetterSink, JsonlPredictionSink
from connectors.source import Decoder, Source
from stream_moe.config import ForecastSettings, KafkaSettings, ServeSettings, Settings, load_settings
from stream_moe.devices import resolve_device
from stream_moe.evaluation import PrequentialEvaluator
from stream_moe.forecast.registry import FORECASTERS
from stream_moe.forecast.serving import ForecastPredictor, served_demand_keys, served_keyed_forecaster
from stream_moe.http_server import OpsServer
from stream_moe.joins import JoinLimits
from stream_moe.kafka_store import KafkaStore
from stream_moe.keyed_models import KeyedPredictor
from stream_moe.logs import use_json_logs
from stream_moe.loop import EventLoop
from stream_moe.metrics import ServiceMetrics
from stream_moe.models.mixture import Mixture
from stream_moe.models.registry import MODELS, build_model
from stream_moe.models.router_bank import RouterBank
from stream_moe.predictor import Predictor
from stream_moe.service import Service
from stream_moe.shards import Shards

log = logging.getLogger("stream_moe.serve")

EPILOG = """\
examples:
  stream-moe serve                                  embedded demo: 20k SEA events -> results/serve/*.jsonl
  stream-moe serve --config deploy/service.yaml     Kafka in and out, as configured
  STREAM_MOE_SERVE__KAFKA__BOOTSTRAP_SERVERS=kafka:9092 STREAM_MOE_SERVE__KAFKA__TOPICS='["events"]' stream-moe serve
  stream-moe serve --model cfc                      embedded forecaster: Euro28 link loads through two failures
  stream-moe serve --config deploy/forecast.yaml    a forecaster on Kafka, as configured

Every setting of the `serve` section (see deploy/service.yaml) can also be set as STREAM_MOE_SERVE__<NAME>, nested
with __ (e.g. STREAM_MOE_SERVE__KAFKA__GROUP_ID, STREAM_MOE_SERVE__CHECKPOINT_DIR, STREAM_MOE_SERVE__HTTP_PORT), and
those of the `forecast` section as STREAM_MOE_FORECAST__<NAME>.
Input events are JSON: {"id", "key", "ts", "x": {...}, "y"}; a later {"id", "y"} labels an earlier event.
A forecaster (--model cfc, ltc, persistence, ...) reads {"id" (optional), "key": link, "ts": seconds, "value": load}
instead and answers each with {"y_pred": the forecast for its ts, "forecast": [that and the next horizon-1 steps],
...}, made before its value was learned; the events of one ts are one step of the network, so every link of a network
must be produced to one partition (e.g. with the network's name as the message key). A link failure or recovery is
{"event": "link_down" or "link_up", "key": link, "ts"}, on the same topic or another of the same partitioning: the
network forecasters (cfc-failure-aware, od-cfc; od-cfc also reads "origin>destination" demand values) re-route at once.
Metrics on http://127.0.0.1:9108/metrics, health on /healthz and /readyz. SIGTERM drains, checkpoints and commits.
"""


def settings_help() -> str:
    """Every serve setting with its environment variable, default and description, from the settings model."""
    lines = ["settings (in the `serve` and `forecast` sections of --config, or as environment variables):"]
    sections = (("STREAM_MOE_SERVE__", ServeSettings), ("STREAM_MOE_SERVE__KAFKA__", KafkaSettings),
                ("STREAM_MOE_FORECAST__", ForecastSettings))
    for prefix, model in sections:
        for name, field in model.model_fields.items():
            if name == "kafka":
                continue
            default = field.default_factory() if field.default_factory is not None else field.default
            lines.append(f"  {prefix}{name.upper()} (default {default!r}): {field.description}")
    return "\n".join(lines)


def register(p: argparse.ArgumentParser) -> None:
    from stream_moe.commands.arguments import existing_file, port

    p.description = ("Consume JSON events (Kafka, or an embedded demo stream), predict each, learn test-then-train, "
                     "publish predictions and dead letters; checkpoint atomically and commit offsets only after a "
                     "checkpoint.")
    p.epilog = EPILOG + "\n" + settings_help()
    p.add_argument("--config", type=existing_file, help="settings file (YAML or TOML)")
    p.add_argument("--model", choices=[*MODELS, *FORECASTERS],
                   help="model of every shard (default: the settings' model.name); a forecaster serves link loads")
    p.add_argument("--http-port", type=port, help="port of /metrics, /healthz, /readyz, 0 for any free port "
                   "(default: the settings' serve.http_port)")
    p.add_argument("--checkpoint-dir", help="checkpoint directory of the directory store, shared by all replicas "
                   "(default: the settings' serve.checkpoint_dir; serve.checkpoint_store: kafka needs none)")
    p.set_defaults(func=run)


@dataclasses.dataclass
class Served:
    """What serving a model takes besides the loop: a predictor per shard, the decoder of its input records, and the
    embedded stream (source and decoder) used without Kafka; `classifier` says whether predictions are scored."""

    make_predictor: typing.Callable[[], Predictor | ForecastPredictor]
    decoder: Decoder
    embedded: typing.Callable[[], tuple[Source, Decoder]]
    classifier: bool
    route_together: bool = False  # the shards' routers share a bank


def served_classifier(settings: Settings) -> Served:
    serve, m = settings.serve, settings.model

    def embedded():
        stream = open_stream(serve.embedded_stream, n=serve.embedded_n, seed=m.seed)
        return stream.source, stream.decoder

    def make_model():
        return build_model(m.name, size=m.size, seed=m.seed, device=m.device, params=m.params)

    prototype = make_model()
    bank_wanted = serve.router_bank == "on" or serve.router_bank == "auto" and resolve_device(m.device).type == "cuda"
    # one bank for the routers of every model of the process: a micro-batch routes the models it touches in one call
    bank = RouterBank(device=m.device, **prototype.router_settings) if bank_wanted and isinstance(
        prototype, Mixture) else None
    if serve.model_per == "key":
        def make_predictor() -> KeyedPredictor:
            return KeyedPredictor(make_model, m.name, serve.max_models, bank)
    else:
        def make_predictor() -> Predictor:
            return Predictor(make_model(), m.name, bank=bank)

    return Served(
        make_predictor,
        JsonEventDecoder(serve.features, serve.classes, serve.max_message_bytes),
        embedded,
        classifier=True,
        route_together=bank is not None,
    )


def served_forecaster(settings: Settings) -> Served:
    """One forecaster of all the keys per shard: a network's links must share a partition."""
    serve, m, f = settings.serve, settings.model, settings.forecast
    if serve.model_per == "key":
        raise ValueError("serve.model_per: key is for classifiers; a forecaster already keeps one series per key")
    keys = f.keys or [link.name for link in load_topology(f.topology).links]
    demand_keys = served_demand_keys(m.name, f)
    decoder = ForecastEventDecoder(keys, serve.max_message_bytes, demand_keys)

    def make_predictor() -> ForecastPredictor:
        keyed = served_keyed_forecaster(m, f, keys, demand_keys)
        return ForecastPredictor(keyed, m.name, window=settings.evaluation.window)

    def embedded():
        links = [link.name for link in load_topology(load_scenario(f.scenario).topology).links]
        if links != keys:
            raise ValueError(f"the links of scenario {f.scenario!r} are not the served keys (forecast.topology or "
                             "forecast.keys)")
        return scenario_source(f.scenario, seed=m.seed, limit=serve.embedded_n, demands=bool(demand_keys)), decoder

    return Served(make_predictor, decoder, embedded, classifier=False)


def build_service(settings: Settings) -> Service:
    """Assemble the source, decoder, checkpoint store, shards, sinks and metrics that the settings describe."""
    serve, m = settings.serve, settings.model
    served = served_forecaster(settings) if m.name in FORECASTERS else served_classifier(settings)
    store = None
    if serve.checkpoint_store == "kafka":
        if serve.kafka is None:
            raise ValueError("serve.checkpoint_store 'kafka' keeps checkpoints on the brokers of serve.kafka, which "
                             "is not set (without Kafka, use the directory store)")
        store = KafkaStore(serve.kafka.bootstrap_servers, serve.checkpoint_topic, serve.checkpoint_chunk_bytes,
                           serve.kafka.client)
        store.check()
    shards = Shards(
        served.make_predictor,
        checkpoint_dir=serve.checkpoint_dir if store is None else None,
        keep=serve.checkpoint_keep,
        limits=JoinLimits(serve.pending_max_size, serve.pending_max_age_s, serve.early_label_max_size,
                          serve.early_label_max_age_s, serve.recent_ids, serve.max_ts_ahead_s),
        audit=serve.audit_learned_ids,
        allow_fresh_start=serve.allow_fresh_start,
        store=store,
        route_together=served.route_together,
    )
    metrics = ServiceMetrics()
    kafka = None
    if serve.kafka is None:
        source, decoder = served.embedded()
        out = pathlib.Path(serve.out)
        sinks = [JsonlPredictionSink(out / "predictions.jsonl", m.name, "0")]
        dead_letters = [JsonlDeadLetterSink(out / "dead_letters.jsonl")]
    else:
        k = serve.kafka
        topics = [*k.topics, *([k.label_topic] if k.label_topic else [])]
        source = kafka = KafkaSource(k.bootstrap_servers, topics, k.group_id, k.session_timeout_ms, k.client)
        decoder = served.decoder
        producer = make_producer(k.bootstrap_servers, k.client)
        sinks = [KafkaPredictionSink(producer, k.prediction_topic, m.name, "0")] if k.prediction_topic else []
        # a letter must also fit the producer's requests, with room for the record's framing
        letter_bytes = min(serve.dead_letter_max_bytes, max(1024, k.client.get("max_request_size", 1_048_576) - 1024))
        dead_letters = [KafkaDeadLetterSink(producer, k.dead_letter_topic, letter_bytes)] if k.dead_letter_topic else []
    evaluator = PrequentialEvaluator(window=settings.evaluation.window, record_every=10**12)
    loop = EventLoop(
        source, decoder, shards, sinks=[*sinks, metrics], dead_letters=[*dead_letters, metrics],
        evaluator=evaluator if served.classifier else None,
        batch_size=settings.loop.batch_size, max_wait_s=settings.loop.max_wait_ms / 1000,
    )
    return Service(loop, metrics, serve.checkpoint_every_s, serve.shutdown_deadline_s, serve.stall_after_s, kafka)


def run(args) -> int:
    from connectors.kafka import check_reachable
    from stream_moe.errors import UsageError
    from stream_moe.params import ParamError, check_params

    use_json_logs(logging.getLogger().level)
    settings = load_settings(args.config)
    overrides = {"http_port": args.http_port, "checkpoint_dir": args.checkpoint_dir}
    settings.serve = settings.serve.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if args.model:
        settings.model = settings.model.model_copy(update={"name": args.model})
    m = settings.model
    if m.name not in MODELS and m.name not in FORECASTERS:
        raise UsageError("--model", f"unknown model {m.name!r} (settings model.name); known: "
                         f"{', '.join([*MODELS, *FORECASTERS])}")
    if m.name in MODELS:
        spec = MODELS[m.name]
        try:
            check_params(spec.signature_of or spec.factory, m.params, m.name)
        except ParamError as err:
            raise UsageError("--config", f"settings model.params: {err}") from None
    if settings.serve.kafka is not None:
        check_reachable(settings.serve.kafka.bootstrap_servers)
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
