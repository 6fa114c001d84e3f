"""DriftMoE-Task: one one-vs-rest expert per class, whose answers the router weighs by how reliable each is here."""

from __future__ import annotations

import numpy as np
from river import base

from stream_moe.models.experts import ExpertPool
from stream_moe.models.mixture import Mixture


class DriftMoETask(Mixture):
    """Mixture with one one-vs-rest expert per class (MoE-Task of Aspis et al. 2025), created as classes appear.

    Every expert learns every instance (its target: is this my class?). The router has one output per expert and
    learns the multi-hot mask of the experts whose yes/no answer was right (when none was, the one closest to right).
    Its sigmoid output r_c is thus the estimated reliability of expert c at x, and with p_c the expert's probability
    that the class is c, the prediction is proportional to

        q_c = r_c * p_c + (1 - r_c) * (1 - p_c)

    i.e. trust the expert where it is reliable, its opposite where it is reliably wrong, and nothing where it is a coin
    toss. The experts therefore decide the prediction (in the published code the router alone did, an online MLP).

    Parameters are those of `DriftMoEData` that apply here.

    Examples
    --------
    >>> from river.datasets import synth
    >>> from river import metrics
    >>> model = DriftMoETask(router_batch=32, device="cpu", seed=1)
    >>> metric = metrics.Accuracy()
    >>> for x, y in synth.SEA(seed=1, noise=0.1).take(2000):
    ...     metric.update(y, model.predict_one(x))
    ...     model.learn_one(x, y)
    >>> metric
    Accuracy: 87.25%
    >>> len(model.pool_)
    2
    """

    def __init__(
        self,
        expert: base.Classifier | None = None,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.2,
        lr: float = 2e-3,
        router_batch: int = 256,
        router_epochs: int = 1,
        balance_weight: float = 0.0,
        device: str = "auto",
        seed: int = 0,
    ):
        super().__init__(expert, hidden, dropout, lr, router_batch, router_epochs, balance_weight, device, seed)

    def _n_router_outputs(self) -> int:
        return len(self.classes_)

    def _build(self, n_outputs: int) -> None:
        super()._build(n_outputs)
        self.pool_ = ExpertPool(self._expert_prototype(), n_outputs)

    def _on_new_class(self, y) -> None:
        if self._built():  # before the first build, `_build` sizes everything from `classes_`
            self.pool_.add()
            self.router_.add_output()

    def _expert_positive(self, xs) -> np.ndarray:
        """Each class expert's probability that the row is of its class, shape (B, C); 0.5 when it knows nothing."""
        n, c = len(xs), len(self.classes_)
        proba = self.pool_.proba(xs, np.broadcast_to(np.arange(c), (n, c)), [False, True])
        total = proba.sum(axis=2)
        return np.where(total > 0, proba[:, :, 1] / np.where(total > 0, total, 1.0), 0.5)

    def predict_detail_many(self, xs) -> list[tuple[dict, list[int]]]:
        if not self._built():
            return [({}, []) for _ in xs]
        p = self._expert_positive(xs)
        r = 1.0 / (1.0 + np.exp(-self.router_.scores(self.encoder_.transform_many(xs))))
        q = r * p + (1.0 - r) * (1.0 - p)
        experts = list(range(len(self.classes_)))
        return [(proba, experts) for proba in self._to_dicts(q)]

    def learn_many(self, xs, ys) -> None:
        xs, ys = list(xs), list(ys)
        if not xs:
            return
        z = self._encode_for_learning(xs, ys)
        y_idx = np.array([self._class_index[y] for y in ys])
        is_class = y_idx[:, None] == np.arange(len(self.classes_))
        p = self._expert_positive(xs)
        mask = (p > 0.5) == is_class
        none_right = ~mask.any(axis=1)
        if none_right.any():
            closeness = np.where(is_class, p, 1.0 - p)[none_right]
            best = np.argmax(closeness + self.rng_.random(closeness.shape) * 1e-9, axis=1)
            mask[np.flatnonzero(none_right), best] = True
        for c in range(len(self.classes_)):
            self.pool_.learn(c, xs, is_class[:, c].tolist())
        self.router_.observe(z, mask)
