"""Settings refuse what they do not know, at every level of the file and in the environment, and say where."""

from __future__ import annotations

import pytest

from stream_moe.config import (
    SettingsError,
    Settings,
    check_environment,
    environment_names,
    load_settings,
)

# one misspelt key per section, nested as the file would hold it, and the setting it should suggest
MISSPELT = [
    ({"lop": {"batch_size": 5}}, "lop: unknown setting (did you mean loop?)"),
    ({"loop": {"batchsize": 5}}, "loop.batchsize: unknown setting (did you mean loop.batch_size?)"),
    ({"model": {"sead": 3}}, "model.sead: unknown setting (did you mean model.seed?)"),
    ({"forecast": {"horizn": 2}}, "forecast.horizn: unknown setting (did you mean forecast.horizon?)"),
    ({"evaluation": {"windw": 9}}, "evaluation.windw: unknown setting (did you mean evaluation.window?)"),
    ({"serve": {"embeded_stream": "sea_a"}}, "serve.embeded_stream: unknown setting (did you mean "
     "serve.embedded_stream?)"),
    ({"serve": {"kafka": {"topicz": ["a"]}}}, "serve.kafka.topicz: unknown setting (did you mean serve.kafka.topics?)"),
]


def write_yaml(tmp_path, data) -> str:
    import yaml

    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("data", "message"), MISSPELT, ids=[m.split(":")[0] for _, m in MISSPELT])
def test_an_unknown_key_is_refused_at_every_level(tmp_path, data, message):
    path = write_yaml(tmp_path, data)
    with pytest.raises(SettingsError) as refused:
        load_settings(path)
    assert str(refused.value) == f"{path}: {message}"


def test_free_form_mappings_take_any_key(tmp_path):
    path = write_yaml(tmp_path, {"model": {"params": {"top_k": 2}}, "serve": {"kafka": {"client": {"acks": "all"}}}})
    settings = load_settings(path)
    assert settings.model.params == {"top_k": 2} and settings.serve.kafka.client == {"acks": "all"}


def test_a_bad_value_names_its_setting_and_the_value(tmp_path):
    path = write_yaml(tmp_path, {"loop": {"batch_size": 0}, "serve": {"http_port": "web"}})
    with pytest.raises(SettingsError) as refused:
        load_settings(path)
    assert str(refused.value) == (
        f"{path}: loop.batch_size: input should be greater than or equal to 1, got 0; serve.http_port: input should "
        "be a valid integer, unable to parse string as an integer, got 'web'"
    )


@pytest.mark.parametrize(("text", "message"), [
    ("loop:\n  batch_size: [\n", "not valid YAML at line 3, column 1: expected the node content, but found"),
    ("- loop\n- model\n", "expected a mapping of sections (loop, model, serve, ...), found a list"),
])
def test_a_malformed_file_is_one_line(tmp_path, text, message):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match="^" + str(path) + ": " + message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        load_settings(path)


def test_a_malformed_toml_file_is_one_line(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[loop\nbatch_size = 3\n")
    with pytest.raises(SettingsError, match=f"^{path}: not valid TOML: "):
        load_settings(path)


def test_an_empty_file_means_the_defaults(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("# nothing set\n")
    assert load_settings(path) == Settings()


@pytest.mark.parametrize(("variable", "suggestion"), [
    ("STREAM_MOE_SERVE__EMBEDED_N", "STREAM_MOE_SERVE__EMBEDDED_N"),
    ("STREAM_MOE_LOOPS__BATCH_SIZE", "STREAM_MOE_LOOP__BATCH_SIZE"),
    ("STREAM_MOE_DATA_DIR", "STREAM_MOE_DATA"),
    ("STREAM_MOE_SERVE__KAFKA__GROUPID", "STREAM_MOE_SERVE__KAFKA__GROUP_ID"),
])
def test_an_unknown_variable_is_refused_with_the_closest_name(monkeypatch, variable, suggestion):
    monkeypatch.setenv(variable, "1")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value) == f"unknown setting {variable} in the environment (did you mean {suggestion}?)"


def test_an_unknown_variable_far_from_any_name_says_how_names_are_made():
    with pytest.raises(SettingsError, match=r"STREAM_MOE_XYZZY .*\(settings: STREAM_MOE_<SECTION>__<NAME>\)"):
        check_environment({"STREAM_MOE_XYZZY": "1"})


def test_every_setting_has_its_variable_and_known_ones_pass(monkeypatch):
    names, open_prefixes = environment_names()
    assert {"STREAM_MOE_DATA", "STREAM_MOE_LOOP", "STREAM_MOE_LOOP__BATCH_SIZE", "STREAM_MOE_SERVE__KAFKA__TOPICS",
            "STREAM_MOE_FORECAST__HORIZON", "STREAM_MOE_SERVE__EMBEDDED_N"} <= names
    assert open_prefixes == {"STREAM_MOE_MODEL__PARAMS__", "STREAM_MOE_SERVE__KAFKA__CLIENT__"}
    check_environment({"STREAM_MOE_MODEL__PARAMS__TOP_K": "2", "PATH": "/bin", "STREAM_MOE_SERVE__HTTP_PORT": "1"})
    monkeypatch.setenv("STREAM_MOE_SERVE__EMBEDDED_N", "77")
    monkeypatch.setenv("stream_moe_loop__batch_size", "5")  # names are not case-sensitive, as pydantic-settings reads
    settings = load_settings()
    assert settings.serve.embedded_n == 77 and settings.loop.batch_size == 5


def test_a_list_variable_that_is_not_json_is_one_line(monkeypatch):
    monkeypatch.setenv("STREAM_MOE_SERVE__KAFKA__TOPICS", "events")
    with pytest.raises(SettingsError, match=r"""given as JSON, e\.g\. '\["events"\]'"""):
        load_settings()
