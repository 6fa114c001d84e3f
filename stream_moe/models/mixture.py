"""What the two DriftMoE variants share: encoding, the router, class bookkeeping and the batch <-> one-instance API."""

from __future__ import annotations

import abc

import numpy as np
from river import base

from stream_moe.models.experts import default_expert
from stream_moe.models.features import FeatureEncoder
from stream_moe.models.router import Router


class Mixture(base.Classifier, abc.ABC):
    """Base of the DriftMoE classifiers: a `FeatureEncoder`, a `Router` and an expert pool, all built lazily.

    The `_one` methods are the `_many` methods on a batch of one. `predict_proba_many(xs)` gives for each row exactly
    what `predict_proba_one` gives (one router call for the whole batch; prediction never changes the model).
    `learn_many(xs, ys)` equals `learn_one` on each row in order, except that the input statistics, the router's gate
    and the experts' answers used for the correctness mask and for routing are those of the start of the batch
    (with the encoder's statistics already including the batch), and a router update that falls due inside the batch
    runs at its end. With batches of one, the two coincide.
    """

    def __init__(
        self,
        expert: base.Classifier | None,
        hidden: tuple[int, ...],
        dropout: float,
        lr: float,
        router_batch: int,
        router_epochs: int,
        balance_weight: float,
        device: str,
        seed: int,
    ):
        self.expert = expert
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.router_batch = router_batch
        self.router_epochs = router_epochs
        self.balance_weight = balance_weight
        self.device = device
        self.seed = seed

    @property
    def _multiclass(self):
        return True

    @property
    def n_seen_(self) -> int:
        return getattr(self, "_n_seen", 0)

    def _built(self) -> bool:
        return hasattr(self, "router_")

    def _expert_prototype(self) -> base.Classifier:
        return self.expert if self.expert is not None else default_expert()

    def _build(self, n_outputs: int) -> None:
        self.router_ = Router(
            n_inputs=self.encoder_.n_columns,
            n_outputs=n_outputs,
            hidden=tuple(self.hidden),
            dropout=self.dropout,
            lr=self.lr,
            batch_size=self.router_batch,
            epochs=self.router_epochs,
            balance_weight=self.balance_weight,
            device=self.device,
            seed=self.seed,
        )
        self.rng_ = np.random.default_rng(self.seed)

    def _encode_for_learning(self, xs, ys) -> np.ndarray:
        """Register new classes and features, update the statistics, and encode the batch (the router grows to fit)."""
        if not hasattr(self, "encoder_"):
            self.encoder_ = FeatureEncoder()
            self.classes_: list = []
            self._class_index: dict = {}
            self._n_seen = 0
        for y in ys:
            if y not in self._class_index:
                self._class_index[y] = len(self.classes_)
                self.classes_.append(y)
                self._on_new_class(y)
        self.encoder_.learn_many(xs)
        if not self._built():
            self._build(self._n_router_outputs())
        self.router_.grow_inputs(self.encoder_.n_columns)
        self._n_seen += len(ys)
        return self.encoder_.transform_many(xs)

    def _on_new_class(self, y) -> None:
        """Hook for variants whose structure follows the classes."""

    @abc.abstractmethod
    def _n_router_outputs(self) -> int: ...

    @abc.abstractmethod
    def predict_detail_many(self, xs) -> list[tuple[dict, list[int]]]:
        """For each row: class probabilities and the indices of the experts that produced them."""

    @abc.abstractmethod
    def learn_many(self, xs, ys) -> None: ...

    def predict_proba_many(self, xs) -> list[dict]:
        return [proba for proba, _ in self.predict_detail_many(xs)]

    def predict_proba_one(self, x) -> dict:
        return self.predict_detail_many([x])[0][0]

    def learn_one(self, x, y) -> None:
        self.learn_many([x], [y])

    def _to_dicts(self, proba: np.ndarray) -> list[dict]:
        """Rows of class probabilities to dicts; a row with no information becomes uniform over the known classes."""
        totals = proba.sum(axis=1, keepdims=True)
        proba = np.where(totals > 0, proba / np.where(totals > 0, totals, 1.0), 1.0 / proba.shape[1])
        classes = self.classes_
        return [dict(zip(classes, row.tolist())) for row in proba]
