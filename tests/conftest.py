"""Shared fixtures: where the real benchmark files are, and small streams."""

from __future__ import annotations

import pathlib

import pytest

from stream_moe.config import Settings

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dirs() -> list[pathlib.Path]:
    """The settings' data directories, resolved from the repository root (tests may run from anywhere)."""
    return [p if p.is_absolute() else REPO / p for p in Settings().data_dirs]


@pytest.fixture(scope="session")
def elec_path(data_dirs) -> pathlib.Path:
    from connectors.benchmarks import StreamUnavailable, find_file

    try:
        return find_file("elec", data_dirs)
    except StreamUnavailable as err:
        pytest.skip(str(err))


from kafka_broker import broker  # noqa: E402,F401  (the session's Kafka broker fixture)
