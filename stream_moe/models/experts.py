"""The experts of a mixture and the batch interface the mixtures use to query and train them.

`ExpertPool` speaks in micro-batches (which experts answer or learn which rows) so that a pool of array-based trees can
later answer a whole batch in one pass; this implementation holds river classifiers and loops over them.
"""

from __future__ import annotations

import numpy as np
from river import base, tree


def default_expert() -> base.Classifier:
    """The paper's expert: a Hoeffding tree with grace period 50 and split confidence 1e-7."""
    return tree.HoeffdingTreeClassifier(grace_period=50, delta=1e-7)


class ExpertPool:
    """A list of river classifiers cloned from one prototype, queried and trained by micro-batch.

    `usage_[e]` counts the instances expert `e` has learned.

    >>> pool = ExpertPool(default_expert(), n_experts=2)
    >>> pool.learn(0, [{"a": 1.0}], ["up"])
    >>> pool.proba([{"a": 1.0}], which=np.array([[0, 1]]), classes=["up", "down"]).tolist()
    [[[1.0, 0.0], [0.0, 0.0]]]
    >>> pool.usage_.tolist()
    [1, 0]
    """

    def __init__(self, prototype: base.Classifier, n_experts: int = 0):
        self.prototype = prototype
        self.experts: list[base.Classifier] = []
        self.usage_ = np.zeros(0, dtype=np.int64)
        for _ in range(n_experts):
            self.add()

    def __len__(self) -> int:
        return len(self.experts)

    def add(self) -> int:
        """Append a fresh expert; returns its index."""
        self.experts.append(self.prototype.clone())
        self.usage_ = np.append(self.usage_, 0)
        return len(self.experts) - 1

    def proba(self, xs, which: np.ndarray, classes) -> np.ndarray:
        """Probabilities of `classes` given by experts `which[b]` for each row `b`: shape (B, K, C).

        An expert that knows nothing yet answers all zeros (not uniform), so that it never counts as right.
        """
        index = {c: i for i, c in enumerate(classes)}
        out = np.zeros((len(xs), which.shape[1], len(classes)))
        experts = self.experts
        for b, x in enumerate(xs):
            row = out[b]
            for k, e in enumerate(which[b]):
                for label, p in experts[e].predict_proba_one(x).items():
                    i = index.get(label)
                    if i is not None:
                        row[k, i] = p
        return out

    def learn(self, e: int, xs, ys) -> None:
        """Expert `e` learns the rows `xs` with labels `ys`, in order (experts are independent of each other)."""
        expert = self.experts[e]
        for x, y in zip(xs, ys):
            expert.learn_one(x, y)
        self.usage_[e] += len(ys)
