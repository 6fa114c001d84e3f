"""DriftMoE-Data: multi-class Hoeffding-tree experts chosen per instance by a co-trained neural router."""

from __future__ import annotations

import numpy as np
from river import base

from stream_moe.models.detectors import WARNING
from stream_moe.models.experts import default_expert
from stream_moe.models.features import Frame
from stream_moe.models.mixture import Learned, Mixture


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

    Defaults are the best configuration measured (docs/models.md, "The measurements behind the defaults": each
    change from the paper against the default on the benchmark streams): 16 experts (a budget of 16 alive keeps
    memory and time bounded), three quarters of them learning each instance, trees with adaptive naive-Bayes
    leaves and split confidence 0.01, mixture prediction over the learners, router updates every 32 instances, ADWIN
    drift detection with background experts (on rises of an expert's error only: see below), online bagging with
    lambda 6, no self-expansion, and fast experts (river's Hoeffding tree in arrays and compiled loops: river's
    splits, several times river's speed; docs/benchmarks.md, "Speed, side by side"). `PAPER` holds the parameters of
    the published model (12 experts, top 3 learn, top-1 prediction, router every 256 instances, no detection, no
    bagging, no exploration or balancing, river's trees with adaptive naive-Bayes leaves and split confidence 1e-7):
    `DriftMoEData(**DriftMoEData.PAPER)`.

    Adaptation:

    - Drift detection: with a `drift_detector`, each expert's errors on the instances it learns feed a detector of its
      own (see `Mixture`); `warning_detector` gives the warning level to detectors without one (ADWIN, KSWIN,
      Page-Hinkley), as ARF does. The default ADWINs report a change only when the error rose (`rises_only`): river's
      two-sided ADWIN also calls an expert's improvement a drift and replaces it by a younger one: on a stationary
      5-class RandomRBF stream of 15,000 instances two-sided ADWINs replace experts about a hundred times, the
      default a few times, and the default is more accurate for it
      (`test_experts_learning_a_stationary_concept_are_not_replaced_as_they_improve`).
    - Diversity: online bagging (`bagging_lambda`, see `Mixture`), and `subspace`, a random share of the features per
      expert (a new draw when an expert is replaced).
    - Self-expansion (`expansion=True`, after SEMA): each expert keeps a descriptor of its training inputs. When, over
      the last `novelty_window` instances, most inputs are novel to every descriptor (the median over the rows of
      their lowest z-score is above `novelty_threshold`), or every expert in use has drifted, the pool grows by one
      expert and the router by one output (old weights kept), at most every `expansion_cooldown` instances. The new
      expert is routed the novel instances until its descriptor has matured. Once the pool has grown, routing
      subtracts from each expert's gate score its novelty above `foreign_above` (what its descriptor refuses to
      absorb), so a regime that comes back goes to the experts that learned it; until then self-expansion changes
      no answer. At `max_experts` the least used expert of the recent past is pruned first.

    Parameters
    ----------
    n_experts, top_k
        Pool size and how many experts learn each instance (None: three quarters of the pool, 12 of 16; against 8
        of 16 and the paper's 3 of 12: docs/models.md, "The measurements behind the defaults"). With `expansion`,
        start below `max_experts` (e.g. `n_experts=12`) to leave the pool room to grow.
    prediction
        "top1" or "mixture".
    expert
        Prototype of the experts (a river classifier or a `FastHoeffdingTreeClassifier`, cloned); default a Hoeffding
        tree with grace period 50, split confidence `split_confidence` and adaptive naive-Bayes leaves, of the kind
        `experts` names (against naive-Bayes leaves over the broad suite: docs/benchmarks.md, "The defaults over the
        broad suite").
    split_confidence
        The default expert's split confidence (the delta of its Hoeffding bound): 0.01, as the trees of MOA's ARF,
        where the paper's trees take 1e-7. An ensemble's members split sooner and average out the noisier splits:
        over the broad suite 1e-7 is 0.65 points behind on average, most on Bananas and RandomTree, at 1.1x the
        speed (docs/benchmarks.md, "The defaults over the broad suite").
    leaf_predictions
        Leaf predictions the pool's slots take in turn ("mc", "nb", "nba"), each a clone of the expert tree with that
        `leaf_prediction` (replacements keep their slot's); None (default): the expert as it is. `("nb",)` for
        streams, like RandomRBF with fast drift, where naive-Bayes leaves do better; `("nb", "nba")` a middle way.
    experts
        "fast" (array-based trees with river's semantics, learned and queried by batch: see `Mixture` for what that
        changes) or "river" (river's Hoeffding trees, one instance at a time: the reference).
    hidden, dropout, lr, router_batch, router_epochs
        Router MLP layer sizes, dropout (training only), Adam learning rate, instances per router update, and gradient
        steps per update.
    balance_weight, explore
        Strength of the load-balancing loss and the exploration rate (both 0 reproduce the paper's training).
    drift_detector, warning_detector
        Detector names with optional arguments ("adwin(delta=0.001)", "ddm", "hddm_a", ...; see
        `stream_moe.models.detectors`) or river detectors; None disables detection.
    bagging_lambda, subspace
        Online-bagging Poisson rate (0: off) and share of features each expert sees (None: all).
    expansion, max_experts, novelty_threshold, novelty_window, expansion_cooldown
        Self-expansion switch, budget and trigger (see above).
    device
        "auto", "cpu" or "cuda" for the router.
    seed
        Seeds the router's initialisation and dropout, tie breaks and exploration.

    Examples
    --------
    >>> from river.datasets import synth
    >>> from river import metrics
    >>> model = DriftMoEData(n_experts=4, top_k=2, device="cpu", seed=1)
    >>> metric = metrics.Accuracy()
    >>> for x, y in synth.SEA(seed=1, noise=0.1).take(2000):
    ...     metric.update(y, model.predict_one(x))
    ...     model.learn_one(x, y)
    >>> metric
    Accuracy: 82.05%
    >>> bool((model.usage_ > 0).all())
    True

    References
    ----------
    Aspis, M., Cajas Ordóñez, S. A., Suárez-Cetrulo, A. L., Simón Carbajo, R. (2025). DriftMoE: A Mixture of Experts
    Approach to Handle Concept Drifts. arXiv:2507.18464.
    """

    PAPER = dict(
        n_experts=12, top_k=3, prediction="top1", router_batch=256, drift_detector=None, warning_detector=None,
        bagging_lambda=0.0, explore=0.0, balance_weight=0.0, experts="river", leaf_predictions=("nba",),
        split_confidence=1e-7,
    )

    def __init__(
        self,
        n_experts: int = 16,
        top_k: int | None = None,
        prediction: str = "mixture",
        expert: base.Classifier | None = None,
        experts: str = "fast",
        leaf_predictions: tuple[str, ...] | None = None,
        split_confidence: float = 0.01,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.2,
        lr: float = 2e-3,
        router_batch: int = 32,
        router_epochs: int = 1,
        balance_weight: float = 0.01,
        explore: float = 0.05,
        drift_detector: str | base.DriftDetector | None = "adwin(delta=0.001, rises_only=True)",
        warning_detector: str | base.DriftDetector | None = "adwin(delta=0.01, rises_only=True)",
        bagging_lambda: float = 6.0,
        subspace: float | None = None,
        expansion: bool = False,
        max_experts: int = 16,
        novelty_threshold: float = 2.0,
        novelty_window: int = 500,
        expansion_cooldown: int = 2000,
        device: str = "auto",
        seed: int = 0,
    ):
        super().__init__(
            expert, experts, hidden, dropout, lr, router_batch, router_epochs, balance_weight,
            drift_detector, warning_detector, bagging_lambda, device, seed,
        )
        if not 0 < split_confidence < 1:
            raise ValueError(f"split_confidence must be in (0, 1), not {split_confidence!r}")
        if prediction not in ("top1", "mixture"):
            raise ValueError(f"prediction must be 'top1' or 'mixture', not {prediction!r}")
        if leaf_predictions is not None:
            if not leaf_predictions or not set(leaf_predictions) <= {"mc", "nb", "nba"}:
                raise ValueError(f"leaf_predictions must name 'mc', 'nb' or 'nba', not {leaf_predictions!r}")
            if expert is not None and "leaf_prediction" not in expert._get_params():
                raise ValueError(
                    f"leaf_predictions needs trees as experts; {type(expert).__name__} has no leaf_prediction "
                    "(pass leaf_predictions=None)"
                )
        if top_k is not None and not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be between 1 and n_experts ({n_experts}), not {top_k}")
        if expansion and max_experts < n_experts:
            raise ValueError(f"max_experts ({max_experts}) is below n_experts ({n_experts})")
        self.n_experts = n_experts
        self.leaf_predictions = leaf_predictions
        self.split_confidence = split_confidence
        self.top_k = top_k
        self.prediction = prediction
        self.explore = explore
        self.subspace = subspace
        self.expansion = expansion
        self.max_experts = max_experts
        self.novelty_threshold = novelty_threshold
        self.novelty_window = novelty_window
        self.expansion_cooldown = expansion_cooldown

    @property
    def foreign_above(self) -> float:
        """The novelty above which an input is foreign to an expert: its descriptor does not absorb it and routing
        penalises the expert for it. Twice the novelty threshold: a descriptor whose recent normal only holds what it
        absorbed narrows itself step by step when it cuts at the threshold (until 10-30% of its own inputs look
        novel); at twice it stays near the natural 4-6%, while inputs of another region (z in the tens) are refused."""
        return 2 * self.novelty_threshold

    def _expert_prototypes(self) -> list[base.Classifier]:
        """The expert tree once per leaf prediction of `leaf_predictions`: the pool's slots take them in turn."""
        (prototype,) = super()._expert_prototypes()
        if self.leaf_predictions is None:
            return [prototype]
        return [prototype.clone({"leaf_prediction": kind}) for kind in self.leaf_predictions]

    def _default_expert(self) -> base.Classifier:
        return default_expert(self.experts, self.split_confidence)

    def _ready(self) -> bool:
        return hasattr(self, "pool_") and bool(self.classes_)

    def _build(self) -> None:
        self.router_ = self._new_router(self.n_experts)
        self.pool_ = self._new_pool(
            self.n_experts, descriptors=self.foreign_above if self.expansion else None, subspace=self.subspace
        )
        self.routed_ = np.zeros(self.n_experts, dtype=np.int64)
        self.rng_ = np.random.default_rng(self.seed)
        self._start_log()
        self._recent_use = np.zeros(self.n_experts)  # exponentially decayed top-1 counts, for pruning
        self._novelty_recent = np.zeros(0)  # of the last `novelty_window` rows learned: novelty to the best expert
        self._drifted_at = np.full(self.n_experts, -np.inf)
        self._last_expansion = 0
        self._fresh: int | None = None  # the expert added last, while it is being routed the novel instances

    @property
    def usage_(self) -> np.ndarray:
        return self.pool_.usage_ if hasattr(self, "pool_") else np.zeros(self.n_experts, dtype=np.int64)

    @property
    def n_learning(self) -> int:
        """How many experts learn each instance: `top_k`, by default three quarters of the pool's initial size (12 of
        16)."""
        return self.top_k if self.top_k is not None else max(1, 3 * self.n_experts // 4)

    @property
    def n_predicting(self) -> int:
        return 1 if self.prediction == "top1" else self.n_learning

    # ---- routing ---------------------------------------------------------------------------------------------------

    def _gates(self, z: np.ndarray, frame: Frame, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Gate scores: the router's logits, minus each expert's novelty above `foreign_above` once the pool has
        grown. Before any expansion no input shift has been seen, and the descriptors' differences only mirror how
        the router has split the inputs between the experts: overriding it with them costs accuracy (LED_a, 50,000
        instances, expansion without detection, nothing expanded: 61.91% with the penalty against 65.49%)."""
        if not self.expansion:
            return logits, None
        novelty = self.pool_.novelty(z, frame)
        if not self.counts_["expansions"]:
            return logits, novelty
        return logits - np.maximum(novelty - self.foreign_above, 0.0), novelty

    def _combine(self, gate: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """Class scores (B, C) from the predicting experts' gate scores (B, K) and probabilities (B, K, C)."""
        if self.prediction == "top1":
            return proba[:, 0]
        weights = np.exp(gate - gate.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("bk,bkc->bc", weights, proba)

    def _predict_routed(self, xs, z: np.ndarray, logits: np.ndarray) -> list[tuple[dict, list[int]]]:
        gates, _ = self._gates(z, self.encoder_.frame(), logits)
        which = np.argsort(-gates, axis=1, kind="stable")[:, : self.n_predicting]
        scores = self._combine(np.take_along_axis(gates, which, axis=1), self.pool_.proba(xs, which, self.classes_))
        return list(zip(self._to_dicts(scores), which.tolist()))

    # ---- test-then-train --------------------------------------------------------------------------------------------

    def _learn_batch(self, xs, ys, z: np.ndarray, frame: Frame, logits: np.ndarray) -> Learned:
        gates, novelty = self._gates(z, frame, logits)
        if self.pool_.batched:
            return self._learn_batched(xs, ys, z, frame, gates, novelty)
        self._replaced_in_batch: list[tuple[int, int]] = []  # (row, expert): earlier rows' masks judged the old expert
        self._described: dict[int, list[int]] = {}  # expert -> rows it learned in this batch, for its descriptor
        out = []
        for i, (x, y) in enumerate(zip(xs, ys)):
            self._row = i
            out.append(self._step(x, y, gates[i], None if novelty is None else novelty[i]))
        for row, e in self._replaced_in_batch:
            for _, mask in out[:row]:
                if mask is not None:
                    mask[e] = 0.0
        if self.expansion:
            self.pool_.describe([self._described.get(e, []) for e in range(len(self.pool_))], z, frame)
            learned = [i for i, y in enumerate(ys) if y is not None]
            self._end_batch(None if self._replaced_in_batch else novelty[learned])
        return self._stacked(out)

    def _learn_batched(
        self, xs, ys, z: np.ndarray, frame: Frame, gates: np.ndarray, novelty: np.ndarray | None
    ) -> list[tuple[tuple[dict, list[int]], np.ndarray | None]]:
        """`_learn_batch` for batched experts: one compiled call for the whole pool and the batch instead of a Python
        step per row, with the same rules as `_step`. The router's choices (and exploration) are fixed first;
        then each expert answers every row of the batch test-then-train, learning the rows it was chosen for right
        after answering them, so each row is answered by experts that learned the rows before it, as one by one.
        Then each expert's monitor reads its errors in row
        order: a warning starts a background expert, which learns the expert's rows after that one (answering them
        as it goes); a drift puts the background (or a fresh) expert in the slot, and its answers to the rows after
        replace the old expert's. Errors other experts read, and the tie breaks of rows no expert got right, stay
        those of the first answers. With self-expansion, rows novel to every expert but the one grown last go to that
        one, and the descriptors absorb the rows their experts learned at the batch end."""
        n_pool, n_rows = len(self.pool_), len(xs)
        order = np.argsort(-gates, axis=1, kind="stable")
        known = len(self.classes_)
        rows = np.array([i for i, y in enumerate(ys) if y is not None], dtype=np.int64)
        c = np.array([self._register_class(ys[i]) for i in rows], dtype=np.int64)
        seen = np.zeros(n_rows)
        seen[rows] = c + 1
        classes_before = np.maximum(known, np.r_[0, np.maximum.accumulate(seen)[:-1]]).astype(np.int64)
        n = len(rows)

        chosen = order[rows, : self.n_learning].copy()
        novel = np.zeros(n, dtype=bool)  # rows taught to the expert grown last
        if n and self._fresh is not None:
            novel = self._novel_rows(novelty[rows])
            chosen[novel & ~(chosen == self._fresh).any(axis=1), -1] = self._fresh
        if n and self.explore > 0 and self.n_learning < n_pool:
            swap = np.flatnonzero((self.rng_.random(n) < self.explore) & ~novel)
            chosen[swap, -1] = order[rows[swap], self.rng_.integers(self.n_learning, n_pool, len(swap))]
        learns = np.zeros((n_rows, n_pool), dtype=bool)
        learns[rows[:, None], chosen] = True
        if n:
            top1 = order[rows, 0]
            self.routed_ += np.bincount(top1, minlength=n_pool)
            decay = 0.999 ** np.arange(n - 1, -1, -1)
            self._recent_use = self._recent_use * 0.999**n + np.bincount(top1, decay, minlength=n_pool)

        pool, classes = self.pool_, self.classes_
        X = pool.code(xs)
        weights = pool.bag(xs, learns)
        behind = [e for e in range(n_pool) if pool.backgrounds[e] is not None]
        slots = list(range(n_pool)) + behind  # every expert, then the background experts, in one pass
        answers = pool.answer_learn(pool.experts + [pool.backgrounds[e] for e in behind], slots, X, [ys] * len(slots),
                                    weights[slots], classes)
        proba = np.stack(answers[:n_pool], axis=1)  # (B, E, C)
        # expert -> (first row, its background's answers from it)
        background: dict[int, tuple[int, np.ndarray]] = {e: (0, a) for e, a in zip(behind, answers[n_pool:])}

        right = np.zeros((n, n_pool), dtype=bool)
        if n:
            answer = proba[rows]
            right = (answer.argmax(axis=2) == c[:, None]) & (answer.max(axis=2) > 0)
            none = np.flatnonzero(~right.any(axis=1))
            if len(none):  # the expert giving the true class the highest probability, exact ties at random
                score = answer[none, :, c[none]]
                tied = score == score.max(axis=1, keepdims=True)
                right[none, np.where(tied, self.rng_.random(score.shape), -1.0).argmax(axis=1)] = True
            if novel.any():
                right[novel, self._fresh] = True  # teach the router where the new expert belongs
        masks = right.astype(np.float32)
        replaced_at = np.full(n_pool, -1)  # per expert: the row after which its slot holds a new expert

        learned_before = self.n_learned_
        learning = learns[rows].T  # (E, labelled rows)
        for e in range(n_pool):
            mine = np.flatnonzero(learning[e])  # positions among the labelled rows
            start = 0
            while start < len(mine):
                read, state = pool.scan(e, ~right[mine[start:], e])
                start += read
                if not state:
                    continue
                at = mine[start - 1]  # the labelled row whose error fired
                after = np.arange(rows[at] + 1, n_rows)
                ys_after = [ys[i] for i in after]
                self.n_learned_ = learned_before + at + 1
                if state == WARNING:
                    pool.start_background(e)
                    self._log("warnings", e)
                    background[e] = (rows[at] + 1, pool.answer_learn([pool.backgrounds[e]], [e], X[after], [ys_after],
                                                                     weights[e, after][None], classes)[0])
                    continue
                took_over = background.pop(e, None)
                self._drifted(e)
                self._drifted_at[e] = self.n_learned_
                masks[:at, e] = 0.0  # those rows judged the old expert
                replaced_at[e] = rows[at]
                pool.usage_[e] = learns[after, e].sum()  # what the expert now in the slot learns of this batch
                if not len(after):
                    continue
                if took_over is None:  # a fresh expert: it answers and learns the rest of the batch
                    pool.draw_subspace(e, xs[after[0]])
                    proba[after, e] = pool.answer_learn([pool.experts[e]], [e], X[after], [ys_after],
                                                        weights[e, after][None], classes)[0]
                else:
                    first, answers = took_over
                    proba[after, e] = answers[after[0] - first :]
                later = np.arange(at + 1, n)
                answer = proba[rows[later], e]
                right[later, e] = (answer.argmax(axis=1) == c[later]) & (answer.max(axis=1) > 0)
                right[later, e] |= novel[later] & (e == self._fresh)
                masks[later, e] = right[later, e]
        self.n_learned_ = learned_before + n
        if self.expansion:
            learned = [rows[learning[e]] for e in range(n_pool)]
            self.pool_.describe([r[r > after] for r, after in zip(learned, replaced_at)], z, frame)
            self._end_batch(None if (replaced_at >= 0).any() else novelty[rows])

        which = order[:, : self.n_predicting]
        scores = self._combine(np.take_along_axis(gates, which, axis=1),
                               np.take_along_axis(proba, which[:, :, None], axis=1))
        details = [(probs, chosen) if k else ({}, []) for probs, chosen, k in
                   zip(self._to_dicts(scores, classes_before), which.tolist(), classes_before.tolist())]
        return details, rows, masks

    def _step(self, x, y, gate, novelty) -> tuple[tuple[dict, list[int]], np.ndarray | None]:
        n_pool = len(self.pool_)
        if len(gate) < n_pool:  # experts added earlier in this batch: not scored by this batch's router call
            gate = np.pad(gate, (0, n_pool - len(gate)), constant_values=-np.inf)
        order = np.argsort(-gate, kind="stable")
        proba = self.pool_.proba([x], np.arange(n_pool)[None, :], self.classes_)[0]  # (E, C): all, for the mask
        detail: tuple[dict, list[int]] = ({}, [])
        if self.classes_:
            which = order[: self.n_predicting]
            detail = (self._to_dicts(self._combine(gate[None, which], proba[None, which]))[0], which.tolist())
        if y is None:
            return detail, None

        c = self._register_class(y)
        if c == proba.shape[1]:
            proba = np.pad(proba, ((0, 0), (0, 1)))
        right = (proba.argmax(axis=1) == c) & (proba.max(axis=1) > 0)
        if not right.any():
            right[self._tie_break(proba[:, c])] = True

        chosen = order[: self.n_learning].copy()
        if self._fresh is not None and novelty is not None and self._novel_rows(novelty[None])[0]:
            chosen[-1] = self._fresh if self._fresh not in chosen else chosen[-1]
            right[self._fresh] = True  # teach the router where the new expert belongs
        elif self.explore > 0 and self.n_learning < n_pool and self.rng_.random() < self.explore:
            chosen[-1] = order[self.rng_.integers(self.n_learning, n_pool)]
        self.n_learned_ += 1
        self.routed_[order[0]] += 1
        self._recent_use *= 0.999
        self._recent_use[order[0]] += 1.0
        for e in chosen:
            self.pool_.learn(e, [x], [y])
            if novelty is not None:
                self._described.setdefault(e, []).append(self._row)
            if self._watch(e, not right[e]):
                self._replaced(e)
        return detail, right.astype(np.float32)

    # ---- adaptation -------------------------------------------------------------------------------------------------

    def _replaced(self, e: int) -> None:
        """Bookkeeping after expert e was replaced (see `Mixture._watch`)."""
        self._replaced_in_batch.append((self._row, e))
        self._drifted_at[e] = self.n_learned_
        if self.expansion:
            self._described.pop(e, None)  # those rows were the old expert's

    def _novel_rows(self, novelty: np.ndarray) -> np.ndarray:
        """Which rows (novelty (B, E)) every expert but the one grown last finds novel."""
        others = np.delete(novelty, self._fresh, axis=1)
        if not others.shape[1]:
            return np.zeros(len(novelty), dtype=bool)
        return others.min(axis=1) > self.novelty_threshold

    def _forget_novelty(self) -> None:
        self._novelty_recent = np.zeros(0)

    def _in_use_have_all_drifted(self) -> bool:
        in_use = self._recent_use > 0.05 * self._recent_use.sum()
        return bool(in_use.any()) and bool((self._drifted_at[in_use] > self.n_learned_ - self.novelty_window).all())

    def _end_batch(self, novelty: np.ndarray | None) -> None:
        """Self-expansion at a batch end, after the descriptors learned: the expert grown last stops taking the novel
        rows once its descriptor has matured; the learned rows' novelty (B, E) joins the recent window (None: an
        expert was replaced in the batch, its descriptor restarted, so the window restarts); then maybe expand."""
        if self._fresh is not None and self.pool_.descriptors[self._fresh].mature:
            self._fresh = None
        if novelty is None:
            self._forget_novelty()
        else:
            self._novelty_recent = np.concatenate([self._novelty_recent, novelty.min(axis=1)])[-self.novelty_window :]
        self._maybe_expand()

    def _maybe_expand(self) -> None:
        """At a batch end (so that the router's masks of the batch keep their width): expand if no expert covers the
        recent inputs or every expert in use has just drifted.

        Not covered: most recent rows (the median) are novel to every expert. Row by row, so that a window that spans
        a switch between two known regions is covered (each row by its own expert), and a median, so that a few
        outliers are not a new region."""
        recent = self._novelty_recent
        novel = len(recent) >= self.novelty_window and np.median(recent) > self.novelty_threshold
        if novel or self._in_use_have_all_drifted():
            self._expand()

    def _expand(self) -> None:
        if self.n_learned_ - self._last_expansion < self.expansion_cooldown:
            return
        if len(self.pool_) >= self.max_experts:
            self._prune(int(np.argmin(self._recent_use)))
        e = self.pool_.add()
        assert self.router_.add_output() == e
        self.routed_ = np.append(self.routed_, 0)
        self._recent_use = np.append(self._recent_use, 0.0)
        self._drifted_at = np.append(self._drifted_at, -np.inf)
        self._fresh = e
        self._last_expansion = self.n_learned_
        self._forget_novelty()
        self._log("expansions", e)
        self.pool_sizes_.append((self.n_learned_, len(self.pool_)))

    def _prune(self, e: int) -> None:
        self._log("prunes", e)
        self.pool_.remove(e)
        self.router_.remove_output(e)
        self.routed_ = np.delete(self.routed_, e)
        self._recent_use = np.delete(self._recent_use, e)
        self._drifted_at = np.delete(self._drifted_at, e)
        if self._fresh is not None:
            self._fresh = None if self._fresh == e else self._fresh - (self._fresh > e)
        self.pool_sizes_.append((self.n_learned_, len(self.pool_)))
