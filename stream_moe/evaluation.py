"""Prequential (test-then-train) evaluation: accuracy, Cohen's kappa, kappa-M and kappa-T, cumulative and windowed.

kappa-M compares with a majority-class classifier and kappa-T with a no-change classifier (predict the previous
label), both themselves evaluated prequentially on the same instances, as MOA does (Bifet et al. 2015). A prediction of
None (a model that knows nothing yet) counts as wrong.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import math
import pathlib


def _kappa(agree: float, chance: float) -> float:
    """(p0 - pe) / (1 - pe), and 0 where it is undefined (pe = 1), as river does."""
    return (agree - chance) / (1.0 - chance) if chance != 1.0 else 0.0


@dataclasses.dataclass
class Tally:
    """Counts for one span of instances (the whole run, or a sliding window)."""

    n: int = 0
    correct: int = 0
    majority_correct: int = 0
    no_change_correct: int = 0
    true_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    pred_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def add(self, y, y_pred, majority_ok: bool, no_change_ok: bool, sign: int = 1) -> None:
        self.n += sign
        self.correct += sign * (y_pred == y)
        self.majority_correct += sign * majority_ok
        self.no_change_correct += sign * no_change_ok
        self.true_counts[y] += sign
        self.pred_counts[y_pred] += sign

    def metrics(self) -> dict[str, float]:
        if self.n == 0:
            return {"accuracy": 0.0, "kappa": 0.0, "kappa_m": 0.0, "kappa_t": 0.0}
        n = self.n
        accuracy = self.correct / n
        chance = sum(self.true_counts[c] * self.pred_counts[c] for c in self.true_counts) / (n * n)
        return {
            "accuracy": accuracy,
            "kappa": _kappa(accuracy, chance),
            "kappa_m": _kappa(accuracy, self.majority_correct / n),
            "kappa_t": _kappa(accuracy, self.no_change_correct / n),
        }


class PrequentialEvaluator:
    """Scores predictions as their labels arrive; keeps a history of the metrics every `record_every` instances.

    >>> ev = PrequentialEvaluator(window=4, record_every=2)
    >>> for y, p in [("a", "a"), ("a", "b"), ("b", "b"), ("b", "b"), ("a", "a")]:
    ...     ev.update(y, p)
    >>> round(ev.cumulative()["accuracy"], 2), round(ev.windowed()["window_accuracy"], 2)
    (0.8, 0.75)
    >>> [h["n"] for h in ev.history], ev.report()["accuracy_curve"]
    ([2, 4], [0.5, 0.75])
    """

    def __init__(self, window: int = 1000, record_every: int = 1000):
        self.window = window
        self.record_every = record_every
        self.total = Tally()
        self.recent = Tally()
        self._window: collections.deque = collections.deque()
        self._class_counts: collections.Counter = collections.Counter()
        self._last_label = None
        self.history: list[dict] = []

    def update(self, y, y_pred) -> None:
        majority = max(self._class_counts, key=self._class_counts.__getitem__) if self._class_counts else None
        entry = (y, y_pred, majority == y and majority is not None, self._last_label == y and self._last_label is not None)
        self.total.add(*entry)
        self.recent.add(*entry)
        self._window.append(entry)
        if len(self._window) > self.window:
            self.recent.add(*self._window.popleft(), sign=-1)
        self._class_counts[y] += 1
        self._last_label = y
        if self.total.n % self.record_every == 0:
            self.history.append({"n": self.total.n, **self.cumulative(), **self.windowed()})

    def update_many(self, ys, y_preds) -> None:
        for y, y_pred in zip(ys, y_preds):
            self.update(y, y_pred)

    @property
    def n(self) -> int:
        return self.total.n

    def cumulative(self) -> dict[str, float]:
        return self.total.metrics()

    def windowed(self) -> dict[str, float]:
        return {f"window_{k}": v for k, v in self.recent.metrics().items()}

    def report(self) -> dict:
        """The metrics now, and the accuracy over the first `record_every`, 2 `record_every`, ... instances (how a
        model does on short data: the accuracy over a stream's first 1,000 and 5,000 instances)."""
        return {"n": self.n, **self.cumulative(), **self.windowed(), "curve_every": self.record_every,
                "accuracy_curve": [h["accuracy"] for h in self.history]}

    def write_history_csv(self, path: pathlib.Path) -> None:
        if not self.history:
            return
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.history[0]))
            writer.writeheader()
            writer.writerows(self.history)


def json_value(value):
    """`value` as JSON holds it: numbers (NaN and infinities as null: JSON has none), text, lists, mappings with text
    keys; numpy values as their Python equals; a class as its dotted name; an estimator (anything with river's
    `_get_params`) as its class and parameters; anything else as its repr.

    >>> json_value({"a": (1, float("nan")), 2: [True, None]})
    {'a': [1, None], '2': [True, None]}
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_value(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return json_value(value.tolist())
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if hasattr(value, "_get_params"):
        cls = type(value)
        return {"class": f"{cls.__module__}.{cls.__qualname__}", "params": json_value(value._get_params())}
    if isinstance(value, pathlib.PurePath):
        return str(value)
    return repr(value)


def write_json(path: pathlib.Path, data: dict) -> None:
    """`data` as valid JSON (see `json_value`: no NaN), indented."""
    path.write_text(json.dumps(json_value(data), indent=2, allow_nan=False) + "\n")
