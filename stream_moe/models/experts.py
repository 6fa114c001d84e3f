"""The experts of a mixture, with what watches and describes each of them, and the batch interface to query and train.

`ExpertPool` speaks in micro-batches (which experts answer or learn which rows) so that a pool of array-based trees can
answer a whole batch in one pass. It holds river classifiers, queried and trained row by row, or
`FastHoeffdingTreeClassifier`s ("fast" experts), which answer and learn a whole batch with one call per expert (see
`ExpertPool.batched`). Per expert it keeps an optional drift monitor on its error stream (with a background expert
started on warning, which takes over on drift), an optional input descriptor (for self-expansion; `descriptors` is
the novelty threshold above which a descriptor stops absorbing inputs, None for no descriptors), an optional random
feature subspace and online-bagging weights (for diversity, as ARF).
"""

from __future__ import annotations

import typing

import numpy as np
from river import base, tree

from stream_moe.models.descriptors import InputDescriptor, absorb, scores
from stream_moe.models.features import Frame
from stream_moe.models.detectors import DRIFT, WARNING, ErrorMonitor, make_detector
from stream_moe.models.fast_tree import FastHoeffdingTreeClassifier, predict_learn_trees
from stream_moe.models.rows import RowCoder

EXPERT_KINDS = ("river", "fast")


def default_expert(kind: str = "river", delta: float = 1e-7) -> base.Classifier:
    """The paper's expert: a Hoeffding tree with grace period 50 and split confidence `delta` (the paper's 1e-7),
    river's or the array-based one with the same semantics ("fast")."""
    if kind not in EXPERT_KINDS:
        raise ValueError(f"experts must be one of {EXPERT_KINDS}, not {kind!r}")
    tree_class = FastHoeffdingTreeClassifier if kind == "fast" else tree.HoeffdingTreeClassifier
    return tree_class(grace_period=50, delta=delta)


class ExpertPool:
    """Experts cloned from prototypes, queried and trained by micro-batch, replaced and pruned on demand.

    `prototype` is one classifier or a sequence of them (a mixed pool, e.g. trees with different leaf predictions):
    each slot keeps the prototype it was given (`kinds[e]`, the least represented one when the slot was added, in
    the order given on ties), and its replacements and background experts are cloned from that prototype too.
    `usage_[e]` counts the instances expert `e` has learned (since it took its slot).

    With fast experts the pool is `batched`: `code`, `bag` and `answer_learn` give the experts a whole batch at once,
    answered test-then-train in one compiled call (the mixtures' path); `learn` and `proba` also work on any rows, as
    with river experts.

    >>> pool = ExpertPool(default_expert(), n_experts=2)
    >>> pool.learn(0, [{"a": 1.0}], ["up"])
    >>> pool.proba([{"a": 1.0}], which=np.array([[0, 1]]), classes=["up", "down"]).tolist()
    [[[1.0, 0.0], [0.0, 0.0]]]
    >>> pool.usage_.tolist()
    [1, 0]
    >>> fast = ExpertPool(default_expert("fast"), n_experts=2)
    >>> fast.learn(0, [{"a": 1.0}], ["up"])
    >>> fast.proba([{"a": 1.0}], which=np.array([[0, 1]]), classes=["up", "down"]).tolist()
    [[[1.0, 0.0], [0.0, 0.0]]]
    >>> mixed = ExpertPool([default_expert().clone({"leaf_prediction": "nb"}), default_expert()], n_experts=3)
    >>> mixed.kinds, [e.leaf_prediction for e in mixed.experts]
    ([0, 1, 0], ['nb', 'nba', 'nb'])
    """

    def __init__(
        self,
        prototype: base.Classifier | typing.Sequence[base.Classifier],
        n_experts: int = 0,
        drift_detector=None,
        warning_detector=None,
        descriptors: float | None = None,
        bagging_lambda: float = 0.0,
        subspace: float | None = None,
        seed: int = 0,
    ):
        self.prototypes = tuple(prototype) if isinstance(prototype, (list, tuple)) else (prototype,)
        if not self.prototypes:
            raise ValueError("an expert pool needs at least one prototype")
        self.drift_detector = drift_detector
        self.warning_detector = warning_detector
        self.descriptor_threshold = descriptors
        self.bagging_lambda = bagging_lambda
        self.subspace = subspace
        self.seed = seed
        self.monitors_made = 0
        self.rng = np.random.default_rng(seed)
        self.experts: list[base.Classifier] = []
        self.backgrounds: list[base.Classifier | None] = []
        self.monitors: list[ErrorMonitor | None] = []
        self.descriptors: list[InputDescriptor | None] = []
        self.subspaces: list[frozenset | None] = []
        # per expert with a background: of the rows since it started, how many only [background, expert] got wrong
        self.duels: list[np.ndarray | None] = []
        self.kinds: list[int] = []  # per slot: the index of the prototype its experts are cloned from
        self.usage_ = np.zeros(0, dtype=np.int64)
        fast = {isinstance(p, FastHoeffdingTreeClassifier) for p in self.prototypes}
        if len(fast) > 1:
            raise ValueError("a pool's prototypes must all be fast trees or all river classifiers, not a mix")
        self.batched = fast == {True}
        nominal = {tuple(getattr(p, "nominal_attributes", None) or ()) for p in self.prototypes}
        if len(nominal) > 1:
            raise ValueError(f"a pool's prototypes must name the same nominal attributes, not {sorted(nominal)}")
        self.coder = RowCoder(getattr(self.prototypes[0], "nominal_attributes", None)) if self.batched else None
        for _ in range(n_experts):
            self.add()

    def __len__(self) -> int:
        return len(self.experts)

    def _monitor(self) -> ErrorMonitor | None:
        if self.drift_detector is None:
            return None
        # a seed of their own for detectors that draw at random, from the pool's seed and how many came before
        self.monitors_made += 1
        seed = self.seed * 100_003 + 2 * self.monitors_made
        warning = make_detector(self.warning_detector, seed + 1) if self.warning_detector is not None else None
        return ErrorMonitor(make_detector(self.drift_detector, seed), warning)

    def _descriptor(self) -> InputDescriptor | None:
        if self.descriptor_threshold is None:
            return None
        return InputDescriptor(absorb_below=self.descriptor_threshold)

    def _clone(self, e: int) -> base.Classifier:
        """A fresh expert of slot `e`'s kind."""
        return self.prototypes[self.kinds[e]].clone()

    def add(self) -> int:
        """Append a fresh expert, of the kind the pool holds fewest of; returns its index."""
        self.kinds.append(int(np.argmin(np.bincount(self.kinds, minlength=len(self.prototypes)))))
        self.experts.append(self._clone(len(self.kinds) - 1))
        self.backgrounds.append(None)
        self.monitors.append(self._monitor())
        self.descriptors.append(self._descriptor())
        self.subspaces.append(None)  # drawn from the features of the first instance the expert learns
        self.duels.append(None)
        self.usage_ = np.append(self.usage_, 0)
        return len(self.experts) - 1

    def replace(self, e: int) -> bool:
        """Expert `e` drifted: its background expert (or a fresh one) takes the slot, with a fresh monitor and
        descriptor. Returns whether a background expert took over."""
        background = self.backgrounds[e]
        self.experts[e] = background if background is not None else self._clone(e)
        self.backgrounds[e] = None
        self.duels[e] = None
        self.monitors[e] = self._monitor()
        self.descriptors[e] = self._descriptor()
        self.subspaces[e] = None
        self.usage_[e] = 0
        return background is not None

    def remove(self, e: int) -> None:
        """Drop expert `e`; the experts after it move down one index."""
        for slots in (self.experts, self.kinds, self.backgrounds, self.duels, self.monitors, self.descriptors,
                      self.subspaces):
            del slots[e]
        self.usage_ = np.delete(self.usage_, e)

    def _view(self, e: int, x: dict) -> dict:
        subspace = self.subspaces[e]
        return x if subspace is None else {k: v for k, v in x.items() if k in subspace}

    def proba(self, xs, which: np.ndarray, classes, backgrounds: bool = False) -> np.ndarray:
        """Probabilities of `classes` given by experts `which[b]` (or, with `backgrounds`, by their background experts,
        which must exist) for each row `b`: shape (B, K, C).

        An expert that knows nothing yet answers all zeros (not uniform), so that it never counts as right.
        """
        index = {c: i for i, c in enumerate(classes)}
        out = np.zeros((len(xs), which.shape[1], len(classes)))
        experts = self.backgrounds if backgrounds else self.experts
        if self.batched:
            self._proba_batched(xs, which, index, out, experts)
            return out
        sub = self.subspace is not None
        for b, x in enumerate(xs):
            row = out[b]
            for k, e in enumerate(which[b]):
                for label, p in experts[e].predict_proba_one(self._view(e, x) if sub else x).items():
                    i = index.get(label)
                    if i is not None:
                        row[k, i] = p
        return out

    def _rows(self, e: int, X: np.ndarray) -> np.ndarray:
        """Coded rows as expert `e` sees them: the features outside its subspace missing."""
        if self.subspaces[e] is None:
            return X
        X = X.copy()
        X[:, ~self.coder.names(self.subspaces[e])] = np.nan
        return X

    @staticmethod
    def _columns(model, index: dict) -> tuple[list[int], list[int]]:
        """Columns of a batched expert's probabilities and the positions of their classes in `index`."""
        pairs = [(j, index[c]) for j, c in enumerate(getattr(model, "classes_", ())) if c in index]
        return [j for j, _ in pairs], [i for _, i in pairs]

    def _proba_batched(self, xs, which: np.ndarray, index: dict, out: np.ndarray, experts: list) -> None:
        X = self.coder.transform_many(xs)
        for e in np.unique(which).tolist():
            rows, ks = np.nonzero(which == e)
            model = experts[e]
            proba = model.predict_proba_many(self._rows(e, X[rows]))
            mine, theirs = self._columns(model, index)
            out[rows[:, None], ks[:, None], theirs] = proba[:, mine]

    def code(self, xs) -> np.ndarray:
        """Batched pools: learn the new features and categories of a batch, then code its rows once for every expert."""
        self.coder.learn_many(xs)
        return self.coder.transform_many(xs)

    def bag(self, xs, learns: np.ndarray) -> np.ndarray:
        """Weights (E, B) with which each expert learns the rows of a batch: 0 where `learns` (B, E) is False, else its
        online-bagging weight (Poisson(lambda); 1 without bagging). Counts the rows in `usage_`; draws an expert's
        feature subspace from the first row it learns when it has none."""
        if self.subspace is not None:
            for e in np.flatnonzero(learns.any(axis=0)).tolist():
                self.draw_subspace(e, xs[int(learns[:, e].argmax())])
        self.usage_ += learns.sum(axis=0)
        weights = learns.T.astype(float)
        if self.bagging_lambda > 0:  # drawn for the rows learned only, expert after expert (a quarter of the draws)
            weights[learns.T] = self.rng.poisson(self.bagging_lambda, int(weights.sum()))
        return weights

    def answer_learn(self, models: list, es: list[int], X: np.ndarray, ys: list, weights: np.ndarray,
                     classes) -> list[np.ndarray]:
        """Batched pools: each of `models` (expert `es[i]` or its background expert) answers the coded rows `X`
        test-then-train, learning each row whose weight (row i of `weights`) is > 0 right after answering it, with
        the labels `ys[i]` (one list object for the models that share their labels), all in one compiled pass
        (`predict_learn_trees`); per model the probabilities of `classes`, shape (B, C)."""
        rows = np.stack([self._rows(e, X) for e in es])
        answers = predict_learn_trees(models, rows, ys, weights, nominal=self.coder.nominal)
        return [self.in_order(model, proba, classes) for model, proba in zip(models, answers)]

    def in_order(self, model, proba: np.ndarray, classes) -> np.ndarray:
        """A batched tree's probabilities (B, its classes) as columns of `classes`."""
        if model.classes_ == classes:  # the usual case: the expert has seen every class, in the mixture's order
            return proba
        out = np.zeros((len(proba), len(classes)))
        mine, theirs = self._columns(model, {c: i for i, c in enumerate(classes)})
        out[:, theirs] = proba[:, mine]
        return out

    def learn(self, e: int, xs, ys) -> None:
        """Expert `e` (and its background expert) learns the rows `xs` with labels `ys`, in order. With online bagging
        each row has a Poisson(lambda) weight (0: skipped)."""
        if xs:
            self.draw_subspace(e, xs[0])
        weights = self.rng.poisson(self.bagging_lambda, len(xs)) if self.bagging_lambda > 0 else None
        self.usage_[e] += len(ys)
        learners = [m for m in (self.experts[e], self.backgrounds[e]) if m is not None]
        if self.batched:
            rows = self._rows(e, self.code(xs))
            for model in learners:
                model.learn_many(rows, ys, weights, nominal=self.coder.nominal)
            return
        for i, (x, y) in enumerate(zip(xs, ys)):
            if weights is not None and weights[i] == 0:
                continue
            x = self._view(e, x)
            for model in learners:
                if weights is None:
                    model.learn_one(x, y)
                else:
                    model.learn_one(x, y, w=float(weights[i]))

    def draw_subspace(self, e: int, x: dict) -> None:
        """With `subspace`, give expert `e` a random share of the features of `x` if it has no subspace yet."""
        if self.subspace is not None and self.subspaces[e] is None:
            names = sorted(x)
            size = max(1, round(self.subspace * len(names)))
            self.subspaces[e] = frozenset(self.rng.choice(names, size=size, replace=False).tolist())

    def describe(self, rows: list, z: np.ndarray, frame: Frame) -> None:
        """Each expert's descriptor absorbs the router inputs z (encoded in `frame`) of the rows it learned, `rows[e]`
        (indices into z, in order), all descriptors together."""
        absorb(self.descriptors, z, frame, rows)

    def watch(self, e: int, errors) -> int:
        """Feed expert `e`'s monitor its 0/1 errors in order; returns DRIFT if a drift was detected (the caller replaces
        the expert), else WARNING if a warning was (a background expert has started), else 0."""
        seen = 0
        while len(errors):
            fed, state = self.scan(e, errors)
            errors = errors[fed:]
            if state == DRIFT:
                return DRIFT
            if state == WARNING:
                self.start_background(e)
                seen = WARNING
        return seen

    def scan(self, e: int, errors) -> tuple[int, int]:
        """Feed expert `e`'s monitor its 0/1 errors in order until a drift, or a warning while it has no background
        expert: returns how many it read and DRIFT, WARNING or 0 (all read, nothing to act on). The caller acts:
        `replace` on DRIFT, `start_background` on WARNING."""
        monitor = self.monitors[e]
        if monitor is None:
            return len(errors), 0
        return monitor.scan(errors, stop_at_warning=self.backgrounds[e] is None)

    def start_background(self, e: int) -> None:
        """A warning: a background expert starts learning beside expert `e`."""
        self.backgrounds[e] = self._clone(e)
        self.duels[e] = np.zeros(2, dtype=np.int64)

    def duel(self, e: int, expert_errors, background_errors) -> None:
        """Count rows' answers of expert `e` and of its background expert (0/1 errors, both answered before learning
        the rows): of the rows exactly one of them got wrong, which one."""
        expert_errors, background_errors = np.atleast_1d(expert_errors), np.atleast_1d(background_errors)
        one = expert_errors != background_errors
        self.duels[e] += np.bincount(expert_errors[one].astype(np.int64), minlength=2)

    def background_better(self, e: int, z: float = 0.0) -> bool:
        """Whether expert `e`'s background expert beat it on the rows they both answered: of the rows exactly one of
        them got wrong, the expert's share exceeds half by more than `z` standard errors (McNemar's test, one-sided).

        >>> pool = ExpertPool(default_expert())
        >>> e = pool.add(); pool.start_background(e)
        >>> pool.duel(e, expert_errors=[1] * 12 + [0] * 4, background_errors=[0] * 12 + [1] * 4)
        >>> pool.background_better(e, z=1.0), pool.background_better(e, z=2.5)
        (True, False)
        """
        duel = self.duels[e]
        if duel is None:
            return False
        background_alone_wrong, expert_alone_wrong = duel.tolist()
        return expert_alone_wrong - background_alone_wrong > z * (expert_alone_wrong + background_alone_wrong) ** 0.5

    def novelty(self, z: np.ndarray, frame: Frame) -> np.ndarray:
        """z-scored novelty of each row (router inputs encoded in `frame`) for each expert's descriptor, shape (B, E);
        0 where an expert has none yet."""
        return scores(self.descriptors, z, frame)
