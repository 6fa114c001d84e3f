"""A network simulator for link-load forecasting: topologies, routing, demands, failure scenarios, and real link loads
from CSV files."""
