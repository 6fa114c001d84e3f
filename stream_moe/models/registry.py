"""The models the command line knows by name, each with what its `--size` means.

Baselines are river's, with river's defaults unless overridden with `--param name=value`.

>>> build_model("arf", size=5, seed=3).n_models
5
>>> build_model("driftmoe-data", params={"top_k": 2}).top_k
2
>>> build_model("driftmoe-paper", size=6, seed=3).prediction
'top1'
"""

from __future__ import annotations

import dataclasses
import inspect
import typing

from river import base, ensemble, forest, tree

from stream_moe.models.driftmoe_data import DriftMoEData
from stream_moe.models.driftmoe_task import DriftMoETask
from stream_moe.models.fast_tree import FastHoeffdingTreeClassifier


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    factory: typing.Callable[..., base.Classifier]
    size_param: str | None
    description: str
    signature_of: typing.Callable | None = None  # the class whose parameters a wrapping factory forwards to


MODELS = {
    "driftmoe-data": ModelSpec(DriftMoEData, "n_experts", "DriftMoE, multi-class fast-tree experts (size: experts)"),
    "driftmoe-paper": ModelSpec(
        lambda **kw: DriftMoEData(**{**DriftMoEData.PAPER, **kw}),
        "n_experts",
        "DriftMoE-Data as published: top-1, router every 256, no detection or bagging, river's trees",
        DriftMoEData,
    ),
    "driftmoe-river": ModelSpec(
        lambda **kw: DriftMoEData(**{"experts": "river", **kw}),
        "n_experts",
        "DriftMoE-Data with river's trees, one instance at a time: the reference (size: experts)",
        DriftMoEData,
    ),
    "driftmoe-task": ModelSpec(DriftMoETask, None, "DriftMoE with one one-vs-rest expert per class"),
    "hoeffding-tree": ModelSpec(tree.HoeffdingTreeClassifier, None, "river's Hoeffding tree (VFDT)"),
    "fast-tree": ModelSpec(FastHoeffdingTreeClassifier, None, "river's Hoeffding tree in arrays, by micro-batch"),
    "hat": ModelSpec(tree.HoeffdingAdaptiveTreeClassifier, None, "river's Hoeffding adaptive tree"),
    "arf": ModelSpec(forest.ARFClassifier, "n_models", "river's adaptive random forest (size: trees)"),
    "srp": ModelSpec(ensemble.SRPClassifier, "n_models", "river's streaming random patches (size: members)"),
    "levbag": ModelSpec(
        lambda **kw: ensemble.LeveragingBaggingClassifier(model=kw.pop("model", tree.HoeffdingTreeClassifier()), **kw),
        "n_models",
        "river's leveraging bagging of Hoeffding trees (size: members)",
        ensemble.LeveragingBaggingClassifier,
    ),
}


def accepts(spec: ModelSpec, name: str) -> bool:
    """Whether a model's constructor takes parameter `name`."""
    return name in inspect.signature(spec.signature_of or spec.factory).parameters


def build_model(
    name: str, size: int | None = None, seed: int | None = None, device: str | None = None, params: dict | None = None
) -> base.Classifier:
    """A fresh model by name; `seed` and `device` are passed to models that take them."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    spec = MODELS[name]
    kwargs = dict(params or {})
    if size is not None:
        if spec.size_param is None:
            raise ValueError(f"model {name!r} has no size parameter")
        kwargs[spec.size_param] = size
    for key, value in (("seed", seed), ("device", device)):
        if value is not None and accepts(spec, key):
            kwargs.setdefault(key, value)
    return spec.factory(**kwargs)
