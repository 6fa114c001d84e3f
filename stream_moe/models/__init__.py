"""The models: DriftMoE mixtures and their parts (router, expert pool, feature encoder)."""

from stream_moe.models.driftmoe_data import DriftMoEData
from stream_moe.models.driftmoe_task import DriftMoETask

__all__ = ["DriftMoEData", "DriftMoETask"]
