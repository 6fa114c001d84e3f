"""Where torch work runs: one rule for every model that takes a `device` parameter (the router, the forecasters)."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when present, else the CPU; 'cpu' and 'cuda[:n]' are taken as given.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
