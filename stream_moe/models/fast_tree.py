"""A Hoeffding tree whose nodes and leaf statistics live in numpy arrays, learned and queried a micro-batch at a time."""

from __future__ import annotations

import operator

import numpy as np
from river import base

from stream_moe.models import tree_kernels as kernels
from stream_moe.models.rows import RowCoder

LEAF, NUMERIC, NOMINAL_BINARY, NOMINAL_MULTIWAY = (kernels.LEAF, kernels.NUMERIC, kernels.NOMINAL_BINARY,
                                                   kernels.NOMINAL_MULTIWAY)
_MODES = {"mc": kernels.MC, "nb": kernels.NB, "nba": kernels.NBA}
_CRITERIA = {"info_gain": kernels.INFO_GAIN, "gini": kernels.GINI}


class FastHoeffdingTreeClassifier(base.Classifier):
    """Hoeffding tree (VFDT) with the semantics of river's `HoeffdingTreeClassifier`, stored in arrays.

    Same statistics and decisions as river: per leaf and feature a Gaussian per class for numeric features (split
    candidates: `n_splits` = 10 evenly spaced points between the smallest and largest value seen) and weight counts per
    category for nominal ones (a multiway split, or `binary_split` "equal / not equal" candidates); information gain or
    Gini; a split when the best candidate beats the second best (or the null split) by the Hoeffding bound, or the bound
    falls below `tau`; a split attempt every `grace_period` weight at a leaf; a leaf whose majority class holds more
    than `max_share_to_split` is deactivated (river's pre-pruning); leaf prediction "mc", "nb" or "nba"; a missing
    feature follows the most travelled branch. Given the same instances one by one, it makes the same splits as river
    up to floating-point rounding in near ties (see the tests).

    Memory: `max_size` (MiB) bounds the tree's arrays. After every split the leaves are ranked by promise (weight not
    in the majority class) and only as many as fit keep their observers (river's policy after Kirkby 2007); a leaf
    deactivated this way predicts by majority class and is reactivated, with fresh observers, when it ranks high again.
    Unlike river, the size is measured exactly from the arrays on each split instead of being estimated every
    `memory_estimate_period` instances.

    Batches: `predict_learn_many(X, y, w)`, `learn_many(X, y, w)` and `predict_proba_many(X)` take rows coded by a
    `RowCoder` (NaN: missing; nominal columns marked by `nominal`). `predict_proba_many` gives for each row exactly what
    `predict_proba_one` would. `predict_learn_many` is `predict_proba_one` then `learn_one` per row (`learn_many`
    without the answer), exactly: the compiled loop handles rows in order; when one makes its leaf due for a split
    attempt, the attempt runs (inside the loop when it leaves the leaf as it is; otherwise the loop stops, Python
    splits or deactivates the leaf, and the loop goes on), and the rest of the batch is sorted through the tree as it
    is then; a learned row with a category a multiway node has no branch for also stops the loop, for Python to add
    the branch (a new leaf, as river). So its answers do not depend on the batch size. `predict_learn_trees` does this
    for several trees in one call.

    Parameters
    ----------
    grace_period, max_depth, split_criterion, delta, tau, leaf_prediction, nb_threshold, nominal_attributes,
    binary_split, min_branch_fraction, max_share_to_split, max_size
        As in river's `HoeffdingTreeClassifier` (split criteria: "info_gain", "gini"; `max_size` in MiB).

    Examples
    --------
    >>> from river.datasets import synth
    >>> from river import metrics
    >>> model = FastHoeffdingTreeClassifier(grace_period=50)
    >>> metric = metrics.Accuracy()
    >>> for x, y in synth.SEA(seed=1, noise=0.1).take(5000):
    ...     metric.update(y, model.predict_one(x))
    ...     model.learn_one(x, y)
    >>> metric  # river's HoeffdingTreeClassifier(grace_period=50): the same
    Accuracy: 85.98%
    >>> model.n_leaves
    4
    """

    def __init__(
        self,
        grace_period: int = 200,
        max_depth: int | None = None,
        split_criterion: str = "info_gain",
        delta: float = 1e-7,
        tau: float = 0.05,
        leaf_prediction: str = "nba",
        nb_threshold: int = 0,
        nominal_attributes: list | None = None,
        binary_split: bool = False,
        min_branch_fraction: float = 0.01,
        max_share_to_split: float = 0.99,
        max_size: float = 100.0,
    ):
        if split_criterion not in ("info_gain", "gini"):
            raise ValueError(f"split_criterion must be 'info_gain' or 'gini', not {split_criterion!r}")
        if leaf_prediction not in ("mc", "nb", "nba"):
            raise ValueError(f"leaf_prediction must be 'mc', 'nb' or 'nba', not {leaf_prediction!r}")
        self.grace_period = grace_period
        self.max_depth = max_depth
        self.split_criterion = split_criterion
        self.delta = delta
        self.tau = tau
        self.leaf_prediction = leaf_prediction
        self.nb_threshold = nb_threshold
        self.nominal_attributes = nominal_attributes
        self.binary_split = binary_split
        self.min_branch_fraction = min_branch_fraction
        self.max_share_to_split = max_share_to_split
        self.max_size = max_size

    @property
    def _multiclass(self):
        return True

    # ---- state -------------------------------------------------------------------------------------------------------

    def _init_state(self) -> None:
        self.classes_: list = []
        self._class_index: dict = {}
        self.coder_ = RowCoder(self.nominal_attributes)  # for the dict API only
        self.n_nodes_ = 1
        self.n_features_ = 0
        self.n_categories_ = 0
        cap = 8
        self.kind_ = np.zeros(cap, dtype=np.int8)
        self.feature_ = np.full(cap, -1, dtype=np.int64)
        self.threshold_ = np.zeros(cap)
        self.left_ = np.full(cap, -1, dtype=np.int64)
        self.right_ = np.full(cap, -1, dtype=np.int64)
        self.multiway_ = np.full(cap, -1, dtype=np.int64)  # multiway node -> its row of branch_, -1 otherwise
        self.branch_ = np.full((0, 0), -1, dtype=np.int64)  # per multiway node: child per category code, -1 none
        self.depth_ = np.zeros(cap, dtype=np.int64)
        self.stats_ = np.zeros((cap, 0))  # class weights (a branch keeps those of its split)
        self.known_ = np.zeros((cap, 0), dtype=bool)  # classes a node has a count for, even zero (river's dict keys)
        self.last_attempt_ = np.zeros(cap)
        self.mc_correct_ = np.zeros(cap)
        self.nb_correct_ = np.zeros(cap)
        self.slot_ = np.full(cap, -1, dtype=np.int64)  # observer slot of an active leaf, -1 otherwise
        self.slot_of_ = np.zeros(0, dtype=np.int64)
        self.free_slots_: list[int] = []
        # observers, per slot, feature and class: Gaussian weight, mean, M2, min, max; nominal: per category weight
        self.obs_ = np.zeros((5, 0, 0, 0))
        self.cat_ = np.zeros((0, 0, 0, 0))
        self.nominal_ = np.zeros(0, dtype=bool)
        self._activate(0)

    def _grow_nodes(self, need: int) -> None:
        cap = len(self.kind_)
        if need <= cap:
            return
        new = max(need, 2 * cap)
        for name, fill in (("kind_", 0), ("feature_", -1), ("threshold_", 0.0), ("left_", -1), ("right_", -1),
                           ("depth_", 0), ("last_attempt_", 0.0), ("mc_correct_", 0.0), ("nb_correct_", 0.0),
                           ("slot_", -1), ("stats_", 0.0), ("known_", False), ("multiway_", -1)):
            old = getattr(self, name)
            grown = np.full((new,) + old.shape[1:], fill, dtype=old.dtype)
            grown[:cap] = old
            setattr(self, name, grown)

    def _grow_observers(self, slots: int, features: int, classes: int, categories: int) -> None:
        s0, f0, c0 = self.obs_.shape[1:]
        v0 = self.cat_.shape[2]
        if slots <= s0 and features <= f0 and classes <= c0 and categories <= v0:
            return
        s1, f1, c1 = max(slots, s0), max(features, f0), max(classes, c0)
        if slots > s0:
            s1 = max(slots, 2 * s0)
        obs = np.zeros((5, s1, f1, c1))
        obs[3], obs[4] = np.inf, -np.inf
        obs[:, :s0, :f0, :c0] = self.obs_
        self.obs_ = obs
        v1 = max(categories, v0)
        if v1 > 0:
            cat = np.zeros((s1, f1, v1, c1))
            a, b, c, d = self.cat_.shape
            cat[:a, :b, :c, :d] = self.cat_
            self.cat_ = cat
        if s1 > s0:
            self.slot_of_ = np.concatenate([self.slot_of_, np.full(s1 - s0, -1, dtype=np.int64)])
            self.free_slots_.extend(range(s1 - 1, s0 - 1, -1))

    def _activate(self, node: int) -> None:
        """Give a leaf fresh (empty) observers."""
        if not self.free_slots_:
            self._grow_observers(max(1, 2 * self.obs_.shape[1]), *self.obs_.shape[2:], self.cat_.shape[2])
        s = self.free_slots_.pop()
        self.obs_[:3, s] = 0.0
        self.obs_[3, s], self.obs_[4, s] = np.inf, -np.inf
        if self.cat_.size:
            self.cat_[s] = 0.0
        self.slot_[node], self.slot_of_[s] = s, node

    def _deactivate(self, node: int) -> None:
        s = self.slot_[node]
        if s >= 0:
            self.free_slots_.append(int(s))
            self.slot_[node], self.slot_of_[s] = -1, -1

    def _register(self, ys) -> np.ndarray:
        index = self._class_index
        for y in ys:
            if y not in index:
                index[y] = len(self.classes_)
                self.classes_.append(y)
        c = len(self.classes_)
        if c > self.stats_.shape[1]:
            self.stats_ = np.pad(self.stats_, ((0, 0), (0, c - self.stats_.shape[1])))
            self.known_ = np.pad(self.known_, ((0, 0), (0, c - self.known_.shape[1])))
            self._grow_observers(0, self.n_features_, c, self.cat_.shape[2])
        return np.fromiter((index[y] for y in ys), dtype=np.int64, count=len(ys))

    def _see_columns(self, X: np.ndarray, nominal) -> None:
        f = X.shape[1]
        if f > self.n_features_:
            mask = np.zeros(f, dtype=bool) if nominal is None else np.asarray(nominal, dtype=bool)[:f]
            self.nominal_ = np.concatenate([self.nominal_, mask[self.n_features_:]])
            self.n_features_ = f
            self._grow_observers(0, f, len(self.classes_), self.cat_.shape[2])
        if self.nominal_.any():
            top = np.nanmax(X[:, self.nominal_[:f]], initial=-1.0)
            if top + 1 > self.cat_.shape[2]:
                self._grow_observers(0, f, len(self.classes_), int(top) + 1)

    @property
    def n_leaves(self) -> int:
        return int((self.kind_[: self.n_nodes_] == LEAF).sum()) if hasattr(self, "kind_") else 0

    @property
    def n_active_leaves(self) -> int:
        return int((self.slot_[: self.n_nodes_] >= 0).sum()) if hasattr(self, "kind_") else 0

    @property
    def height(self) -> int:
        return int(self.depth_[: self.n_nodes_].max()) + 1 if hasattr(self, "kind_") else 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the tree's arrays."""
        arrays = (self.kind_, self.feature_, self.threshold_, self.left_, self.right_, self.multiway_, self.branch_,
                  self.depth_, self.stats_, self.known_, self.last_attempt_, self.mc_correct_, self.nb_correct_,
                  self.slot_, self.slot_of_, self.obs_, self.cat_)
        return sum(a.nbytes for a in arrays)

    def _width(self, X: np.ndarray) -> np.ndarray:
        """Rows padded with missing values to the columns the tree knows (rows coded before a feature appeared)."""
        if X.shape[1] >= self.n_features_:
            return X
        return np.pad(X, ((0, 0), (0, self.n_features_ - X.shape[1])), constant_values=np.nan)

    @property
    def branches_(self) -> dict[int, dict[int, int]]:
        """The multiway nodes' branches: node -> {category code: child}, children in the order they were made."""
        out = {}
        for node in np.flatnonzero(self.multiway_[: self.n_nodes_] >= 0).tolist():
            row = self.branch_[self.multiway_[node]]
            codes = np.flatnonzero(row >= 0)
            out[node] = {code: child for child, code in sorted(zip(row[codes].tolist(), codes.tolist()))}
        return out

    def _add_branch(self, node: int, code: int) -> int:
        """A learned row brought multiway node `node` a category it has no branch for: a new (empty) leaf, as river."""
        self._widen_branches(code + 1)
        leaf = self._new_leaf(node, np.zeros(len(self.classes_)))
        self.branch_[self.multiway_[node], code] = leaf
        return leaf

    def _widen_branches(self, width: int) -> None:
        """Room in the branch table for category codes below `width`."""
        if width > self.branch_.shape[1]:
            self.branch_ = np.pad(self.branch_, ((0, 0), (0, width - self.branch_.shape[1])), constant_values=-1)

    # ---- prediction --------------------------------------------------------------------------------------------------

    def _sort(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The leaf each row reaches, and whether it took a detour (a missing value or an unseen category)."""
        return kernels.sort_rows(X, self.kind_, self.feature_, self.threshold_, self.left_, self.right_, self.stats_,
                                 self.multiway_, self.branch_)

    def _arrays(self) -> tuple:
        """The arrays and settings the compiled prediction and learning loops read and update."""
        return (self.stats_, self.known_, self.slot_, self.mc_correct_, self.nb_correct_, self.obs_, self.cat_,
                self.nominal_, _MODES[self.leaf_prediction], self.nb_threshold)

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (B, len(classes_)) of coded rows, columns in the order of `classes_`."""
        if not hasattr(self, "kind_"):
            return np.zeros((len(X), 0))
        X = self._width(np.asarray(X, dtype=float))
        leaves, _ = self._sort(X)
        return kernels.predict(X, leaves, *self._arrays())

    def predict_proba_one(self, x: dict) -> dict:
        if not hasattr(self, "kind_"):
            return {}
        proba = self.predict_proba_many(self.coder_.transform_many([x]))[0]
        order = sorted(range(len(self.classes_)), key=lambda i: self.classes_[i])
        return {self.classes_[i]: float(proba[i]) for i in order}

    # ---- learning ----------------------------------------------------------------------------------------------------

    def learn_one(self, x: dict, y, *, w: float = 1.0) -> None:
        if not hasattr(self, "kind_"):
            self._init_state()
        self.coder_.learn_many([x])
        self.learn_many(self.coder_.transform_many([x]), [y], np.array([w]), nominal=self.coder_.nominal)

    def learn_many(self, X: np.ndarray, y, w=None, nominal=None) -> None:
        """Learn coded rows `X` (NaN: missing) with labels `y` and weights `w` (default 1; 0: not learned); `nominal`
        marks the columns holding category codes. See the class docstring for how this differs from `learn_one`."""
        self.predict_learn_many(X, y, w, nominal)

    def predict_learn_many(self, X: np.ndarray, y, w=None, nominal=None) -> np.ndarray:
        """Test-then-train over coded rows, in order: each row's probabilities (as `predict_proba_many`), then the row
        is learned if its weight is > 0 (rows with weight 0, or label None, are only predicted)."""
        return predict_learn_trees([self], np.asarray(X, dtype=float)[None], [y], [w], nominal)[0]

    def _prepare(self, X: np.ndarray, y, w: np.ndarray, nominal, codes: dict) -> np.ndarray:
        """Before a test-then-train pass over rows `X` with labels `y` and weights `w`: register new features, and new
        classes in the order of the rows learned; the class index of each row learned. `codes` caches the indices
        of a list of labels for a list of classes (the trees of a pool mostly share both)."""
        if not hasattr(self, "kind_"):
            self._init_state()
        self._see_columns(X, nominal)
        key = (id(y), tuple(self.classes_))
        if key not in codes:
            index = self._class_index
            ci = np.array([index.get(label, -1) for label in y], dtype=np.int64)
            codes[key] = ci, bool((ci < 0).any())
        ci, unknown = codes[key]
        if unknown and (ci[w > 0] < 0).any():  # a class new to this tree among its rows
            rows = np.flatnonzero(w > 0).tolist()
            ci = np.zeros(len(y), dtype=np.int64)
            ci[rows] = self._register([y[i] for i in rows])
        return ci

    def _settings(self) -> tuple[tuple, tuple, bool]:
        """The settings `kernels.predict_learn_trees` reads, as (floats, ints, has nominal observers)."""
        return ((self.grace_period, self.nb_threshold, self.min_branch_fraction, self.max_share_to_split, self.delta,
                 self.tau),
                (-1 if self.max_depth is None else self.max_depth, _MODES[self.leaf_prediction],
                 _CRITERIA[self.split_criterion], self.n_features_, int(self.binary_split)),
                bool(self.cat_.size))

    def _attempt(self, leaf: int) -> None:
        """A leaf is due: deactivate it at the maximum depth, else attempt to split it (river's order)."""
        if self.max_depth is not None and self.depth_[leaf] >= self.max_depth:
            self._deactivate(leaf)
            return
        total = self.stats_[leaf].sum()
        self._attempt_split(leaf)
        self.last_attempt_[leaf] = total

    # ---- splitting ---------------------------------------------------------------------------------------------------

    def _numeric_candidates(self, s: int, pre: np.ndarray):
        """Best binary split of each numeric feature: merits (F,), thresholds, left/right weights (F, C), which
        classes each side knows (F, C), and which numeric features the slot has seen (F,)."""
        return kernels.numeric_candidates(self.obs_, s, self.n_features_, pre, self.nominal_,
                                          _CRITERIA[self.split_criterion], self.min_branch_fraction)

    def _nominal_candidate(self, s: int, f: int, pre: np.ndarray):
        """Best split on nominal feature f (ranked by `kernels.nominal_candidate`): (merit, kind, value, [(code,
        weights)]), kind None when the slot has seen no category of f."""
        merit, kind, value = kernels.nominal_candidate(self.cat_, s, f, pre, self.binary_split,
                                                       _CRITERIA[self.split_criterion], self.min_branch_fraction)
        counts = self.cat_[s, f, :, : len(pre)]
        if kind == NOMINAL_MULTIWAY:
            values = np.flatnonzero(counts.sum(axis=1) > 0)
            return merit, kind, None, list(zip(values.tolist(), counts[values]))
        if kind == NOMINAL_BINARY:
            return merit, kind, value, [(value, counts[value].copy()), (None, counts.sum(axis=0) - counts[value])]
        return -np.inf, None, None, None

    def _attempt_split(self, node: int) -> None:
        pre = self.stats_[node]
        total = pre.sum()
        if (pre != 0).sum() < 2:
            return
        if pre.max() / total > self.max_share_to_split:  # river: only the null split is suggested, and it wins
            self._deactivate(node)
            self._enforce_size_limit()
            return
        s = int(self.slot_[node])
        F = self.n_features_
        numeric = self._numeric_candidates(s, pre)
        merits, seen = numeric[0], numeric[-1]
        nominal = {}
        if self.cat_.size:
            seen |= self.nominal_[:F] & (self.cat_[s, :F].sum(axis=(1, 2)) > 0)
            for f in np.flatnonzero(self.nominal_[:F] & seen).tolist():
                nominal[f] = self._nominal_candidate(s, f, pre)
                merits[f] = nominal[f][0]
        should, best_f, best = kernels.decide(merits, seen, total, int(self.known_[node].sum()),
                                              _CRITERIA[self.split_criterion], self.delta, self.tau)
        if not should:
            return
        if best_f < 0 or best == -np.inf:
            self._deactivate(node)
        elif best_f in nominal:
            _, kind, value, branches = nominal[best_f]
            self._split(node, best_f, kind, -1.0 if value is None else float(value),
                        [(code, weights, weights > 0) for code, weights in branches])
        else:
            _, points, left, right, known_left, known_right, _ = numeric
            self._split(node, best_f, NUMERIC, points[best_f],
                        [(None, left[best_f], known_left[best_f]), (None, right[best_f], known_right[best_f])])
        self._enforce_size_limit()

    def _new_leaf(self, parent: int, stats: np.ndarray, known: np.ndarray | None = None) -> int:
        node = self.n_nodes_
        self._grow_nodes(node + 1)
        self.n_nodes_ += 1
        c = len(stats)
        self.stats_[node, :c] = stats
        self.known_[node, :c] = stats > 0 if known is None else known
        self.depth_[node] = self.depth_[parent] + 1
        self.last_attempt_[node] = stats.sum()
        self._activate(node)
        return node

    def _split(self, node: int, feature: int, kind: int, threshold: float, branches) -> None:
        self._deactivate(node)
        children = [(code, self._new_leaf(node, weights, known)) for code, weights, known in branches]
        self.kind_[node], self.feature_[node], self.threshold_[node] = kind, feature, threshold
        if kind == NOMINAL_MULTIWAY:
            self._widen_branches(max(code for code, _ in children) + 1)
            self.multiway_[node] = len(self.branch_)
            self.branch_ = np.concatenate([self.branch_, np.full((1, self.branch_.shape[1]), -1, dtype=np.int64)])
            for code, child in children:
                self.branch_[-1, code] = child
        else:
            self.left_[node], self.right_[node] = children[0][1], children[1][1]

    def _enforce_size_limit(self) -> None:
        """Keep observers for as many of the most promising leaves as `max_size` allows; reactivate the others."""
        leaves = np.flatnonzero(self.kind_[: self.n_nodes_] == LEAF)
        stats = self.stats_[leaves]
        promise = stats.sum(axis=1) - stats.max(axis=1, initial=0.0)
        order = leaves[np.argsort(promise, kind="stable")]
        slot_bytes = (self.obs_[:, :1].nbytes + self.cat_[:1].nbytes)
        budget = self.max_size * 2**20 - (self.nbytes - self.obs_.nbytes - self.cat_.nbytes)
        max_active = int(min(len(leaves), max(0, budget // max(slot_bytes, 1))))
        cutoff = len(leaves) - max_active
        for node in order[:cutoff].tolist():
            self._deactivate(node)
        for node in order[cutoff:].tolist():
            if self.slot_[node] < 0 and (self.max_depth is None or self.depth_[node] < self.max_depth):
                self._activate(node)


# the arrays of a tree that `kernels.predict_learn_trees` reads and updates, in its argument order
_kernel_arrays = operator.attrgetter("kind_", "feature_", "threshold_", "left_", "right_", "multiway_", "branch_",
                                     "depth_", "last_attempt_", "stats_", "known_", "slot_", "mc_correct_",
                                     "nb_correct_", "obs_", "cat_", "nominal_")


def predict_learn_trees(trees: list[FastHoeffdingTreeClassifier], X: np.ndarray, ys: list, weights,
                        nominal=None) -> list[np.ndarray]:
    """Test-then-train of several trees over the same rows: exactly `trees[t].predict_learn_many(X[t], ys[t],
    weights[t], nominal)` for every t (`X` (T, B, F): each tree's coded rows; `ys[t]` its labels, one list object
    for the trees that share them; a weight None is all ones), with one
    compiled call for every `TREES_PER_CALL` trees, and one more round for the trees that stopped at a due leaf (its
    split attempt runs in between), instead of a call per tree and split attempt.

    >>> from river.datasets import synth
    >>> data = list(synth.SEA(seed=1).take(64))
    >>> coder = RowCoder()
    >>> coder.learn_many([x for x, _ in data])
    >>> X, y = coder.transform_many([x for x, _ in data]), [label for _, label in data]
    >>> together = [FastHoeffdingTreeClassifier(grace_period=20), FastHoeffdingTreeClassifier(grace_period=30)]
    >>> alone = [tree.clone() for tree in together]
    >>> weights = [None, np.arange(64) % 2]
    >>> answers = predict_learn_trees(together, np.stack([X, X]), [y, y], weights)
    >>> all(np.array_equal(a, tree.predict_learn_many(X, y, w)) for a, tree, w in zip(answers, alone, weights))
    True
    """
    if not trees:
        return []
    X = np.ascontiguousarray(X, dtype=float)
    n_trees, n_rows = len(trees), X.shape[1]
    w = np.array([np.ones(n_rows) if weight is None else weight for weight in weights], dtype=float)
    unlabelled: dict = {}  # per list of labels (the trees of a pool mostly share one): the rows without a label
    for t, y in enumerate(ys):
        if id(y) not in unlabelled:
            unlabelled[id(y)] = [i for i, label in enumerate(y) if label is None]
        w[t, unlabelled[id(y)]] = 0.0
    codes: dict = {}
    ci = np.array([tree._prepare(X[t], ys[t], w[t], nominal, codes) for t, tree in enumerate(trees)]).reshape(n_trees,
                                                                                                              -1)
    width = max(X.shape[2], max(tree.n_features_ for tree in trees))  # rows coded before a feature a tree knows
    rows = X if width == X.shape[2] else np.pad(X, ((0, 0), (0, 0), (0, width - X.shape[2])), constant_values=np.nan)
    floats, ints, has_nominal = (np.array(column, dtype=dtype) for column, dtype in
                                 zip(zip(*(tree._settings() for tree in trees)), (float, np.int64, bool)))
    out = np.zeros((n_trees, n_rows, max(len(tree.classes_) for tree in trees)))
    start = np.zeros(n_trees, dtype=np.int64)
    leaves, detour = np.full((n_trees, n_rows), -1), np.zeros((n_trees, n_rows), dtype=bool)
    todo = list(range(n_trees))
    while todo:  # a round: every tree up to its next stop (or the end), then what the stops call for
        for first in range(0, len(todo), kernels.TREES_PER_CALL):
            ids = todo[first : first + kernels.TREES_PER_CALL]
            padded = ids if len(ids) == 1 else ids + ids[:1] * (kernels.TREES_PER_CALL - len(ids))
            arrays = list(zip(*(_kernel_arrays(trees[t]) for t in padded)))
            due = kernels.predict_learn_trees(np.array(ids), rows, start, ci, w, leaves, detour, out, floats, ints,
                                              has_nominal, *arrays)
            for t, leaf in zip(ids, due.tolist()):
                if leaf >= 0:
                    trees[t]._attempt(leaf)
                elif leaf <= -2:  # a learned row needs a new branch: it goes to the new leaf, as a detour
                    node, b = -2 - leaf, start[t]
                    leaves[t, b] = trees[t]._add_branch(node, int(rows[t, b, trees[t].feature_[node]]))
                    detour[t, b] = True
        todo = [t for t in todo if start[t] < n_rows]
    return [out[t, :, : len(tree.classes_)] for t, tree in enumerate(trees)]
