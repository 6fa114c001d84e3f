"""All settings in one pydantic-settings model: defaults, overridden by a YAML/TOML file, overridden by `STREAM_MOE_*`
environment variables (nested fields with `__`, e.g. `STREAM_MOE_LOOP__BATCH_SIZE=64`), overridden by command flags.

>>> Settings().loop.batch_size
32
"""

from __future__ import annotations

import os
import pathlib
import tomllib

import yaml
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class LoopSettings(BaseModel):
    batch_size: int = Field(32, ge=1, description="events per micro-batch at most")
    max_wait_ms: float = Field(50.0, ge=0, description="longest wait for a micro-batch to fill (live sources)")


class ModelSettings(BaseModel):
    name: str = Field("driftmoe-data", description="model name (see `stream-moe streams`)")
    size: int | None = Field(None, description="ensemble size: experts or members, for models that have one")
    params: dict = Field(default_factory=dict, description="further constructor parameters of the model")
    device: str = Field("auto", description="torch device of the router: auto, cpu or cuda")
    seed: int = 1


class EvaluationSettings(BaseModel):
    window: int = Field(1000, ge=1, description="instances in the sliding window of the windowed metrics")
    record_every: int = Field(1000, ge=1, description="instances between two points of the metrics history")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAM_MOE_", env_nested_delimiter="__", extra="forbid")

    data: str = Field(
        os.pathsep.join(["data", "../shared/data"]),
        description=f"directories searched for benchmark data files, separated by {os.pathsep!r}",
    )
    loop: LoopSettings = LoopSettings()
    model: ModelSettings = ModelSettings()
    evaluation: EvaluationSettings = EvaluationSettings()

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
