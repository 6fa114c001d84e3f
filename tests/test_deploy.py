"""The deployment files stay valid: docker-compose.yml (parsed here; `docker compose config` where a client can run)
and the example service configuration."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest
import yaml

from stream_moe.config import load_settings

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_compose_file_has_broker_topics_and_service():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "create-topics", "stream-moe"}
    assert services["create-topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    service = services["stream-moe"]
    assert service["depends_on"]["create-topics"]["condition"] == "service_completed_successfully"
    assert "container_name" not in service, "a fixed name would prevent --scale stream-moe=2"
    assert all(":" not in str(p) for p in service["ports"]), "a fixed host port would prevent --scale"
    assert "9094:9094" in services["kafka"]["ports"]
    assert "volumes" not in service and "volumes" not in compose, "replicas share nothing but the broker"
    created = services["create-topics"]["command"][0]
    assert "--topic stream-moe-state" in created and "cleanup.policy=compact" in created


def test_example_service_config_loads():
    settings = load_settings(REPO / "deploy" / "service.yaml")
    assert settings.serve.kafka.topics == ["events"] and settings.serve.kafka.label_topic == "labels"
    assert settings.serve.checkpoint_store == "kafka" and settings.serve.checkpoint_topic == "stream-moe-state"


def test_example_forecast_config_loads():
    settings = load_settings(REPO / "deploy" / "forecast.yaml")
    assert settings.model.name == "cfc" and settings.forecast.topology == "euro28" and settings.forecast.horizon == 4


def test_docker_compose_config_parses():
    if shutil.which("docker") is None or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode:
        pytest.skip("no docker client with the compose plugin here")
    result = subprocess.run(["docker", "compose", "config", "--quiet"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_environment_overrides_the_file_field_by_field(monkeypatch):
    monkeypatch.setenv("STREAM_MOE_SERVE__KAFKA__BOOTSTRAP_SERVERS", "broker:1234")
    settings = load_settings(REPO / "deploy" / "service.yaml")
    assert settings.serve.kafka.bootstrap_servers == "broker:1234" and settings.serve.kafka.label_topic == "labels"
