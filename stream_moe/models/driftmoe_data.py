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
    Accuracy: 87.20%
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

    def _n_router_outputs(self) -> int:
        return self.n_experts

    def _build(self, n_outputs: int) -> None:
        super()._build(n_outputs)
        self.pool_ = ExpertPool(self._expert_prototype(), self.n_experts)
        self.routed_ = np.zeros(self.n_experts, dtype=np.int64)

    @property
    def usage_(self) -> np.ndarray:
        return self.pool_.usage_ if self._built() else np.zeros(self.n_experts, dtype=np.int64)

    def predict_detail_many(self, xs) -> list[tuple[dict, list[int]]]:
        if not self._built():
            return [({}, []) for _ in xs]
        logits = self.router_.scores(self.encoder_.transform_many(xs))
        k = 1 if self.prediction == "top1" else self.top_k
        which = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        proba = self.pool_.proba(xs, which, self.classes_)
        if k > 1:
            gate = np.take_along_axis(logits, which, axis=1)
            gate = np.exp(gate - gate.max(axis=1, keepdims=True))
            gate /= gate.sum(axis=1, keepdims=True)
            proba = np.einsum("bk,bkc->bc", gate, proba)
        else:
            proba = proba[:, 0]
        return list(zip(self._to_dicts(proba), which.tolist()))

    def learn_many(self, xs, ys) -> None:
        xs, ys = list(xs), list(ys)
        if not xs:
            return
        z = self._encode_for_learning(xs, ys)
        n, k = len(xs), self.top_k
        rows = np.arange(n)
        y_idx = np.array([self._class_index[y] for y in ys])

        # Which experts were right, from every expert's answer before learning this batch.
        proba = self.pool_.proba(xs, np.broadcast_to(np.arange(self.n_experts), (n, self.n_experts)), self.classes_)
        mask = (proba.argmax(axis=2) == y_idx[:, None]) & (proba.max(axis=2) > 0)
        none_right = ~mask.any(axis=1)
        if none_right.any():
            p_true = proba[rows, :, y_idx][none_right]
            best = np.argmax(p_true + self.rng_.random(p_true.shape) * 1e-9, axis=1)
            mask[np.flatnonzero(none_right), best] = True

        # The router's top-k learn, one of them swapped for a random other expert with probability `explore`.
        order = np.argsort(-self.router_.scores(z), axis=1, kind="stable")
        chosen = order[:, :k].copy()
        if self.explore > 0 and k < self.n_experts:
            swap = self.rng_.random(n) < self.explore
            alt = self.rng_.integers(k, self.n_experts, size=n)
            chosen[swap, k - 1] = order[swap, alt[swap]]
        self.routed_ += np.bincount(order[:, 0], minlength=self.n_experts)

        for e in range(self.n_experts):
            picked = np.flatnonzero((chosen == e).any(axis=1))
            if len(picked):
                self.pool_.learn(e, [xs[i] for i in picked], [ys[i] for i in picked])
        self.router_.observe(z, mask)
