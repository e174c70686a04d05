"""A small cluster for the daemon tests: in-process agents on free loopback ports, tiny models.

The repository holds ``tiny`` (pixel, 1x4x4, T = 50), ``tiny-latent`` (latent 2x2x2 -> 1x4x4) and
``slow`` (a pixel model whose every step runs a chain of 48 1024x1024 matrix products, T = 1000, so a
request with a few hundred steps stays in flight for a while). Devices are simulated (energy is
``modeled`` on any machine); ``lean`` has 7 GB of its 8 GB in use, ``roomy`` 1 GB.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from node_agent.config import AgentConfig


@pytest.fixture(scope="package")
def model_repo(tmp_path_factory, write_model, onnx_kit) -> Path:
    root = tmp_path_factory.mktemp("models")
    doc = onnx_kit.spec_doc("tiny", image=(1, 4, 4), steps_T=50)
    doc["defaults"].update(steps=8, guidance=1.5)
    write_model(root, "tiny", doc=doc)
    latent = onnx_kit.spec_doc("tiny-latent", "latent", image=(1, 4, 4), latent=(2, 2, 2), steps_T=50)
    write_model(root, "tiny-latent", "latent", doc=latent)
    slow = onnx_kit.spec_doc("slow", image=(1, 4, 4), steps_T=1000)
    write_model(root, "slow", doc=slow, denoiser=functools.partial(onnx_kit.matmul_chain_denoiser, depth=48))
    return root


@pytest.fixture(scope="package")
def sim_profiles(tmp_path_factory, sim_profile_toml) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sim")
    profiles = {}
    for name, used in (("lean", 7_000_000_000), ("roomy", 1_000_000_000)):
        profiles[name] = folder / f"{name}.toml"
        profiles[name].write_text(sim_profile_toml(idle_mem_used_bytes=used, max_mem_used_bytes=used))
    return profiles


@pytest.fixture(scope="package")
def agent_config(model_repo, sim_profiles) -> Callable[..., AgentConfig]:
    """``agent_config(name, profile="roomy", **settings)``: a simulated agent on a free port."""

    def make(name: str, profile: str = "roomy", **settings: object) -> AgentConfig:
        values: dict[str, object] = {
            "name": name,
            "listen": "127.0.0.1:0",
            "models": model_repo,
            "device": "simulated",
            "sim_profile": sim_profiles[profile],
            "telemetry_hz": 50.0,
            "intra_op_threads": 1,
            **settings,
        }
        return AgentConfig(**values)  # type: ignore[arg-type]

    return make


def _wait_for(check: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture(scope="package")
def wait_for() -> Callable[..., float]:
    """``wait_for(check, timeout_s=10, what=...)``: poll every 20 ms; the seconds it took; fails on timeout."""
    return _wait_for
