"""Model constructor parameters given as text (`--param name=value`, a settings file's `model.params`): read as Python
literals and checked against the constructor's signature and annotated types before anything runs, so a misspelt
name or a value of the wrong type is refused at once, naming the parameter, instead of failing mid-run."""

from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import typing

import pydantic


class ParamError(ValueError):
    """A parameter the constructor does not take, or a value it cannot take."""


def parse_param(text: str) -> tuple[str, object]:
    """name=value, the value read as a Python literal (numbers, strings in quotes, tuples), else kept as text.

    >>> parse_param("top_k=4"), parse_param("prediction=mixture"), parse_param("hidden=(64, 32)")
    (('top_k', 4), ('prediction', 'mixture'), ('hidden', (64, 32)))
    """
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name.strip(), value


def _hints(cls: typing.Callable) -> dict:
    try:
        return typing.get_type_hints(cls.__init__ if inspect.isclass(cls) else cls)
    except Exception:  # annotations that do not resolve: checked by their defaults' types instead
        return {}


def _check_by_default(name: str, value, default):
    """For an unannotated parameter: a value of its default's kind (an int also for a float)."""
    kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
    expected = kinds.get(type(default))
    if expected is None or (isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected)):
        return float(value) if type(default) is float else value
    raise ParamError(f"{name}={value!r}: expected a {type(default).__name__} like its default {default!r}")


def check_params(cls: typing.Callable, params: dict, owner: str) -> dict:
    """The params, each checked against `cls`'s constructor (name known, value of the annotated type, converted where
    that is lossless, e.g. a list to a tuple or an int to a float); raises `ParamError` naming the first bad one.

    >>> class Model:
    ...     def __init__(self, depth: int = 3, rate: float = 0.1, mode: str = "a"): ...
    >>> check_params(Model, {"depth": 5, "rate": 1}, "model")
    {'depth': 5, 'rate': 1.0}
    >>> check_params(Model, {"dpeth": 5}, "model")
    Traceback (most recent call last):
    ...
    stream_moe.params.ParamError: model has no parameter 'dpeth' (did you mean depth?); its parameters: depth, rate, mode
    >>> check_params(Model, {"depth": "deep"}, "model")
    Traceback (most recent call last):
    ...
    stream_moe.params.ParamError: depth='deep': expected int (default 3): Input should be a valid integer, unable to parse string as an integer
    """
    signature = inspect.signature(cls)
    accepted = {n: p for n, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    hints = _hints(cls)
    checked = {}
    for name, value in params.items():
        if name not in accepted:
            if takes_any:
                checked[name] = value
                continue
            close = difflib.get_close_matches(name, accepted, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            listed = ", ".join(accepted) if accepted else "none"
            raise ParamError(f"{owner} has no parameter {name!r}{hint}; its parameters: {listed}")
        default = accepted[name].default
        if name in hints:
            adapter = pydantic.TypeAdapter(hints[name], config=pydantic.ConfigDict(arbitrary_types_allowed=True))
            try:
                # lax, so that 3 is a float and [64, 32] a tuple; but True is no number
                checked[name] = adapter.validate_python(value, strict=isinstance(value, bool))
            except pydantic.ValidationError as err:
                hint = hints[name]
                shown = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
                given = "" if default is inspect.Parameter.empty else f" (default {default!r})"
                raise ParamError(f"{name}={value!r}: expected {shown}{given}: {err.errors()[0]['msg']}") from None
        elif default is not inspect.Parameter.empty:
            checked[name] = _check_by_default(name, value, default)
        else:
            checked[name] = value
    return checked
