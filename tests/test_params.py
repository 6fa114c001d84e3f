"""`--param` values checked against the constructor: every model and forecaster takes its own defaults back, and a
misspelt name or a value of the wrong type is refused naming the parameter."""

from __future__ import annotations

import inspect

import pytest

from stream_moe.forecast.registry import FORECASTERS, build_forecaster
from stream_moe.models.registry import MODELS
from stream_moe.params import ParamError, check_params, parse_param


def defaults(cls) -> dict:
    return {n: p.default for n, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_takes_its_own_defaults(name):
    cls = MODELS[name].signature_of or MODELS[name].factory
    given = defaults(cls)
    assert check_params(cls, given, name) == given


@pytest.mark.parametrize("name", list(FORECASTERS))
def test_every_forecaster_takes_its_own_defaults(name):
    cls = type(build_forecaster(name, 24, device="cpu"))
    given = defaults(cls)
    assert check_params(cls, given, name) == given


@pytest.mark.parametrize(("params", "message"), [
    ({"n_expert": 4}, "driftmoe-data has no parameter 'n_expert' (did you mean n_experts?)"),
    ({"n_experts": 2.5}, "n_experts=2.5: expected int (default 16): Input should be a valid integer, got a number "
     "with a fractional part"),
    ({"hidden": 64}, "hidden=64: expected tuple[int, ...] (default (256, 128)): Input should be a valid tuple"),
    ({"expansion": "maybe"}, "expansion='maybe': expected bool (default False): Input should be a valid boolean"),
    ({"drift_detector": 0.1}, "drift_detector=0.1: expected str | river.base.drift_detector.DriftDetector | None"),
])
def test_a_bad_parameter_is_refused_naming_it(params, message):
    spec = MODELS["driftmoe-data"]
    with pytest.raises(ParamError) as refused:
        check_params(spec.signature_of or spec.factory, params, "driftmoe-data")
    assert str(refused.value).startswith(message)


def test_detection_can_be_switched_off_from_the_command_line():
    spec = MODELS["driftmoe-data"]
    given = dict(map(parse_param, ["drift_detector=None", "warning_detector=None"]))
    assert check_params(spec.signature_of or spec.factory, given, "driftmoe-data") == given == {
        "drift_detector": None, "warning_detector": None}


def test_values_are_converted_where_nothing_is_lost():
    spec = MODELS["driftmoe-data"]
    checked = check_params(spec.factory, dict(map(parse_param, ["hidden=[64, 32]", "lr=1", "top_k=2"])), "m")
    assert checked == {"hidden": (64, 32), "lr": 1.0, "top_k": 2} and isinstance(checked["lr"], float)
