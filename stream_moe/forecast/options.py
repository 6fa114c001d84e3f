"""The forecast command's option values that are more than a number: a known failure (a step, and the links that
failed) and a span of time in days, hours or steps. Light on imports: the command line builds its parser from them.

>>> duration("2").steps(steps_per_day=48), duration("12h").steps(48), duration("30steps").steps(48)
(96, 24, 30)
>>> link_change("5000:London-Paris")
LinkChange(step=5000, links=('London-Paris',))
"""

from __future__ import annotations

import argparse
import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class LinkChange:
    """Links failing (or recovering) from a step on; no links: the step alone is known."""

    step: int
    links: tuple[str, ...] = ()


def link_change(text: str) -> LinkChange:
    """``STEP`` or ``STEP:LINK[,LINK...]`` (an argparse type)."""
    step, _, links = text.partition(":")
    if not step.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected STEP or STEP:LINK[,LINK...] with STEP an integer of 0 or more, "
                                         f"got {text!r}")
    names = tuple(n.strip() for n in links.split(",") if n.strip())
    if links and not names:
        raise argparse.ArgumentTypeError(f"no link named after ':' in {text!r}")
    return LinkChange(int(step), names)


@dataclasses.dataclass(frozen=True)
class Duration:
    amount: float
    unit: str  # days, hours or steps

    def steps(self, steps_per_day: int) -> int:
        per = {"days": steps_per_day, "hours": steps_per_day / 24, "steps": 1}[self.unit]
        return round(self.amount * per)


def duration(text: str) -> Duration:
    """``N`` or ``Nd`` days, ``Nh`` hours, ``Nsteps`` steps; N a number of 0 or more (an argparse type)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(d|days?|h|hours?|steps?)?\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 2 (days), 1.5d, 12h or 96steps, got {text!r}")
    unit = {"d": "days", "h": "hours", "s": "steps"}[(match.group(2) or "d")[0]]
    return Duration(float(match.group(1)), unit)
