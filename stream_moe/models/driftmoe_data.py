"""DriftMoE-Data: multi-class Hoeffding-tree experts chosen per instance by a co-trained neural router."""

from __future__ import annotations

import numpy as np
from river import base

from stream_moe.models.experts import ExpertPool
from stream_moe.models.mixture import Mixture


class DriftMoEData(Mixture):
    """Mixture of `n_experts` multi-class experts with a top-`top_k` neural router (MoE-Data of Aspis et al. 2025).

    For each labelled instance the router's `top_k` experts learn it, and the router learns the multi-hot mask of the
    experts whose prediction was right (when none was, the one giving the true class the highest probability, ties
    broken at random). The prediction is the top-1 expert's (`prediction="top1"`, the paper's rule) or the mixture of
    the top-k experts' probabilities weighted by the softmax of their gate scores (`prediction="mixture"`).

    Against starvation (an expert the router never picks never learns, so it is never right, so it is never picked):
    with probability `explore` an instance's k-th expert is swapped for a random other expert, and `balance_weight`
    weighs an importance-balancing term in the router's loss. `usage_` counts what each expert learned, `routed_` how
    often each was the top-1 choice.

    Parameters
    ----------
    n_experts, top_k
        Pool size and how many experts learn each instance.
    prediction
        "top1" or "mixture".
    expert
        Prototype of the experts (a river classifier, cloned); default a Hoeffding tree with grace period 50, delta 1e-7.
    hidden, dropout, lr, router_batch, router_epochs
        Router MLP layer sizes, dropout (training only), Adam learning rate, instances per router update, and gradient
        steps per update.
    balance_weight, explore
        Strength of the load-balancing loss and the exploration rate (both 0 reproduce the paper's training).
    device
        "auto", "cpu" or "cuda" for the router.
    seed
        Seeds the router's initialisation and dropout, tie breaks and exploration.

    Examples
    --------
    >>> from river.datasets import synth
    >>> from river import metrics
    >>> model = DriftMoEData(n_experts=4, top_k=2, router_batch=32, device="cpu", seed=1)
    >>> metric = metrics.Accuracy()
    >>> for x, y in synth.SEA(seed=1, noise=0.1).take(2000):
    ...     metric.update(y, model.predict_one(x))
    ...     model.learn_one(x, y)
    >>> metric
    Accuracy: 86.45%
    >>> bool((model.usage_ > 0).all())
    True

    References
    ----------
    Aspis, M., Cajas Ordóñez, S. A., Suárez-Cetrulo, A. L., Simón Carbajo, R. (2025). DriftMoE: A Mixture of Experts
    Approach to Handle Concept Drifts. arXiv:2507.18464.
    """

    def __init__(
        self,
        n_experts: int = 12,
        top_k: int = 3,
        prediction: str = "top1",
        expert: base.Classifier | None = None,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.2,
        lr: float = 2e-3,
        router_batch: int = 256,
        router_epochs: int = 1,
        balance_weight: float = 0.01,
        explore: float = 0.05,
        device: str = "auto",
        seed: int = 0,
    ):
        super().__init__(expert, hidden, dropout, lr, router_batch, router_epochs, balance_weight, device, seed)
        if prediction not in ("top1", "mixture"):
            raise ValueError(f"prediction must be 'top1' or 'mixture', not {prediction!r}")
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be between 1 and n_experts ({n_experts}), not {top_k}")
        self.n_experts = n_experts
        self.top_k = top_k
        self.prediction = prediction
        self.explore = explore

    def _ready(self) -> bool:
        return hasattr(self, "pool_") and bool(self.classes_)

    def _build(self) -> None:
        self.router_ = self._new_router(self.n_experts)
        self.pool_ = ExpertPool(self._expert_prototype(), self.n_experts)
        self.routed_ = np.zeros(self.n_experts, dtype=np.int64)
        self.rng_ = np.random.default_rng(self.seed)
        self._everyone = np.arange(self.n_experts)[None, :]

    @property
    def usage_(self) -> np.ndarray:
        return self.pool_.usage_ if hasattr(self, "pool_") else np.zeros(self.n_experts, dtype=np.int64)

    @property
    def _n_predicting(self) -> int:
        return 1 if self.prediction == "top1" else self.top_k

    def _combine(self, gate_logits: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """Class scores (B, C) from the predicting experts' gate logits (B, K) and probabilities (B, K, C)."""
        if self.prediction == "top1":
            return proba[:, 0]
        gate = np.exp(gate_logits - gate_logits.max(axis=1, keepdims=True))
        gate /= gate.sum(axis=1, keepdims=True)
        return np.einsum("bk,bkc->bc", gate, proba)

    def predict_detail_many(self, xs) -> list[tuple[dict, list[int]]]:
        if not self._ready():
            return [({}, []) for _ in xs]
        logits = self.router_.scores(self.encoder_.transform_many(xs))
        which = np.argsort(-logits, axis=1, kind="stable")[:, : self._n_predicting]
        scores = self._combine(np.take_along_axis(logits, which, axis=1), self.pool_.proba(xs, which, self.classes_))
        return [(self._to_dict(row), w) for row, w in zip(scores, which.tolist())]

    def _step(self, x, y, logits: np.ndarray) -> tuple[tuple[dict, list[int]], np.ndarray | None]:
        order = np.argsort(-logits, kind="stable")
        proba = self.pool_.proba([x], self._everyone, self.classes_)[0]  # (E, C): every expert, for the mask
        detail: tuple[dict, list[int]] = ({}, [])
        if self.classes_:
            which = order[: self._n_predicting]
            detail = (self._to_dict(self._combine(logits[None, which], proba[None, which])[0]), which.tolist())
        if y is None:
            return detail, None

        c = self._register_class(y)
        if c == proba.shape[1]:
            proba = np.pad(proba, ((0, 0), (0, 1)))
        right = (proba.argmax(axis=1) == c) & (proba.max(axis=1) > 0)
        if not right.any():
            right[self._tie_break(proba[:, c])] = True

        chosen = order[: self.top_k]
        if self.explore > 0 and self.top_k < self.n_experts and self.rng_.random() < self.explore:
            chosen = chosen.copy()
            chosen[-1] = order[self.rng_.integers(self.top_k, self.n_experts)]
        for e in chosen:
            self.pool_.learn(e, [x], [y])
        self.routed_[order[0]] += 1
        return detail, right.astype(np.float32)
