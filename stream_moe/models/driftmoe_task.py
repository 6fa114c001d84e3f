"""DriftMoE-Task: one one-vs-rest expert per class, whose answers the router weighs by how reliable each is here."""

from __future__ import annotations

import numpy as np
from river import base

from stream_moe.models.features import Frame
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

    Parameters are those of `DriftMoEData` that apply here (`experts="fast"` included), and `takeover_z`. Defaults:
    ADWIN drift detection on each class expert, no bagging (it helps RandomRBF and LED but costs SEA more than a point
    on 20k instances, where a single tree must stay behind), router updates every 32 instances.

    A drifted class expert is replaced only when its background expert beat it since it started by `takeover_z`
    standard errors (McNemar's test; None: replaced at every drift, as in DriftMoE-Data and ARF). Each class has one
    expert here, so replacing it throws away what no other expert knows: on NOAA weather, whose error rate moves with
    the seasons, replacing at every drift costs 4.3 points, while on Electricity the gated rule is 0.7 points ahead of
    it (means over three seeds; README, "MoE-Task's drift rule").

    Examples
    --------
    >>> from river.datasets import synth
    >>> from river import metrics
    >>> model = DriftMoETask(device="cpu", seed=1)
    >>> metric = metrics.Accuracy()
    >>> for x, y in synth.SEA(seed=1, noise=0.1).take(2000):
    ...     metric.update(y, model.predict_one(x))
    ...     model.learn_one(x, y)
    >>> metric
    Accuracy: 87.30%
    >>> len(model.pool_)
    2
    """

    def __init__(
        self,
        expert: base.Classifier | None = None,
        experts: str = "river",
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.2,
        lr: float = 2e-3,
        router_batch: int = 32,
        router_epochs: int = 1,
        balance_weight: float = 0.0,
        drift_detector="adwin(delta=0.001)",
        warning_detector="adwin(delta=0.01)",
        bagging_lambda: float = 0.0,
        takeover_z: float | None = 2.0,
        device: str = "auto",
        seed: int = 0,
    ):
        super().__init__(
            expert, experts, hidden, dropout, lr, router_batch, router_epochs, balance_weight,
            drift_detector, warning_detector, bagging_lambda, device, seed,
        )
        self.takeover_z = takeover_z

    def _ready(self) -> bool:
        return hasattr(self, "router_")

    def _build(self) -> None:
        self.pool_ = self._new_pool(0)
        self.rng_ = np.random.default_rng(self.seed)
        self._start_log()

    def _on_new_class(self, y) -> None:
        self.pool_.add()
        self.pool_sizes_.append((self.n_learned_, len(self.pool_)))
        if hasattr(self, "router_"):
            self.router_.add_output()
        else:
            self.router_ = self._new_router(1)

    def _positive(self, xs) -> np.ndarray:
        """Each class expert's probability that the row is of its class, shape (B, C); 0.5 when it knows nothing."""
        n, c = len(xs), len(self.classes_)
        proba = self.pool_.proba(xs, np.broadcast_to(np.arange(c), (n, c)), [False, True])
        total = proba.sum(axis=2)
        return np.where(total > 0, proba[:, :, 1] / np.where(total > 0, total, 1.0), 0.5)

    @staticmethod
    def _combine(logits: np.ndarray, positive: np.ndarray) -> np.ndarray:
        """q = r p + (1 - r)(1 - p) with r the router's reliability; outputs not scored yet count as r = 0.5."""
        logits = np.pad(logits, [(0, 0)] * (logits.ndim - 1) + [(0, positive.shape[-1] - logits.shape[-1])])
        r = 1.0 / (1.0 + np.exp(-logits))
        return r * positive + (1.0 - r) * (1.0 - positive)

    def predict_detail_many(self, xs) -> list[tuple[dict, list[int]]]:
        if not self._ready():
            return [({}, []) for _ in xs]
        scores = self._combine(self.router_.scores(self.encoder_.transform_many(xs)), self._positive(xs))
        experts = list(range(len(self.classes_)))
        return [(self._to_dict(row), experts) for row in scores]

    def _learn_batch(
        self, xs, ys, z: np.ndarray, frame: Frame, logits: np.ndarray
    ) -> list[tuple[tuple[dict, list[int]], np.ndarray | None]]:
        return [self._step(x, y, logits[i]) for i, (x, y) in enumerate(zip(xs, ys))]

    def _step(self, x, y, logits: np.ndarray) -> tuple[tuple[dict, list[int]], np.ndarray | None]:
        detail: tuple[dict, list[int]] = ({}, [])
        positive = self._positive([x])[0] if self.classes_ else np.zeros(0)
        if self.classes_:
            detail = (self._to_dict(self._combine(logits, positive)), list(range(len(self.classes_))))
        if y is None:
            return detail, None

        c = self._register_class(y)
        positive = np.pad(positive, (0, len(self.classes_) - len(positive)), constant_values=0.5)
        is_class = np.arange(len(self.classes_)) == c
        right = (positive > 0.5) == is_class
        self._duel(x, is_class, right)
        if not right.any():
            right[self._tie_break(np.where(is_class, positive, 1.0 - positive))] = True
        self.n_learned_ += 1
        for e in range(len(self.classes_)):
            self.pool_.learn(e, [x], [bool(is_class[e])])
            self._watch(e, not right[e])
        return detail, right.astype(np.float32)

    def _duel(self, x, is_class: np.ndarray, right: np.ndarray) -> None:
        """Score each background expert against its expert on the row both are about to learn."""
        dueling = [e for e in range(len(is_class)) if self.pool_.backgrounds[e] is not None]
        if self.takeover_z is None or not dueling:
            return
        proba = self.pool_.proba([x], np.array([dueling]), [False, True], backgrounds=True)[0]
        for e, (no, yes) in zip(dueling, proba):
            self.pool_.duel(e, not right[e], (yes > no) != is_class[e])

    def _keeps(self, e: int) -> bool:
        """With `takeover_z` a drifted class expert stays unless its background expert beat it since it started, by
        `takeover_z` standard errors (see `ExpertPool.background_better`): it is the only expert for its class, and
        replacing it with one that knows less loses what no other expert covers. A new background expert then starts
        from here, to challenge it on what follows the drift."""
        if self.takeover_z is None or self.pool_.background_better(e, self.takeover_z):
            return False
        self.pool_.start_background(e)
        self._log("kept", e)
        return True
