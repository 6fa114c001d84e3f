"""All settings in one pydantic-settings model: defaults, overridden by a YAML/TOML file, overridden by `STREAM_MOE_*`
environment variables (nested fields with `__`, e.g. `STREAM_MOE_LOOP__BATCH_SIZE=64`), overridden by command flags.

What the model does not know is refused, at every level: a key of the file, a `STREAM_MOE_*` variable (with the
closest known name suggested). Every refusal is a `SettingsError` whose message is one line naming the setting.

>>> Settings().loop.batch_size
32
"""

from __future__ import annotations

import difflib
import os
import pathlib
import tomllib
import types
import typing

import pydantic
import pydantic_settings
import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "STREAM_MOE_"
ENV_NESTING = "__"


class SettingsError(ValueError):
    """Settings that cannot be used: an unreadable or malformed file, an unknown key or variable, a bad value."""


class Section(BaseModel):
    """A section of the settings: unknown keys are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class LoopSettings(Section):
    batch_size: int = Field(32, ge=1, description="events per micro-batch at most")
    max_wait_ms: float = Field(50.0, ge=0, description="longest wait for a micro-batch to fill (live sources)")


class ModelSettings(Section):
    name: str = Field("driftmoe-data", description="model name (see `stream-moe streams`), or a forecaster's (cfc, "
                      "ltc, persistence, ...: see `stream-moe forecast --help`), configured by the forecast section")
    size: int | None = Field(None, description="ensemble size: experts or members, for models that have one")
    params: dict = Field(default_factory=dict, description="further constructor parameters of the model")
    device: str = Field("auto", description="torch device of the router: auto, cpu or cuda")
    seed: int = 1


class ForecastSettings(Section):
    """How a forecaster is served (when `model.name` is one): events are {key, ts, value}, each series a link."""

    topology: str = Field("euro28", description="network whose link names are the series keys: euro28, abilene or "
                          "an edge-list file")
    keys: list[str] | None = Field(None, description="the series keys instead, in order (none: the topology's links)")
    season: int | None = Field(48, ge=1, description="steps per day, for the seasonal inputs (none: no season)")
    step_s: float | None = Field(None, gt=0, description="seconds between two samples; given, irregular gaps reach "
                                 "the forecaster as time spans (none: every new timestamp is one step)")
    horizon: int = Field(1, ge=1, description="steps forecast from each event's timestamp on")
    routing: typing.Literal["hops", "weight"] = Field("hops", description="how the network routes, for the "
                                                      "forecasters that know it: shortest paths by hop count or by "
                                                      "the topology's link weights (the built-in scenarios: hops)")
    pairs: list[str] | None = Field(None, description="OD pair series 'origin>destination' of a forecaster of "
                                    "demands (od-cfc), in order (none: every ordered pair of the topology's nodes)")
    scenario: str = Field("euro28-drastic", description="embedded mode: the failure scenario (built-in or YAML file) "
                          "whose simulated link loads are served; its links must be the keys")


class EvaluationSettings(Section):
    window: int = Field(1000, ge=1, description="instances in the sliding window of the windowed metrics")
    record_every: int = Field(1000, ge=1, description="instances between two points of the metrics history")


class KafkaSettings(Section):
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


class ServeSettings(Section):
    kafka: KafkaSettings | None = Field(None, description="Kafka source and sinks; none: the embedded demo stream")
    features: list[str] | dict[str, typing.Literal["numeric", "nominal"]] | None = Field(
        None, description="classifiers: the feature names every event must have, or a mapping of them to their kind "
        "(numeric: a finite number; nominal: a string or an integer), checked before the model (none: any)")
    classes: list[str | int | bool] | None = Field(None, description="classifiers: known class labels (none: "
                                                   "any)")
    model_per: typing.Literal["partition", "key"] = Field(
        "partition", description="classifiers: one model per input partition, or one per event key within it")
    router_bank: typing.Literal["auto", "on", "off"] = Field(
        "auto", description="the mixtures' routers of all the process's models in one router bank, routed in one call "
        "per micro-batch (auto: when the router runs on CUDA; on the CPU per-key serving measured 0.98x with a bank, "
        "benchmarks/keyed_serving.py)")
    max_models: int = Field(1000, ge=1, description="model_per key: live models per shard at most; the least recently "
                            "used are spilled (compressed; put in the checkpoint store by the next checkpoint) and "
                            "reloaded when their key returns")
    max_message_bytes: int = Field(65536, ge=1, description="larger messages are dead letters")
    checkpoint_store: typing.Literal["directory", "kafka"] = Field(
        "directory", description="where shard checkpoints are kept: directory (checkpoint_dir, which every replica "
        "must share) or kafka (checkpoint_topic on the serve.kafka brokers: replicas share nothing else)")
    checkpoint_dir: str = Field("results/serve/checkpoints", description="directory store: shared by all replicas: "
                                "shard-<n>/")
    checkpoint_topic: str = Field("stream-moe-state", description="kafka store: the compacted topic of the "
                                  "checkpoints, created beforehand with as many partitions as the input topics")
    checkpoint_chunk_bytes: int = Field(512 * 1024, ge=1024, description="kafka store: a checkpoint is cut in "
                                        "records of this size at most (below the brokers' message.max.bytes)")
    checkpoint_every_s: float = Field(5.0, gt=0, description="seconds between checkpoints (and offset commits)")
    checkpoint_keep: int = Field(3, ge=1, description="checkpoints kept per shard (directory store; the kafka store "
                                 "keeps two)")
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
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTING, extra="forbid")

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


def load_settings(path: str | pathlib.Path | None = None, environ: typing.Mapping[str, str] | None = None) -> Settings:
    """Settings from an optional YAML (.yaml/.yml) or TOML (.toml) file, then the environment; raises `SettingsError`
    (one line, naming the file and the setting) for anything it cannot use."""
    check_environment(os.environ if environ is None else environ)
    values = {} if path is None else read_settings_file(pathlib.Path(path))
    try:
        return Settings(**values)
    except pydantic.ValidationError as err:
        where = f"{path}: " if path is not None else ""
        raise SettingsError(where + describe_errors(err)) from None
    except pydantic_settings.SettingsError as err:  # a variable holding a list or mapping that is not JSON
        cause = f": {err.__cause__}" if err.__cause__ is not None else ""
        raise SettingsError(f"{err} (lists and mappings are given as JSON, e.g. '[\"events\"]'){cause}") from None


def read_settings_file(path: pathlib.Path) -> dict:
    """The mapping a settings file holds."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SettingsError(f"{path}: cannot read the settings file: {getattr(err, 'strerror', None) or err}") from None
    try:
        values = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except tomllib.TOMLDecodeError as err:
        raise SettingsError(f"{path}: not valid TOML: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SettingsError(f"{path}: not valid YAML{at}: {problem}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise SettingsError(f"{path}: expected a mapping of sections (loop, model, serve, ...), found a "
                            f"{type(values).__name__}")
    return values


def _section(annotation) -> type[BaseModel] | None:
    """The settings model an annotation holds (`KafkaSettings | None` holds `KafkaSettings`), if any."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) or typing.get_origin(
        annotation) is typing.Union else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _fields_at(path: typing.Sequence[str]) -> list[str]:
    """The field names of the section at `path` (e.g. ("serve", "kafka")), or none when it is not a section."""
    model: type[BaseModel] | None = Settings
    for name in path:
        field = model.model_fields.get(name) if model is not None else None
        model = _section(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


def describe_errors(err: pydantic.ValidationError) -> str:
    """The validation errors on one line, each naming its setting by its dotted path.

    >>> try:
    ...     Settings(loop={"batchsize": 5})
    ... except pydantic.ValidationError as err:
    ...     describe_errors(err)
    'loop.batchsize: unknown setting (did you mean loop.batch_size?)'
    """
    parts = []
    for error in err.errors():
        loc = [str(p) for p in error["loc"]]
        where = ".".join(loc)
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(loc[-1], _fields_at(loc[:-1]), n=1)
            hint = f" (did you mean {'.'.join([*loc[:-1], close[0]])}?)" if close else ""
            parts.append(f"{where}: unknown setting{hint}")
        else:
            shown = repr(error.get("input"))
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            parts.append(f"{where}: {error['msg'][:1].lower()}{error['msg'][1:]}, got {shown}")
    return "; ".join(parts)


def environment_names(model: type[BaseModel] = None, prefix: str = ENV_PREFIX) -> tuple[set[str], set[str]]:
    """The `STREAM_MOE_*` variables the settings read: the names of every section and setting, and the prefixes
    under which any name is taken (the free-form mappings `model.params` and `serve.kafka.client`)."""
    model = model or Settings
    names, open_prefixes = set(), set()
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        names.add(env)
        section = _section(field.annotation)
        if section is not None:
            inner_names, inner_open = environment_names(section, env + ENV_NESTING)
            names |= inner_names
            open_prefixes |= inner_open
        elif typing.get_origin(field.annotation) is dict or field.annotation is dict:
            open_prefixes.add(env + ENV_NESTING)
    return names, open_prefixes


def check_environment(environ: typing.Mapping[str, str]) -> None:
    """Refuse a `STREAM_MOE_*` variable that names no setting, suggesting the closest one that does.

    >>> check_environment({"STREAM_MOE_SERVE__EMBEDED_N": "5"})
    Traceback (most recent call last):
    ...
    stream_moe.config.SettingsError: unknown setting STREAM_MOE_SERVE__EMBEDED_N in the environment (did you mean STREAM_MOE_SERVE__EMBEDDED_N?)
    """
    names, open_prefixes = environment_names()
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith(ENV_PREFIX) or upper in names or upper.startswith(tuple(open_prefixes)):
            continue
        close = difflib.get_close_matches(upper, names, n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else f" (settings: {ENV_PREFIX}<SECTION>{ENV_NESTING}<NAME>)"
        raise SettingsError(f"unknown setting {variable} in the environment{hint}")
