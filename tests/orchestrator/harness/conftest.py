"""An in-process agent for the harness tests: tiny models, the simulated device (so energy and
idle power exist, labelled ``modeled``), telemetry at 50 Hz.

Models: ``tiny`` (pixel 1x4x4, T = 50, preloaded) and ``tiny-cold`` (the same, not preloaded: the
harness has to load it, and unload it afterwards).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent.config import AgentConfig
from node_agent.server import AgentServer, running_agent

#: The simulated device: 5 W idle, 15 W at full load.
IDLE_POWER_W = 5.0


@pytest.fixture(scope="session")
def sim_idle_power_w() -> float:
    """The simulated device's power with nothing running, W."""
    return IDLE_POWER_W


@pytest.fixture(scope="session")
def harness_repo(tmp_path_factory, write_model, onnx_kit) -> Path:
    root = tmp_path_factory.mktemp("harness-models")
    for name in ("tiny", "tiny-cold"):
        doc = onnx_kit.spec_doc(name, image=(1, 4, 4), steps_T=50)
        doc["defaults"].update(steps=5, max_batch=8)
        write_model(root, name, doc=doc)
    return root


@pytest.fixture(scope="session")
def sim_profile(tmp_path_factory, sim_profile_toml) -> Path:
    profile = tmp_path_factory.mktemp("harness-sim") / "sim.toml"
    profile.write_text(sim_profile_toml(name="harness-sim", idle_power_w=IDLE_POWER_W))
    return profile


@pytest.fixture(scope="session")
def harness_agent(harness_repo, sim_profile) -> Iterator[AgentServer]:
    config = AgentConfig(
        name="harness-agent",
        listen="127.0.0.1:0",
        models=harness_repo,
        device="simulated",
        sim_profile=sim_profile,
        telemetry_hz=50,
        queue_capacity=16,
        intra_op_threads=1,
        preload=("tiny",),
    )
    with running_agent(config) as server:
        yield server
