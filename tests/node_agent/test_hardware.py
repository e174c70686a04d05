"""Tests that need real hardware (marked ``hardware``): each skips cleanly when its device is absent.

Run them on a GPU box or a Jetson with ``pytest -m hardware -rs``; the skip reasons say what was
missing. Nothing here is faked: the point is to check the readers against the real interfaces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from node_agent.devices import probe_device
from node_agent.runtime.engine import Engine, GenerateParams
from node_agent.runtime.repository import ModelRepository

pytestmark = pytest.mark.hardware
REPO = Path(__file__).resolve().parents[2]


def _busy_numpy(seconds_of_work: int = 20) -> float:
    """Some real CPU work between two reads (a measurement, not a sleep)."""
    a = np.random.default_rng(0).standard_normal((256, 256))
    total = 0.0
    for _ in range(seconds_of_work):
        total += float(np.linalg.norm(a @ a))
    return total


def _nvml_or_skip():
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed (the gpu extra)")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        pytest.skip(f"NVML does not initialise here: {exc}")
    count = pynvml.nvmlDeviceGetCount()
    pynvml.nvmlShutdown()
    if count == 0:
        pytest.skip("NVML sees no GPU")


def test_nvml_device_reads_a_real_gpu() -> None:
    _nvml_or_skip()
    with probe_device("nvidia") as device:
        info = device.info()
        first = device.read()
        _busy_numpy()
        second = device.read()
    assert info.kind == "nvidia" and info.name
    assert info.mem_total_bytes and info.mem_total_bytes > 0
    assert second.mem_used_bytes is not None and 0 < second.mem_used_bytes <= info.mem_total_bytes
    if second.power_w is not None:
        assert second.power_source == "nvml" and 1.0 < second.power_w < 2000.0
    if first.energy_j is not None and second.energy_j is not None:
        assert second.energy_source == "nvml" and second.energy_j >= first.energy_j


def test_cuda_provider_generates_what_the_cpu_generates() -> None:
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        pytest.skip(f"no CUDA execution provider in onnxruntime ({', '.join(providers)})")
    repo = ModelRepository(REPO / "profiles/models")
    params = GenerateParams(labels=(0, 1, 2, 3), steps=20, seed=3, guidance=2.0, scheduler="ddim")
    images = {}
    for kind in ("nvidia", "cpu"):
        engine = Engine(repo, device_kind=kind)
        try:
            report = engine.load("digits-mlp-s")
            if kind == "nvidia":
                assert report.providers[0] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
            images[kind] = engine.submit("digits-mlp-s", params).result(timeout=120).images
        finally:
            engine.close()
    assert np.allclose(images["nvidia"], images["cpu"], atol=2e-3)


def test_rapl_counts_energy_on_this_cpu() -> None:
    zone = Path("/sys/class/powercap/intel-rapl:0/energy_uj")
    try:
        zone.read_text()
    except OSError as exc:
        pytest.skip(f"RAPL is not readable here: {exc}")
    with probe_device("cpu") as device:
        first = device.read()
        _busy_numpy()
        second = device.read()
    assert second.energy_source == "rapl"
    assert second.energy_j is not None and first.energy_j is not None and second.energy_j > first.energy_j


def test_jetson_ina3221_reports_rails() -> None:
    roots = list(Path("/sys/bus/i2c/drivers").glob("ina3221*/*"))
    if not roots:
        pytest.skip("no INA3221 driver directory: not a Jetson")
    with probe_device("jetson") as device:
        reading = device.read()
    assert reading.power_source == "jetson-ina3221"
    assert reading.rails_w and all(v >= 0 for v in reading.rails_w.values())
