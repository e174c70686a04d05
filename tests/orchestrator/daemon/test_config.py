"""Daemon and agent settings for the orchestrator: every error names the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from node_agent.config import AgentConfig
from node_agent.config import ConfigError as AgentConfigError
from orchestrator.cli import app
from orchestrator.config import ConfigError, OrchestratorConfig

GOOD = """
listen = "127.0.0.1:0"
metrics_listen = ""
heartbeat_s = 0.5
run_dir = "runs"

[limits]
max_inflight_requests = 8

[[agents]]
name = "edge-a"
address = "10.0.0.2:50061"
"""


def test_a_good_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.toml"
    path.write_text(GOOD)
    config = OrchestratorConfig.load(path)
    assert config.run_dir == (tmp_path / "runs").resolve()
    assert config.agents[0].name == "edge-a" and config.agents[0].address == "10.0.0.2:50061"
    assert config.limits.max_inflight_requests == 8 and config.limits.max_agents == 256
    assert config.metrics_listen == "" and config.heartbeat_s == 0.5
    assert OrchestratorConfig.load(path, listen="127.0.0.1:7").listen == "127.0.0.1:7"  # an override wins


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('listen = "nohostport"', r"listen: 'nohostport' is not HOST:PORT"),
        ('metrics_listen = "h:99999"', r"metrics_listen: "),
        ("heartbeat_s = 0.001", r"heartbeat_s: Input should be greater than or equal to 0.05"),
        ('heartbeat_s = "fast"', r"heartbeat_s: "),
        ("telemetry_batch_size = 500", r"telemetry_batch_size: "),
        ("hartbeat_s = 1", r"hartbeat_s: unknown setting"),
        ("[limits]\nmax_inflight_requests = 0", r"limits\.max_inflight_requests: "),
        ("[limits]\nstore_queue_capacity = -1", r"limits\.store_queue_capacity: "),
        ("[limits]\ndefault_deadline_s = 900", r"limits\.default_deadline_s: exceeds limits\.max_deadline_s"),
        ('[[agents]]\nname = "a"\naddress = "h:1"\n[[agents]]\nname = "b"\naddress = "h"', r"agents\.1\.address: "),
        ('[[agents]]\nname = "bad name"\naddress = "h:1"', r"agents\.0\.name: "),
        ('[[agents]]\nname = "a"\naddress = "h:0"', r"agents\.0\.address: "),
        (
            '[[agents]]\nname = "a"\naddress = "h:1"\n[[agents]]\nname = "a"\naddress = "h:2"',
            r"agents: .*'a'.* more than once",
        ),
        ('[[agents]]\nname = "a"\naddress = "h:1"\nport = 3', r"agents\.0\.port: unknown setting"),
        ("listen = ", r"orchestrator\.toml: "),  # not TOML
    ],
)
def test_errors_name_the_setting(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "orchestrator.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=field) as err:
        OrchestratorConfig.load(path)
    assert str(err.value).startswith(str(path))


def test_serve_refuses_a_bad_file_naming_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.toml"
    path.write_text("[limits]\nmax_inflight_requests = 0\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(path)], terminal_width=200)
    assert result.exit_code == 2
    assert "limits.max_inflight_requests" in result.output
    result = CliRunner().invoke(app, ["serve", "--config", str(tmp_path / "missing.toml")], terminal_width=200)
    assert result.exit_code == 2 and "missing.toml" in result.output


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"orchestrator": "nohostport"}, "orchestrator"),
        ({"orchestrator": "h:0"}, "orchestrator"),
        ({"heartbeat_s": 0.0}, "heartbeat_s"),
        ({"heartbeat_s": 600.0}, "heartbeat_s"),
        ({"heartbeat_s": "1"}, "heartbeat_s"),
    ],
)
def test_agent_orchestrator_settings_are_validated(changes, field) -> None:
    with pytest.raises(AgentConfigError, match=field):
        AgentConfig(**changes)
    assert AgentConfig(orchestrator="10.0.0.1:50051", heartbeat_s=0.2).orchestrator == "10.0.0.1:50051"
