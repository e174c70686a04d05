"""The node-agent demo end to end: a child-process agent, every shipped model, quality vs steps."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.demo import run_demo
from orchestrator.local import start_agent

REPO = Path(__file__).resolve().parents[2]


def test_demo_measures_every_shipped_model(tmp_path: Path) -> None:
    report = run_demo(tmp_path, steps=(1, 16), per_class=3)  # 3 batches: the median compute time survives a hiccup
    assert json.loads((tmp_path / "demo.json").read_text()) == json.loads(json.dumps(report))
    assert (tmp_path / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = {(p["model"], p["steps"]): p for p in report["points"]}
    models = {m for m, _ in points}
    assert {"digits-mlp-s", "digits-resmlp-l", "digits-ldm"} <= models
    for model in models:
        one, many = points[(model, 1)], points[(model, 16)]
        assert one["images"] == many["images"] == 30
        # More denoising steps: better images (lower Fréchet distance) and more time per request.
        assert many["frechet_distance"] < one["frechet_distance"]
        assert many["accuracy"] >= one["accuracy"]
        assert many["compute_time_s"] > one["compute_time_s"]
        if many["energy_j_per_image"] is None:
            assert many["energy_source"] == "unavailable"
    agent = report["agent"]
    assert agent["power_source"] in {"rapl", "nvml", "jetson-ina3221", "unavailable"}
    assert report["loads"]["digits-mlp-s"]["load_time_s"] > 0


def test_local_agent_stops_cleanly_on_sigterm() -> None:
    agent = start_agent("sigterm-test", REPO / "profiles/models", telemetry_hz=5)
    assert agent.address.startswith("127.0.0.1:")
    assert agent.stop() == 0
    assert any("listening on" in line for line in agent.output)


def test_edgetb_info_shows_a_remote_agent() -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app

    agent = start_agent("info-test", REPO / "profiles/models", telemetry_hz=5)
    try:
        result = CliRunner().invoke(app, ["info", "--target", agent.address], terminal_width=200)
    finally:
        agent.stop()
    assert result.exit_code == 0, result.output
    assert "info-test" in result.output and "digits-mlp-s" in result.output
    assert "power" in result.output and "loaded=False" in result.output
