"""Telemetry of the node agent: device sampler -> sequence-numbered log -> stream; energy windows."""

from node_agent.telemetry.energy import EnergyMeter, EnergyWindow, EnergyWindowToken, integrate_power_j
from node_agent.telemetry.log import LogRead, TelemetryLog, TelemetrySample
from node_agent.telemetry.sampler import SamplerStats, TelemetrySampler, process_rss_bytes

__all__ = [
    "EnergyMeter",
    "EnergyWindow",
    "EnergyWindowToken",
    "LogRead",
    "SamplerStats",
    "TelemetryLog",
    "TelemetrySample",
    "TelemetrySampler",
    "integrate_power_j",
    "process_rss_bytes",
]
