"""What the subcommands' parsers share: argument types whose errors name the bad value and what is allowed, a parser
whose usage errors are one line, and a help formatter that shows every default."""

from __future__ import annotations

import argparse
import collections.abc
import pathlib
import re
import typing


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, except that a usage error is the one line `prog: error: message` (exit 2), without the
    usage block above it: the line names the bad value and what is allowed, and `--help` shows the rest."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the layout of texts laid out in lines (the epilogs' examples) and fills the others; appends
    `(default: ...)` to every option that has a default and does not state it already (options whose default comes
    from the settings say so in their own help)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: {default})"


def _integer(text: str, lowest: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer of at least 1.

    >>> positive_int("3")
    3
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a positive integer, got 0
    """
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer of at least 0 (seeds, steps counted from 0)."""
    return _integer(text, 0, "an integer of 0 or more")


def port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    value = _integer(text, 0, "a port number from 0 to 65535")
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {value}")
    return value


def existing_file(text: str) -> pathlib.Path:
    """The path of a file that exists (not a directory).

    >>> existing_file("/nonexistent/x.csv")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: no such file: '/nonexistent/x.csv'
    """
    path = pathlib.Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, expected a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return path


DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def device(text: str) -> str:
    """A torch device: auto (CUDA when present), cpu, cuda or cuda:N.

    >>> device("gpu")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be auto, cpu, cuda or cuda:N, got 'gpu'
    """
    if not DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, got {text!r}")
    return text


class LazyChoices(collections.abc.Sequence):
    """Choices that only a heavy import can list (the model registry imports torch): loaded when first looked at, so
    that parsing arguments which do not use them, and reporting mistakes in them, stays instant."""

    def __init__(self, load: typing.Callable[[], typing.Iterable[str]]):
        self._load = load
        self._items: list[str] | None = None

    def _get(self) -> list[str]:
        if self._items is None:
            self._items = list(self._load())
        return self._items

    def __getitem__(self, index):
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())

    def __contains__(self, value) -> bool:
        return value in self._get()
