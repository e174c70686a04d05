"""Agent settings and the ``edgetb-agent`` command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from node_agent.cli import app
from node_agent.config import AgentConfig, ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"telemetry_hz": 0.5}, "telemetry_hz"),
        ({"telemetry_hz": 101}, "telemetry_hz"),
        ({"listen": "nohostport"}, "listen"),
        ({"listen": "127.0.0.1:70000"}, "listen"),
        ({"device": "tpu"}, "device"),
        ({"name": "bad name!"}, "name"),
        ({"queue_capacity": 0}, "queue_capacity"),
        ({"device": "simulated"}, "sim_profile"),
        ({"sim_seed": -1}, "sim_seed"),
        ({"sim_seed": 1.5}, "sim_seed"),
    ],
)
def test_invalid_settings_name_the_setting(changes, field) -> None:
    with pytest.raises(ConfigError, match=field):
        AgentConfig(**changes)


def test_toml_file_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\nname = "edge-b"\nmodels = "repo"\ntelemetry_hz = 20\npreload = ["m"]\n')
    config = AgentConfig.from_toml(path, telemetry_hz=5.0, name=None)
    assert config.name == "edge-b" and config.telemetry_hz == 5.0  # a flag wins, an unset flag does not
    assert config.models == (tmp_path / "repo").resolve()  # relative to the file
    assert config.preload == ("m",)
    path.write_text('[agent]\nnmae = "typo"\n')
    with pytest.raises(ConfigError, match=r"agent\.toml: nmae: unknown setting"):
        AgentConfig.from_toml(path)
    path.write_text("[agent]\ntelemetry_hz = 1000\n")
    with pytest.raises(ConfigError, match=r"agent\.toml: telemetry_hz"):
        AgentConfig.from_toml(path)


def test_info_lists_device_sources_and_models(tmp_path, write_model) -> None:
    write_model(tmp_path, "m1")
    result = CliRunner().invoke(
        app, ["info", "--models", str(tmp_path), "--telemetry-hz", "50", "--sample-s", "0.3"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "measured period" in result.output and "m1" in result.output
    for metric in ("power", "energy", "mem"):
        assert metric in result.output


def test_serve_refuses_bad_flags_with_the_setting_named() -> None:
    result = CliRunner().invoke(app, ["serve", "--telemetry-hz", "500"])
    assert result.exit_code == 2
    assert "telemetry_hz" in result.output
    result = CliRunner().invoke(app, ["serve", "--sim-seed", "-3"])
    assert result.exit_code == 2 and "sim_seed" in result.output


def test_sim_seed_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[agent]\nsim_seed = 7\n")
    assert AgentConfig.from_toml(path).sim_seed == 7 and AgentConfig().sim_seed == 0
