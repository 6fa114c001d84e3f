"""How a user mistake reaches the user: an error class for bad argument values found after parsing, and the one-line
text of any exception (the command line prints that, not a traceback)."""

from __future__ import annotations


class UsageError(Exception):
    """An argument whose value proves wrong only once the command runs (a --target that is not a column of the file,
    a --param the model does not take): reported as argparse reports its own, and exits 2.

    >>> str(UsageError("--n", "must be a positive integer, got 0"))
    'argument --n: must be a positive integer, got 0'
    """

    def __init__(self, option: str, message: str):
        super().__init__(f"argument {option}: {message}")
        self.option = option


def one_line(err: BaseException) -> str:
    """An exception's message on one line, with its type where the message alone would not say what happened (a
    system error, a missing key, no message at all).

    >>> one_line(FileNotFoundError(2, "No such file or directory"))
    'FileNotFoundError: [Errno 2] No such file or directory'
    >>> one_line(ValueError("a\\n  b")), one_line(ConnectionError("no broker at kafka:9092"))
    ('a b', 'no broker at kafka:9092')
    """
    text = " ".join(str(err).split())
    bare = isinstance(err, KeyError) or (isinstance(err, OSError) and err.errno is not None)
    return text if text and not bare else f"{type(err).__name__}: {text}".rstrip(": ")
