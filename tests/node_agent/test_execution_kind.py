"""Which device kind picks the execution providers."""

from __future__ import annotations

import pytest

from node_agent import agent


@pytest.mark.parametrize(
    ("requested", "probed", "gpu_build", "expected"),
    [
        ("cpu", "cpu", True, "cpu"),  # an explicit choice is kept even with a CUDA build
        ("nvidia", "nvidia", False, "nvidia"),
        ("auto", "jetson", False, "jetson"),
        ("auto", "nvidia", True, "nvidia"),
        ("auto", "cpu", False, "cpu"),
        ("auto", "cpu", True, "nvidia"),  # CUDA build, NVML not available for telemetry
        ("auto", "simulated", False, "simulated"),
    ],
)
def test_execution_kind(monkeypatch, requested, probed, gpu_build, expected) -> None:
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if gpu_build else ["CPUExecutionProvider"]
    monkeypatch.setattr(agent, "choose_providers", lambda kind: providers if kind == "nvidia" else providers[-1:])
    assert agent._execution_kind(requested, probed) == expected
