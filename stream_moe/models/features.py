"""Turn feature dicts into the router's input vectors: numbers standardised online, nominal values one-hot.

The layout grows as features and categories appear (new columns go at the end, old ones never move), which is why
the router grows its input layer instead of being rebuilt.
"""

from __future__ import annotations

import numbers
import typing

import numpy as np


def _is_number(value) -> bool:
    """int or float (numpy's too) but not bool; the exact-type test first, as it is most of the calls and 10x faster."""
    kind = type(value)
    return kind is float or kind is int or (isinstance(value, numbers.Number) and kind is not bool)


class Frame(typing.NamedTuple):
    """The encoder's coordinates at one moment: a column value v encodes as z = (v - center) / scale (one-hot
    columns: center 0, scale 1). As the statistics move, so does the meaning of z; `values` undoes it."""

    center: np.ndarray
    scale: np.ndarray

    def values(self, z: np.ndarray) -> np.ndarray:
        """The rows z of this frame back in the features' own units (missing values at the mean)."""
        return z * self.scale + self.center


class FeatureEncoder:
    """Online standardiser and one-hot encoder for dicts of features.

    Numeric values (int, float, but not bool) are centred and scaled by a running mean and variance (merged batch by
    batch with Chan's update, as exact as Welford's); anything else is nominal and gets a 0/1 column per category seen. A missing feature, a missing numeric value (None or
    NaN) and an unseen category encode as all zeros, i.e. "at the mean" / "none of the known categories".
    Columns and statistics change only in `learn_many`: `transform_many` never mutates the encoder.

    >>> enc = FeatureEncoder()
    >>> enc.learn_many([{"a": 1.0, "c": "red"}, {"a": 3.0, "c": "blue"}])
    >>> [round(float(v), 3) for v in enc.transform_many([{"a": 3.0, "c": "blue"}])[0]]
    [0.707, 0.0, 1.0]
    >>> enc.columns
    ['a', 'c=red', 'c=blue']
    """

    def __init__(self):
        self.columns: list[str] = []
        self._numeric: dict[str, int] = {}  # feature -> column
        self._nominal: dict[tuple[str, object], int] = {}  # (feature, category) -> column
        self._count = np.zeros(0)
        self._mean = np.zeros(0)
        self._m2 = np.zeros(0)
        self._scaled = np.zeros(0, dtype=bool)  # True for numeric columns

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    def _add_column(self, name: str, numeric: bool) -> int:
        self.columns.append(name)
        self._count = np.append(self._count, 0.0)
        self._mean = np.append(self._mean, 0.0)
        self._m2 = np.append(self._m2, 0.0)
        self._scaled = np.append(self._scaled, numeric)
        return len(self.columns) - 1

    def _raw(self, xs) -> tuple[np.ndarray, bool]:
        """Unscaled values: numeric columns hold the value (NaN when missing), one-hot columns hold 0/1; and whether
        every value had its column (no new feature or category)."""
        out = np.full((len(xs), self.n_columns), np.nan)
        out[:, ~self._scaled] = 0.0
        numeric, nominal = self._numeric, self._nominal
        complete = True
        for i, x in enumerate(xs):
            row = out[i]
            for name, value in x.items():
                if _is_number(value):
                    col = numeric.get(name)
                    if col is not None:
                        row[col] = value
                    else:
                        complete = False
                elif value is not None:
                    col = nominal.get((name, value))
                    if col is not None:
                        row[col] = 1.0
                    else:
                        complete = False
        return out, complete

    def learn_many(self, xs, raw: tuple[np.ndarray, bool] | None = None) -> None:
        """Add any new features/categories as columns, then update the running statistics (from `raw`, the rows'
        `_raw`, when the caller has it: its values serve as they are unless a column was missing)."""
        if raw is None or not raw[1]:
            for x in xs:
                for name, value in x.items():
                    if _is_number(value):
                        if name not in self._numeric:
                            self._numeric[name] = self._add_column(name, numeric=True)
                    elif value is not None and (name, value) not in self._nominal:
                        self._nominal[(name, value)] = self._add_column(f"{name}={value}", numeric=False)
            raw = self._raw(xs)
        raw = raw[0][:, self._scaled]
        present = ~np.isnan(raw)
        n_b = present.sum(axis=0).astype(float)
        if not n_b.any():
            return
        mean_b = np.where(present, raw, 0.0).sum(axis=0) / np.maximum(n_b, 1.0)
        m2_b = (np.where(present, raw - mean_b, 0.0) ** 2).sum(axis=0)
        n_a, mean_a = self._count[self._scaled], self._mean[self._scaled]
        n = n_a + n_b
        delta = mean_b - mean_a
        safe_n = np.maximum(n, 1.0)
        self._mean[self._scaled] = mean_a + delta * n_b / safe_n
        self._m2[self._scaled] += m2_b + delta**2 * n_a * n_b / safe_n
        self._count[self._scaled] = n

    def frame(self) -> Frame:
        """The coordinates `transform_many` encodes in until the next `learn_many`."""
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.sqrt(self._m2 / np.maximum(self._count - 1.0, 1.0))
        std[~(std > 1e-12) | ~self._scaled] = 1.0
        return Frame(np.where(self._scaled, self._mean, 0.0), std)

    def transform_many(self, xs) -> np.ndarray:
        """Encode a batch into a float32 matrix of shape (len(xs), n_columns)."""
        return self._encode(self._raw(xs)[0], self.frame())

    def transform_learn_many(self, xs, learn: list[bool]) -> tuple[np.ndarray, Frame]:
        """Test-then-train: encode a batch as `transform_many` does (returned with its frame), then learn the rows
        `learn` marks, reading each row once where no new column appears.

        >>> enc = FeatureEncoder()
        >>> enc.learn_many([{"a": 1.0}, {"a": 3.0}])
        >>> z, frame = enc.transform_learn_many([{"a": 3.0}, {"a": 5.0}], [True, False])
        >>> [round(float(v), 3) for v in z[:, 0]]  # in the frame of the batch start: mean 2, std 1.414
        [0.707, 2.121]
        >>> round(float(enc.frame().center[0]), 3)  # then 3.0 was learned, 5.0 (unlabelled) was not
        2.333
        """
        (raw, complete), frame = self._raw(xs), self.frame()
        z = self._encode(raw, frame)
        rows = [i for i, keep in enumerate(learn) if keep]
        if rows:
            self.learn_many([xs[i] for i in rows], (raw[rows], complete))
        return z, frame

    @staticmethod
    def _encode(raw: np.ndarray, frame: Frame) -> np.ndarray:
        z = (raw - frame.center) / frame.scale
        z[np.isnan(z)] = 0.0
        np.clip(z, -10.0, 10.0, out=z)  # one wild value must not blow up the router
        return z.astype(np.float32)

