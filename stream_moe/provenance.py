"""What a results file records about the run that made it: the package version, the command line, the start time."""

from __future__ import annotations

import datetime
import importlib.metadata
import shlex
import sys


def package_version() -> str:
    """The installed version of stream-moe ("unknown" when run from a tree that was never installed)."""
    try:
        return importlib.metadata.version("stream-moe")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def run_info(argv: list[str] | None = None) -> dict:
    """Version, command line (as a shell would take it) and start time (UTC, ISO 8601) of this run."""
    args = sys.argv[1:] if argv is None else argv
    return {
        "version": package_version(),
        "command": shlex.join(["stream-moe", *args]),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
