"""All settings in one pydantic-settings model: defaults, overridden by a YAML/TOML file, overridden by `STREAM_MOE_*`
environment variables (nested fields with `__`, e.g. `STREAM_MOE_LOOP__BATCH_SIZE=64`), overridden by command flags.

>>> Settings().loop.batch_size
32
"""

from __future__ import annotations

import os
import pathlib
import tomllib
import typing

import yaml
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class LoopSettings(BaseModel):
    batch_size: int = Field(32, ge=1, description="events per micro-batch at most")
    max_wait_ms: float = Field(50.0, ge=0, description="longest wait for a micro-batch to fill (live sources)")


class ModelSettings(BaseModel):
    name: str = Field("driftmoe-data", description="model name (see `stream-moe streams`), or a forecaster's (cfc, "
                      "ltc, persistence, ...: see `stream-moe forecast --help`), configured by the forecast section")
    size: int | None = Field(None, description="ensemble size: experts or members, for models that have one")
    params: dict = Field(default_factory=dict, description="further constructor parameters of the model")
    device: str = Field("auto", description="torch device of the router: auto, cpu or cuda")
    seed: int = 1


class ForecastSettings(BaseModel):
    """How a forecaster is served (when `model.name` is one): events are {key, ts, value}, each series a link."""

    topology: str = Field("euro28", description="network whose link names are the series keys: euro28, abilene or "
                          "an edge-list file")
    keys: list[str] | None = Field(None, description="the series keys instead, in order (none: the topology's links)")
    season: int | None = Field(48, ge=1, description="steps per day, for the seasonal inputs (none: no season)")
    step_s: float | None = Field(None, gt=0, description="seconds between two samples; given, irregular gaps reach "
                                 "the forecaster as time spans (none: every new timestamp is one step)")
    horizon: int = Field(1, ge=1, description="steps forecast from each event's timestamp on")
    scenario: str = Field("euro28-drastic", description="embedded mode: the failure scenario (built-in or YAML file) "
                          "whose simulated link loads are served; its links must be the keys")


class EvaluationSettings(BaseModel):
    window: int = Field(1000, ge=1, description="instances in the sliding window of the windowed metrics")
    record_every: int = Field(1000, ge=1, description="instances between two points of the metrics history")


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field("localhost:9092", description="broker addresses, comma-separated")
    topics: list[str] = Field(["events"], description="input topics of JSON events (co-partitioned when several)")
    label_topic: str | None = Field(None, description="topic of later labels, keyed and partitioned like the events")
    prediction_topic: str | None = Field("predictions", description="where predictions go (none: metrics only)")
    dead_letter_topic: str | None = Field("dead-letters", description="where refused records go")
    group_id: str = Field("stream-moe", description="consumer group: replicas in one group split the partitions")
    session_timeout_ms: int = Field(10000, description="consumer group session timeout")
    client: dict = Field(
        default_factory=dict,
        description="further kafka-python client options, passed through (security_protocol, sasl_mechanism, "
        "sasl_plain_username, sasl_plain_password, ssl_cafile, ...)",
    )


class ServeSettings(BaseModel):
    kafka: KafkaSettings | None = Field(None, description="Kafka source and sinks; none: the embedded demo stream")
    features: list[str] | dict[str, typing.Literal["numeric", "nominal"]] | None = Field(
        None, description="classifiers: the feature names every event must have, or a mapping of them to their kind "
        "(numeric: a finite number; nominal: a string or an integer), checked before the model (none: any)")
    classes: list[str | int | bool] | None = Field(None, description="classifiers: known class labels (none: "
                                                   "any)")
    max_message_bytes: int = Field(65536, ge=1, description="larger messages are dead letters")
    checkpoint_dir: str = Field("results/serve/checkpoints", description="shared by all replicas: shard-<n>/")
    checkpoint_every_s: float = Field(5.0, gt=0, description="seconds between checkpoints (and offset commits)")
    checkpoint_keep: int = Field(3, ge=1, description="checkpoints kept per shard")
    pending_max_size: int = Field(100_000, ge=1, description="events waiting for a label, per shard, at most")
    pending_max_age_s: float = Field(3600.0, gt=0, description="longest wait for a label, in event time")
    early_label_max_size: int = Field(100_000, ge=1, description="labels waiting for their event, per shard, at "
                                      "most (the oldest are dead-lettered)")
    early_label_max_age_s: float = Field(3600.0, gt=0, description="longest wait of a label for its event, in event "
                                         "time (then dead-lettered)")
    recent_ids: int = Field(100_000, ge=0, description="event ids remembered per shard: a repeat is dead-lettered "
                            "(0: no check)")
    max_ts_ahead_s: float = Field(3600.0, gt=0, description="events stamped further ahead of processing time are "
                                  "dead-lettered (bad_ts) and do not move the event clock")
    dead_letter_max_bytes: int = Field(262_144, ge=1024, description="a dead letter larger than this as JSON has its "
                                       "raw record cut (length and sha256 kept)")
    allow_fresh_start: bool = Field(False, description="start a shard afresh when all its checkpoints are damaged "
                                    "(else refuse to start)")
    audit_learned_ids: bool = Field(False, description="keep every learned id in the checkpoint (tests, audits)")
    http_host: str = Field("127.0.0.1", description="address of /metrics, /healthz, /readyz")
    http_port: int = Field(9108, ge=0, le=65535, description="their port (0: any free port)")
    stall_after_s: float = Field(60.0, gt=0, description="/healthz fails when no batch finished for this long")
    shutdown_deadline_s: float = Field(30.0, gt=0, description="SIGTERM: drain, checkpoint and commit within this")
    out: str = Field("results/serve", description="embedded mode: predictions.jsonl and dead_letters.jsonl here")
    embedded_stream: str = Field("sea_a", description="embedded mode: the generated stream "
                                 "(classifiers; forecasters serve forecast.scenario)")
    embedded_n: int = Field(20_000, ge=1, description="embedded mode: its length in records")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAM_MOE_", env_nested_delimiter="__", extra="forbid")

    data: str = Field(
        os.pathsep.join(["data", "../shared/data"]),
        description=f"directories searched for benchmark data files, separated by {os.pathsep!r}",
    )
    loop: LoopSettings = LoopSettings()
    model: ModelSettings = ModelSettings()
    forecast: ForecastSettings = ForecastSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    serve: ServeSettings = ServeSettings()

    @property
    def data_dirs(self) -> list[pathlib.Path]:
        return [pathlib.Path(p) for p in self.data.split(os.pathsep) if p]

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings  # the environment overrides the file, which is passed as init values


def load_settings(path: str | pathlib.Path | None = None) -> Settings:
    """Settings from an optional YAML (.yaml/.yml) or TOML (.toml) file, then the environment."""
    if path is None:
        return Settings()
    path = pathlib.Path(path)
    text = path.read_text()
    values = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text) or {}
    return Settings(**values)
