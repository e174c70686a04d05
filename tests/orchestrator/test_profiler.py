"""``edgetb profile`` against a real agent (shipped digits-mlp-s, simulated device so energy is modeled)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from node_agent.config import AgentConfig
from node_agent.server import AgentServer, running_agent
from orchestrator.cli import app
from orchestrator.cluster import SHIPPED_MODELS
from orchestrator.profiler import SweepConfig, run_profile
from profiles.profile import ModelProfile

MODEL = "digits-mlp-s"


@pytest.fixture(scope="module")
def agent(tmp_path_factory, sim_profile_toml) -> Iterator[AgentServer]:
    device = tmp_path_factory.mktemp("profiler") / "sim.toml"
    device.write_text(sim_profile_toml(name="profiler-sim"))
    config = AgentConfig(
        name="profiler-agent", listen="127.0.0.1:0", models=SHIPPED_MODELS, device="simulated", sim_profile=device,
        telemetry_hz=50, intra_op_threads=1,
    )  # fmt: skip
    with running_agent(config) as server:
        yield server


def small_sweep(**kw) -> SweepConfig:
    base = dict(steps=(1, 2, 4, 8), window_requests=3, min_requests=6, max_requests=24, max_point_s=10.0,
                quality_per_class=5, load_repeats=2)  # fmt: skip
    return SweepConfig(**{**base, **kw})


def test_sweep_measures_fits_and_round_trips(agent: AgentServer, tmp_path: Path) -> None:
    lines: list[str] = []
    profile = run_profile(agent.address, MODEL, "test-device", small_sweep(batches=(1, 3)), progress=lines.append)
    assert profile.model == MODEL and profile.device == "test-device"
    assert [(p.steps, p.batch) for p in profile.points] == [(s, b) for b in (1, 3) for s in (1, 2, 4, 8)]
    for p in profile.points:
        assert 6 <= p.requests <= 24 and p.requests % 3 == 0
        assert p.latency_s >= p.compute_s > 0 and p.latency_s_p99 >= p.latency_s_p50
        assert p.energy_source == "modeled" and p.energy_j is not None and p.energy_j > 0  # simulated device
        assert (p.fd is not None) == (p.batch == 1)  # quality at batch 1 only
    scored = profile.points_at(1)
    assert all(p.quality_images == 50 for p in scored)
    # a real model: 1 leading-spaced step returns noise, 8 steps give digits
    assert scored[0].accuracy < 0.5 < scored[-1].accuracy
    assert scored[0].fd > 5 * scored[-1].fd
    assert profile.load.repeats == 2 and profile.load.load_time_s > 0 and profile.load.file_bytes > 0
    prov = profile.provenance
    assert prov.method == "measured" and prov.agent == "profiler-agent" and prov.device_kind == "simulated"
    assert prov.telemetry_sources["energy"] == "modeled" and "onnxruntime" in prov.software
    assert {t.batch for t in profile.fits.latency} == {1, 3} and profile.energy_fit(1) is not None
    assert set(profile.fits.quality) == {"accuracy", "class_prob", "fd"}
    assert len(lines) == 1 + len(profile.points)
    path = profile.write(tmp_path / "p.toml")
    assert ModelProfile.load_file(path) == profile


def test_cli_writes_profile_and_refuses_unknown_model(agent: AgentServer, tmp_path: Path) -> None:
    out = tmp_path / "profile-cli.toml"
    args = ["profile", "--target", agent.address, "--model", MODEL, "--device", "cli-dev", "--steps", "1,4,16",
            "--per-class", "2", "--min-requests", "3", "--max-requests", "9", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    profile = ModelProfile.load_file(out)
    assert [p.steps for p in profile.points] == [1, 4, 16] and profile.device == "cli-dev"
    assert "--steps 1,4,16" in profile.provenance.command
    bad = CliRunner().invoke(app, [*args[:4], "no-such-model", *args[5:]])
    assert bad.exit_code == 2 and "no-such-model" in bad.output
    worse = CliRunner().invoke(app, [*args[:8], "1,2", *args[9:]])
    assert worse.exit_code != 0 and "at least 3 step counts" in worse.output


def test_sweep_config_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="batches"):
        SweepConfig(batches=(2, 4))
    with pytest.raises(ValueError, match="steps"):
        SweepConfig(steps=(0, 1, 2))
