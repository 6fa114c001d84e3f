"""DriftMoE-Task: one one-vs-rest expert per class, whose answers the router weighs by how reliable each is here."""

from __future__ import annotations

import numpy as np
from river import base, tree

from stream_moe.models.detectors import DRIFT, WARNING
from stream_moe.models.fast_tree import FastHoeffdingTreeClassifier
from stream_moe.models.features import Frame
from stream_moe.models.mixture import Learned, Mixture


class DriftMoETask(Mixture):
    """Mixture with one one-vs-rest expert per class (MoE-Task of Aspis et al. 2025), created as classes appear.

    Every expert learns every instance (its target: is this my class?). The router has one output per expert and
    learns the multi-hot mask of the experts whose yes/no answer was right (when none was, the one closest to right).
    Its sigmoid output r_c is thus the estimated reliability of expert c at x, and with p_c the expert's probability
    that the class is c, the prediction is proportional to

        q_c = r_c * p_c + (1 - r_c) * (1 - p_c)

    i.e. trust the expert where it is reliable, its opposite where it is reliably wrong, and nothing where it is a coin
    toss. The experts therefore decide the prediction (in the published code the router alone did, an online MLP).

    A multi-class Hoeffding tree with river's defaults, the generalist, learns every instance beside the class
    experts, and each row is answered by whichever of the two has been right more often over the labelled rows before
    it, counts faded by `generalist_fade` per row (0.99: about the last hundred; None: no generalist). One-vs-rest
    experts and a young router are weakest where data is short: on Phishing, Bananas and Image segments the class
    experts alone are below a single tree, with the generalist above it (`benchmarks/results/task.jsonl`,
    docs/benchmarks.md, "MoE-Task and the Hoeffding tree").

    Parameters are those of `DriftMoEData` that apply here, `takeover_z` and `generalist_fade`. Defaults: fast experts
    (river's tree in arrays, the whole batch in one compiled call, tested to match river's trees, which
    `experts="river"` gives), ADWIN drift detection on each class expert (two-sided,
    unlike DriftMoE-Data's: on falls of the error too, which here refreshes the class experts usefully: rises only
    cost 1.6 points on LED_a and 2.0 on RBF_f at 50,000 instances), no bagging (it helps RandomRBF and LED but costs
    SEA more than a point on 20,000 instances, where a single tree must stay behind), router updates every 32
    instances.

    A drifted class expert is replaced only when its background expert beat it since it started by `takeover_z`
    standard errors (McNemar's test; None: replaced at every drift, as in DriftMoE-Data and ARF). Each class has one
    expert here, so replacing it throws away what no other expert knows: on NOAA weather, whose error rate moves with
    the seasons, replacing at every drift costs 4.3 points, while on Electricity the gated rule is 0.7 points ahead of
    it (means over seeds 1-3, whole files: `stream-moe replay --stream weather --model driftmoe-task` against
    `--param takeover_z=None`; docs/models.md, "DriftMoE-Task").

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
        experts: str = "fast",
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.2,
        lr: float = 2e-3,
        router_batch: int = 32,
        router_epochs: int = 1,
        balance_weight: float = 0.0,
        drift_detector: str | base.DriftDetector | None = "adwin(delta=0.001)",
        warning_detector: str | base.DriftDetector | None = "adwin(delta=0.01)",
        bagging_lambda: float = 0.0,
        takeover_z: float | None = 2.0,
        generalist_fade: float | None = 0.99,
        device: str = "auto",
        seed: int = 0,
    ):
        super().__init__(
            expert, experts, hidden, dropout, lr, router_batch, router_epochs, balance_weight,
            drift_detector, warning_detector, bagging_lambda, device, seed,
        )
        self.takeover_z = takeover_z
        self.generalist_fade = generalist_fade

    def _ready(self) -> bool:
        return hasattr(self, "router_")

    def _build(self) -> None:
        self.pool_ = self._new_pool(0)
        self.rng_ = np.random.default_rng(self.seed)
        self._start_log()
        if self.generalist_fade is not None:
            self.generalist_ = FastHoeffdingTreeClassifier() if self.pool_.batched else tree.HoeffdingTreeClassifier()
            self.lead_ = 0.0  # the generalist's faded count of right answers minus the class experts'

    def _general(self, xs, ys=None, X: np.ndarray | None = None) -> np.ndarray:
        """The generalist's probabilities of the classes (B, C): predicted, or with labels `ys` test-then-train over
        the rows (batched pools: the rows coded by the pool, `X`, when the caller has them)."""
        model, classes = self.generalist_, self.classes_
        if self.pool_.batched:
            coder = self.pool_.coder
            X = coder.transform_many(xs) if X is None else X
            if ys is None:
                if not hasattr(model, "kind_"):
                    return np.zeros((len(xs), len(classes)))
                return self.pool_.in_order(model, model.predict_proba_many(X), classes)
            return self.pool_.in_order(model, model.predict_learn_many(X, ys, nominal=coder.nominal), classes)
        index = self._class_index
        out = np.zeros((len(xs), len(classes)))
        for b, x in enumerate(xs):
            for label, p in model.predict_proba_one(x).items():
                out[b, index[label]] = p
            if ys is not None and ys[b] is not None:
                model.learn_one(x, ys[b])
        return out

    def _follow(self, scores: np.ndarray, general: np.ndarray, truth: dict,
                known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row (in order), the class experts' scores or the generalist's, whichever has been right more often
        over the labelled rows before it (faded by `generalist_fade`; the class experts on a tie); a labelled row
        (`truth`: row -> class index) then scores both. `known[b]`: the classes known when row b was answered.
        Returns the scores and which rows the generalist answered."""
        out, fade, lead = scores.copy(), self.generalist_fade, self.lead_
        answered = np.zeros(len(scores), dtype=bool)
        mine = np.where(np.arange(scores.shape[1]) < known[:, None], scores, -1.0).argmax(axis=1).tolist()
        theirs = general.argmax(axis=1).tolist()
        for b in range(len(scores)):
            if lead > 0:
                out[b], answered[b] = general[b], True
            k = truth.get(b)
            if k is not None:
                lead = fade * lead + (theirs[b] == k) - (mine[b] == k)
        self.lead_ = lead
        return out, answered

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
        return _yes(self.pool_.proba(xs, np.broadcast_to(np.arange(c), (n, c)), [False, True]))

    @staticmethod
    def _combine(logits: np.ndarray, positive: np.ndarray) -> np.ndarray:
        """q = r p + (1 - r)(1 - p) with r the router's reliability; outputs not scored yet count as r = 0.5."""
        logits = np.pad(logits, [(0, 0)] * (logits.ndim - 1) + [(0, positive.shape[-1] - logits.shape[-1])])
        r = 1.0 / (1.0 + np.exp(-logits))
        return r * positive + (1.0 - r) * (1.0 - positive)

    def _predict_routed(self, xs, z: np.ndarray, logits: np.ndarray) -> list[tuple[dict, list[int]]]:
        if self._generalist_leads():
            return [(probs, []) for probs in self._to_dicts(self._general(xs))]
        scores = self._combine(logits, self._positive(xs))
        experts = list(range(len(self.classes_)))
        return [(probs, experts) for probs in self._to_dicts(scores)]

    def _generalist_leads(self) -> bool:
        """Whether the generalist answers now (never for a model without one)."""
        return getattr(self, "lead_", 0.0) > 0

    def _learn_batch(self, xs, ys, z: np.ndarray, frame: Frame, logits: np.ndarray) -> Learned:
        if self.pool_.batched:
            return self._learn_batched(xs, ys, logits)
        return self._stacked([self._step(x, y, logits[i]) for i, (x, y) in enumerate(zip(xs, ys))])

    def _learn_batched(self, xs, ys, logits: np.ndarray) -> Learned:
        """`_learn_batch` for batched experts, with `_step`'s rules: every class expert (and background expert)
        answers and learns the whole batch test-then-train in one compiled call, a class first seen in the batch
        getting its expert at that row; then each expert's monitor reads its errors in row order. A warning starts a
        background expert, which answers and learns the expert's rows after it; a drift keeps the expert (see
        `_keeps`) or puts the background (or a fresh) expert in the slot, whose answers replace the old expert's for
        the rows after. As in DriftMoE-Data's batched path, the tie breaks of rows no expert got right stay those of
        the first answers."""
        n_rows, known = len(xs), len(self.classes_)
        rows = np.array([i for i, y in enumerate(ys) if y is not None], dtype=np.int64)
        c = np.array([self._register_class(ys[i]) for i in rows], dtype=np.int64)  # new classes: new experts
        n_pool, n = len(self.classes_), len(rows)
        born = np.zeros(n_pool, dtype=np.int64)  # the row from which each expert answers and learns
        born[known:] = rows[[int(np.argmax(c == k)) for k in range(known, n_pool)]]
        labelled = np.zeros(n_rows, dtype=bool)
        labelled[rows] = True
        learns = labelled[:, None] & (np.arange(n_rows)[:, None] >= born)
        row_class = np.full(n_rows, -1)
        row_class[rows] = c
        targets = [[None if k < 0 else k == e for k in row_class.tolist()] for e in range(n_pool)]

        pool = self.pool_
        X = pool.code(xs)
        general = self._general(xs, ys, X) if hasattr(self, "generalist_") else None
        weights = pool.bag(xs, learns)
        behind = [e for e in range(n_pool) if pool.backgrounds[e] is not None]
        slots = list(range(n_pool)) + behind  # every expert, then the background experts, in one pass
        answers = [_yes(a) for a in pool.answer_learn(pool.experts + [pool.backgrounds[e] for e in behind], slots, X,
                                                      [targets[e] for e in slots], weights[slots], [False, True])]
        positive = np.stack(answers[:n_pool], axis=1)  # (B, E); 0.5 from experts that know nothing yet
        background = {e: (0, a) for e, a in zip(behind, answers[n_pool:])}  # expert -> (first row, its answers)

        is_class = c[:, None] == np.arange(n_pool)
        exists = rows[:, None] >= born
        answered = ((positive[rows] > 0.5) == is_class) & exists  # right before the tie breaks: what duels count
        right = answered.copy()
        none = np.flatnonzero(~right.any(axis=1))
        if len(none):  # the expert closest to right, exact ties at random
            score = np.where(is_class, positive[rows], 1.0 - positive[rows])[none]
            score[~exists[none]] = -np.inf
            tied = score == score.max(axis=1, keepdims=True)
            right[none, np.where(tied, self.rng_.random(score.shape), -1.0).argmax(axis=1)] = True

        learned_before = self.n_learned_
        for e in range(n_pool):
            mine = np.flatnonzero(exists[:, e])  # positions among the labelled rows
            start = 0
            while start < len(mine):
                read, state = pool.scan(e, ~right[mine[start:], e])
                if e in background and self.takeover_z is not None:
                    first, theirs = background[e]
                    seen = mine[start : start + read]
                    pool.duel(e, ~answered[seen, e], (theirs[rows[seen] - first] > 0.5) != is_class[seen, e])
                start += read
                if not state:
                    continue
                at = mine[start - 1]  # the labelled row whose error fired
                after = np.arange(rows[at] + 1, n_rows)
                self.n_learned_ = learned_before + at + 1
                if state == DRIFT and not self._keeps(e):
                    took_over = background.pop(e, None)
                    self._drifted(e)
                    pool.usage_[e] = learns[after, e].sum()  # what the expert now in the slot learns of this batch
                    if not len(after):
                        continue
                    if took_over is None:  # a fresh expert: it answers and learns the rest of the batch
                        positive[after, e] = _yes(pool.answer_learn([pool.experts[e]], [e], X[after],
                                                                    [[targets[e][i] for i in after]],
                                                                    weights[e, after][None], [False, True])[0])
                    else:
                        first, theirs = took_over
                        positive[after, e] = theirs[after[0] - first :]
                    later = np.arange(at + 1, n)
                    answered[later, e] = (positive[rows[later], e] > 0.5) == is_class[later, e]
                    right[later, e] = answered[later, e]
                    continue
                if state == WARNING:
                    self._log("warnings", e)
                    pool.start_background(e)
                # a background expert new from here (a warning, or a kept expert's challenger) answers and learns
                background[e] = (rows[at] + 1, _yes(pool.answer_learn([pool.backgrounds[e]], [e], X[after],
                                                                      [[targets[e][i] for i in after]],
                                                                      weights[e, after][None], [False, True])[0]))
        self.n_learned_ = learned_before + n

        scores = self._combine(logits, positive)
        classes_before = np.full(n_rows, known)  # per row, the classes known when it was answered
        for k in range(known, n_pool):
            classes_before[born[k] + 1 :] += 1
        by_generalist = np.zeros(n_rows, dtype=bool)
        if general is not None:
            scores, by_generalist = self._follow(scores, general, dict(zip(rows.tolist(), c.tolist())), classes_before)
        details = [(probs, [] if alone else list(range(k))) if k else ({}, [])
                   for probs, k, alone in zip(self._to_dicts(scores, classes_before), classes_before.tolist(),
                                              by_generalist.tolist())]
        return details, rows, right.astype(np.float32)

    def _step(self, x, y, logits: np.ndarray) -> tuple[tuple[dict, list[int]], np.ndarray | None]:
        detail: tuple[dict, list[int]] = ({}, [])
        positive = self._positive([x])[0] if self.classes_ else np.zeros(0)
        general = self._general([x]) if hasattr(self, "generalist_") else None
        if self.classes_:
            scores, alone = self._combine(logits, positive)[None], False
            if general is not None:
                truth = {} if y is None else {0: self._class_index.get(y, len(self.classes_))}  # new: both wrong
                (scores,), (alone,) = self._follow(scores, general, truth, np.array([len(self.classes_)]))
                scores = scores[None]
            detail = (self._to_dicts(scores)[0], [] if alone else list(range(len(self.classes_))))
        if y is None:
            return detail, None
        if general is not None:
            self.generalist_.learn_one(x, y)

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
        theirs = _yes(self.pool_.proba([x], np.array([dueling]), [False, True], backgrounds=True)[0])
        for e, yes in zip(dueling, theirs):
            self.pool_.duel(e, not right[e], (yes > 0.5) != is_class[e])

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


def _yes(proba: np.ndarray) -> np.ndarray:
    """A one-vs-rest expert's probability of yes from its probabilities (..., 2) of [no, yes]; 0.5 from an expert
    that knows nothing (all zeros)."""
    total = proba.sum(axis=-1)
    return np.where(total > 0, proba[..., 1] / np.where(total > 0, total, 1.0), 0.5)
