"""What the two DriftMoE variants share: encoding, the router, class bookkeeping and the batch <-> one-instance API."""

from __future__ import annotations

import abc
import dataclasses
import logging

import numpy as np
from river import base

from stream_moe.models.detectors import DRIFT, WARNING
from stream_moe.models.experts import EXPERT_KINDS, ExpertPool, default_expert
from stream_moe.models.features import FeatureEncoder, Frame
from stream_moe.models.router import Router

log = logging.getLogger(__name__)

# what a mixture's test-then-train over a batch gives: per row (probabilities, experts); the indices of the labelled
# rows; their router target masks (labelled rows, outputs)
Learned = tuple[list[tuple[dict, list[int]]], np.ndarray, np.ndarray]


@dataclasses.dataclass
class Routing:
    """A batch between the two halves of a mixture's batch methods (`Mixture.start_batch`, `Mixture.finish_batch`):
    its rows encoded for the router (`z`; None: nothing to route, the model knows nothing yet) and the router that
    routes them (None: the model has none yet). `ys` is None for a prediction."""

    xs: list
    ys: list | None
    z: np.ndarray | None = None
    frame: Frame | None = None
    router: object | None = None

    def route(self) -> np.ndarray | None:
        """The logits of these rows by their router alone (a bank routes many batches at once instead)."""
        if self.z is None:
            return None
        if self.router is None:
            return np.zeros((len(self.z), 0), dtype=np.float32)
        return self.router.scores(self.z)


class Mixture(base.Classifier, abc.ABC):
    """Base of the DriftMoE classifiers: a `FeatureEncoder`, a `Router` and an expert pool, built lazily.

    Batch methods and how they relate to the `_one` methods:

    - `predict_detail_many(xs)` / `predict_proba_many(xs)`: for each row exactly what `predict_proba_one` gives, with
      one router call for the batch. Prediction never changes the model.
    - `predict_learn_many(xs, ys)`: test-then-train over the batch, i.e. `predict_proba_one(x)` then (when `y` is not
      None) `learn_one(x, y)` for each row in order, returning the predictions. The experts are exactly as in that
      sequence (each row is predicted by experts that learned every earlier row). What differs: the router is called
      once for the batch, so every row is routed by the router and input statistics of the batch start, and a router
      update that falls due inside the batch runs at its end.
      With batches of one there is no difference.
    - With `experts="fast"` (array-based trees, see `ExpertPool`) both variants hand the whole pool the whole batch
      in one call, test-then-train: each row is still answered by experts that learned the rows before it; what
      differs is the order of the work (monitors read each expert's errors in turn, see
      `DriftMoEData._learn_batched` and `DriftMoETask._learn_batched`). With batches of one there is no difference.
    - `learn_many(xs, ys)`: `predict_learn_many` without the answer.
    - `start_batch(xs, ys)` and `finish_batch(routing, logits)`: the two halves of `predict_learn_many` (without
      `ys`, of `predict_detail_many`), around the router's call, so that a caller routes the rows of many models in
      one call to the `RouterBank` their routers share (`use_router_bank`; see
      `stream_moe.models.router_bank.predict_learn_together`).

    Both variants can watch each expert with a drift detector (`drift_detector`, `warning_detector`: names such as
    "adwin(delta=0.001)", "ddm", "hddm_a" or river detectors; see `stream_moe.models.detectors`): a warning starts a
    background expert trained alongside, a drift puts it (or a fresh expert) in the drifted one's slot and resets that
    expert's router output. `bagging_lambda` > 0 gives each learning expert a Poisson(lambda) weight per instance
    (online bagging, as ARF). `events_` lists what happened (instance index, kind, expert), `counts_` counts it,
    `pool_sizes_` records (instance index, pool size) at every change.
    """

    def __init__(
        self,
        expert: base.Classifier | None,
        experts: str,
        hidden: tuple[int, ...],
        dropout: float,
        lr: float,
        router_batch: int,
        router_epochs: int,
        balance_weight: float,
        drift_detector,
        warning_detector,
        bagging_lambda: float,
        device: str,
        seed: int,
    ):
        if experts not in EXPERT_KINDS:
            raise ValueError(f"experts must be one of {EXPERT_KINDS}, not {experts!r}")
        self.expert = expert
        self.experts = experts
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.router_batch = router_batch
        self.router_epochs = router_epochs
        self.balance_weight = balance_weight
        self.drift_detector = drift_detector
        self.warning_detector = warning_detector
        self.bagging_lambda = bagging_lambda
        self.device = device
        self.seed = seed

    @property
    def _multiclass(self):
        return True

    def _expert_prototypes(self) -> list[base.Classifier]:
        """The prototypes a new pool's experts are cloned from, in turn (hook): `expert`, or the default tree."""
        return [self.expert if self.expert is not None else self._default_expert()]

    def _default_expert(self) -> base.Classifier:
        """The tree the experts are when no `expert` is given (hook): the paper's, of the kind `experts` names."""
        return default_expert(self.experts)

    @property
    def router_settings(self) -> dict:
        """The router's parameters (a `Router`'s or a `RouterBank`'s) besides its shape, device and seed."""
        return dict(hidden=tuple(self.hidden), dropout=self.dropout, lr=self.lr, batch_size=self.router_batch,
                    epochs=self.router_epochs, balance_weight=self.balance_weight)

    def _new_router(self, n_outputs: int) -> Router:
        bank = getattr(self, "_router_bank", None)
        if bank is not None:
            return bank.member(bank.add(self.encoder_.n_columns, n_outputs, seed=self.seed))
        return Router(n_inputs=self.encoder_.n_columns, n_outputs=n_outputs, device=self.device, seed=self.seed,
                      **self.router_settings)

    def use_router_bank(self, bank) -> None:
        """Keep the router in `bank` (a `RouterBank` of these `router_settings`, shared with other models) from now
        on: an existing router moves in as a member and learns on exactly as it would have; None moves it out again
        as a standalone `Router`. The bank's device is the router's. A model pickles and copies with its router by
        value and without the bank: after a restore, call this again."""
        router = getattr(self, "router_", None)
        if bank is not None and bank.settings != self.router_settings:
            raise ValueError(f"this model's router is {self.router_settings}, the bank's {bank.settings}")
        if router is not None and getattr(router, "bank", None) is not bank:
            if getattr(router, "bank", None) is not None:
                router = router.bank.release(router.index)
            self.router_ = router if bank is None else bank.member(bank.adopt(router))
        self._router_bank = bank

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_router_bank", None)
        return state

    def _new_pool(self, n_experts: int, **options) -> ExpertPool:
        return ExpertPool(
            self._expert_prototypes(),
            n_experts,
            drift_detector=self.drift_detector,
            warning_detector=self.warning_detector,
            bagging_lambda=self.bagging_lambda,
            seed=self.seed,
            **options,
        )

    def _start_log(self) -> None:
        """The adaptation record: instances learned, what happened when, counts, and pool sizes over time."""
        self.n_learned_ = 0
        self.events_: list[tuple[int, str, int]] = []
        self.counts_ = dict.fromkeys(("warnings", "drifts", "background_takeovers", "kept", "expansions", "prunes"), 0)
        self.pool_sizes_ = [(0, len(self.pool_))]

    def _log(self, counter: str, expert: int) -> None:
        self.counts_[counter] += 1
        self.events_.append((self.n_learned_, counter, int(expert)))
        log.debug("%s: expert %d at instance %d", counter, expert, self.n_learned_)

    def _watch(self, e: int, error: bool) -> bool:
        """Feed expert e's monitor one error; on a drift replace the expert and reset its router output. Returns
        whether it was replaced."""
        state = self.pool_.watch(e, [error])
        if state == WARNING:
            self._log("warnings", e)
        elif state == DRIFT:
            if self._keeps(e):
                return False
            self._drifted(e)
            return True
        return False

    def _keeps(self, e: int) -> bool:
        """Hook: whether expert e stays in its slot although its monitor signalled a drift (default: never)."""
        return False

    def _drifted(self, e: int) -> None:
        """Expert e drifted: its background expert (or a fresh one) takes the slot and its router output restarts."""
        self._log("drifts", e)
        if self.pool_.replace(e):
            self._log("background_takeovers", e)
        self.router_.reset_output(e)

    def _register_class(self, y) -> int:
        """Index of class y, registering it (and growing what follows the classes) on first sight."""
        index = self._class_index.get(y)
        if index is None:
            index = self._class_index[y] = len(self.classes_)
            self.classes_.append(y)
            self._on_new_class(y)
        return index

    def _on_new_class(self, y) -> None:
        """Hook for variants whose structure follows the classes."""

    @abc.abstractmethod
    def _ready(self) -> bool:
        """Whether the model can predict anything yet."""

    @abc.abstractmethod
    def _build(self) -> None:
        """Create the learned state when the first labelled data arrives (the encoder exists by then)."""

    @abc.abstractmethod
    def _learn_batch(self, xs, ys, z: np.ndarray, frame: Frame, logits: np.ndarray) -> Learned:
        """Test-then-train row by row with the batch's router inputs (encoded in `frame`) and logits: per row the
        prediction (probabilities, experts); the labelled rows' indices and their router target masks, one row each
        (as wide as the router is at the end of the batch, or narrower: outputs added during the batch count as not
        right)."""

    @staticmethod
    def _stacked(steps: list[tuple[tuple[dict, list[int]], np.ndarray | None]]) -> Learned:
        """`_learn_batch`'s answer from one step per row: (prediction, mask or None when the row had no label)."""
        learned = [i for i, (_, mask) in enumerate(steps) if mask is not None]
        masks = np.zeros((len(learned), max((len(steps[i][1]) for i in learned), default=0)), dtype=np.float32)
        for j, i in enumerate(learned):
            masks[j, : len(steps[i][1])] = steps[i][1]
        return [detail for detail, _ in steps], np.array(learned, dtype=np.int64), masks

    @abc.abstractmethod
    def _predict_routed(self, xs, z: np.ndarray, logits: np.ndarray) -> list[tuple[dict, list[int]]]:
        """`predict_detail_many` given the rows encoded for the router and its logits."""

    def predict_detail_many(self, xs) -> list[tuple[dict, list[int]]]:
        """For each row: class probabilities and the indices of the experts that produced them."""
        routing = self.start_batch(xs)
        return self.finish_batch(routing, routing.route())

    def predict_learn_many(self, xs, ys) -> list[tuple[dict, list[int]]]:
        routing = self.start_batch(xs, ys)
        return self.finish_batch(routing, routing.route())

    def start_batch(self, xs, ys=None) -> Routing:
        """The first half of `predict_learn_many` (with labels `ys`, None for an unlabelled row) or, without `ys`, of
        `predict_detail_many`: the rows encoded for the router, which a learning batch's encoder learns, and the
        router built or widened for them. Route `Routing.z` by `Routing.router` (alone: `Routing.route()`, or
        with other models' rows in one call to their bank: `stream_moe.models.router_bank.route`), then hand the
        logits to `finish_batch`. Between the two halves the model takes no other call."""
        xs = list(xs)
        if ys is None:
            if not self._ready():
                return Routing(xs, None)
            return Routing(xs, None, self.encoder_.transform_many(xs), None, self.router_)
        ys = list(ys)
        learn = [y is not None for y in ys]
        labelled = any(learn)
        if labelled:
            first = not hasattr(self, "encoder_")
            if first:
                self.encoder_ = FeatureEncoder()
                self.classes_: list = []
                self._class_index: dict = {}
        if not hasattr(self, "encoder_"):
            return Routing(xs, ys)
        # encoded in the frame of the batch start, as predict_one's; then the labelled rows are learned
        z, frame = self.encoder_.transform_learn_many(xs, learn)
        if labelled:
            if first:
                self._build()
            elif hasattr(self, "router_"):
                self.router_.grow_inputs(self.encoder_.n_columns)
        return Routing(xs, ys, z, frame, getattr(self, "router_", None))

    def finish_batch(self, routing: Routing, logits: np.ndarray | None) -> list[tuple[dict, list[int]]]:
        """The second half of a batch method, given the logits of `routing.z` (columns past the router's outputs
        are ignored): test-then-train over the batch (the router's training rows go to `observe`), or the
        predictions."""
        xs, ys, z = routing.xs, routing.ys, routing.z
        if z is None:
            return [({}, []) for _ in xs]
        width = routing.router.n_outputs if routing.router is not None else 0
        logits = logits[:, :width]
        if ys is None:
            return self._predict_routed(xs, z, logits)
        details, learned, masks = self._learn_batch(xs, ys, z, routing.frame, logits)
        if len(learned):
            self.router_.observe(z[learned], np.pad(masks, ((0, 0), (0, self.router_.n_outputs - masks.shape[1]))))
        return details

    def learn_many(self, xs, ys) -> None:
        self.predict_learn_many(xs, ys)

    def learn_one(self, x, y) -> None:
        self.predict_learn_many([x], [y])

    def predict_proba_many(self, xs) -> list[dict]:
        return [proba for proba, _ in self.predict_detail_many(xs)]

    def predict_proba_one(self, x) -> dict:
        return self.predict_detail_many([x])[0][0]

    def _to_dicts(self, scores: np.ndarray, known: np.ndarray | None = None) -> list[dict]:
        """Rows (B, C) of non-negative class scores to probabilities of the classes known when each row was answered
        (the first `known[b]`, default all C); no information at all becomes uniform over them. One pass for the
        batch (32 rows of 2 classes: 45 us against 126 row by row)."""
        known = np.full(len(scores), scores.shape[1]) if known is None else np.asarray(known)
        scores = np.where(np.arange(scores.shape[1]) < known[:, None], scores, 0.0)
        total = scores.sum(axis=1, keepdims=True)
        probs = np.where(total > 0, scores / np.where(total > 0, total, 1.0), 1.0 / np.maximum(known, 1)[:, None])
        classes = self.classes_
        return [dict(zip(classes[:k], row)) for k, row in zip(known.tolist(), probs.tolist())]

    def _tie_break(self, scores: np.ndarray) -> int:
        """Argmax with exact ties broken at random (an untrained pool answers all zeros)."""
        best = np.flatnonzero(scores == scores.max())
        return int(best[0] if len(best) == 1 else self.rng_.choice(best))
