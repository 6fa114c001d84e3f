"""Turn feature dicts into rows of a float array for array-based trees, with a feature index that only grows.

Unlike `FeatureEncoder` (the router's input: standardised, one-hot), a row keeps the raw values a tree splits on: a
numeric feature is one column holding its value, a nominal feature is one column holding the code of its category.
"""

from __future__ import annotations

import numbers

import numpy as np

MISSING = np.nan  # an absent feature or a None value
UNSEEN = -1.0  # a category the coder has not learned (tests against it: "not equal"; no counts)


class RowCoder:
    """Column per feature in order of first sight; numeric values as they are, categories as codes 0, 1, 2, ...

    A feature is nominal when it is listed in `nominal_attributes` or its first non-missing value is not a number (as
    river's trees decide: booleans are numbers). Columns and codes change only in `learn_many`.

    >>> coder = RowCoder()
    >>> coder.learn_many([{"a": 1.5, "c": "red"}, {"c": "blue"}])
    >>> coder.transform_many([{"a": 2.0, "c": "blue"}, {"c": "green"}]).tolist()
    [[2.0, 1.0], [nan, -1.0]]
    >>> coder.nominal.tolist()
    [False, True]
    """

    def __init__(self, nominal_attributes=None):
        self.nominal_attributes = set(nominal_attributes or ())
        self.columns: dict = {}  # feature name -> column
        self.codes: list[dict | None] = []  # per column: category -> code, None for numeric columns
        self.nominal = np.zeros(0, dtype=bool)

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    def learn_many(self, xs) -> None:
        """Add new features as columns and new categories as codes."""
        columns, codes = self.columns, self.codes
        for x in xs:
            for name, value in x.items():
                if value is None:
                    continue
                col = columns.get(name)
                if col is None:
                    nominal = name in self.nominal_attributes or not isinstance(value, numbers.Number)
                    col = columns[name] = len(codes)
                    codes.append({} if nominal else None)
                    self.nominal = np.append(self.nominal, nominal)
                book = codes[col]
                if book is not None and value not in book:
                    book[value] = len(book)

    def transform_many(self, xs) -> np.ndarray:
        """Rows of shape (len(xs), n_columns): NaN where a feature is missing, -1 for a category not learned."""
        out = np.full((len(xs), len(self.codes)), MISSING)
        columns, codes = self.columns, self.codes
        for i, x in enumerate(xs):
            row = out[i]
            for name, value in x.items():
                col = columns.get(name)
                if col is None or value is None:
                    continue
                book = codes[col]
                row[col] = value if book is None else book.get(value, UNSEEN)
        return out

    def names(self, subset) -> np.ndarray:
        """Boolean mask of the columns whose feature is in `subset`."""
        mask = np.zeros(len(self.codes), dtype=bool)
        for name, col in self.columns.items():
            mask[col] = name in subset
        return mask
