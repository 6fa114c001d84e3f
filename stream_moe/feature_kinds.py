"""The kind of each feature, numeric or nominal, fixed by its first value, so that a value of the other kind is
refused before it reaches the model.

Models keep a feature's kind from its first value too (the trees' row coder, river's attribute observers) and raise
on a value of the other kind; refusing it here costs a dictionary lookup, where a model that raises costs a restore
of the shard's state. Booleans are refused by the decoders, so a number is an int or a float.

>>> kinds = FeatureKinds()
>>> kinds.refusal({"size": 3.5, "colour": "red"}) is None
True
>>> kinds.refusal({"size": "big", "colour": "red"})
"feature 'size' is numeric, got 'big'"
"""

from __future__ import annotations


class FeatureKinds:
    """Feature name -> numeric (True) or nominal (False), learned from the first value of each feature."""

    def __init__(self):
        self.numeric: dict[str, bool] = {}

    def refusal(self, x: dict) -> str | None:
        """Why `x` has a value of another kind than its feature's (None: it has not); learns new features' kinds."""
        numeric = self.numeric
        for name, value in x.items():
            if value is None:
                continue
            is_number = isinstance(value, (int, float))
            known = numeric.get(name)
            if known is None:
                numeric[name] = is_number
            elif known != is_number:
                return f"feature {name!r} is {'numeric' if known else 'nominal'}, got {value!r}"
        return None
