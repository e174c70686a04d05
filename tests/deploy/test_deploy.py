"""The deployment files: the example agent config, the systemd unit and the RAPL access rules."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
import typer

from node_agent.cli import app
from node_agent.config import SHIPPED_MODELS, AgentConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
EXAMPLE = DEPLOY / "agent.example.toml"
UNIT = DEPLOY / "edgetb-agent.service"
CONFIG_PATH = "/etc/edgetb/agent.toml"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit file as {section: [(key, value), ...]}, keeping repeated keys in order."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"line {number}: continuation lines are not used here"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"line {number}: not KEY=VALUE inside a section: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def one(section: list[tuple[str, str]], key: str) -> str:
    values = [v for k, v in section if k == key]
    assert len(values) == 1, f"{key}: expected exactly one, found {values}"
    return values[0]


# --- the example config ---------------------------------------------------------------------------


def test_example_config_loads_and_states_the_defaults() -> None:
    config = AgentConfig.from_toml(EXAMPLE)
    assert config == AgentConfig()  # every value written in the example is the real default
    assert config.models == SHIPPED_MODELS and (SHIPPED_MODELS / "digits-mlp-s" / "model.toml").is_file()
    assert config.listen.startswith("127.0.0.1:")  # loopback unless told otherwise


def test_example_config_documents_every_option() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for field in fields(AgentConfig):
        at = [i for i, line in enumerate(lines) if re.match(rf"^(# )?{field.name} = ", line)]
        assert at, f"{field.name} is missing from {EXAMPLE.name}"
        above = lines[at[0] - 1]
        assert above.startswith("# ") or re.match(r"^(# )?\w+ = ", above), f"{field.name} has no comment"


def test_commented_out_options_are_valid_when_enabled(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    names = {f.name for f in fields(AgentConfig)}
    enabled = re.sub(r"^# (\w+) = ", lambda m: f"{m[1]} = " if m[1] in names else m[0], text, flags=re.M)
    assert enabled != text
    path = tmp_path / "agent.toml"
    path.write_text(enabled)
    config = AgentConfig.from_toml(path)
    assert config.models == Path("/var/lib/edgetb/models")
    assert config.orchestrator is not None


def test_relative_models_path_is_resolved_against_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc" / "edgetb"
    folder.mkdir(parents=True)
    text = re.sub(r"^# models = .*$", 'models = "models"', EXAMPLE.read_text(), count=1, flags=re.M)
    (folder / "agent.toml").write_text(text)
    config = AgentConfig.from_toml(folder / "agent.toml")
    assert config.models == (folder / "models").resolve()


def test_serve_runs_with_the_example_config() -> None:
    """``edgetb-agent serve --config deploy/agent.example.toml`` starts (on a free port) and stops on SIGTERM."""
    command = [sys.executable, "-m", "node_agent.cli", "serve", "--config", str(EXAMPLE), "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline_s = time.monotonic() + 120
        seen: list[str] = []
        while time.monotonic() < deadline_s:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            seen.append(line)
            if "listening on 127.0.0.1:" in line:
                break
        assert any("edgetb-agent edge listening on 127.0.0.1:" in s for s in seen), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- the systemd unit -----------------------------------------------------------------------------


def test_unit_runs_the_installed_console_script_with_the_config() -> None:
    unit = parse_unit(UNIT.read_text())
    argv = shlex.split(one(unit["Service"], "ExecStart"))
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name in scripts
    assert scripts[Path(argv[0]).name] == "node_agent.cli:app"
    assert argv[1] == "serve" and argv[argv.index("--config") + 1] == CONFIG_PATH
    # The arguments parse as the real command line (the config path swapped for the example's).
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    args = [str(EXAMPLE) if a == CONFIG_PATH else a for a in argv[2:]]
    assert serve.make_context("serve", args).params["config"] == EXAMPLE


def test_unit_restarts_boundedly_and_is_hardened() -> None:
    unit = parse_unit(UNIT.read_text())
    service, head = unit["Service"], unit["Unit"]
    assert one(service, "Restart") == "on-failure" and float(one(service, "RestartSec")) > 0
    # StartLimit* belong in [Unit]: in [Service] systemd >= 230 ignores them.
    assert int(one(head, "StartLimitBurst")) >= 1 and int(one(head, "StartLimitIntervalSec")) > 0
    assert not any(k.startswith("StartLimit") for k, _ in service)
    assert one(service, "User") not in ("root", "0")
    assert one(service, "Group") == one(service, "User")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert one(service, key) == value, key
    keys = {k for k, _ in service}
    assert "PrivateDevices" not in keys  # would hide /dev/nvidia* from NVML and CUDA
    assert one(unit["Install"], "WantedBy") == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_knows_every_directive(tmp_path: Path) -> None:
    """``systemd-analyze verify`` on a copy whose ExecStart points at an existing program.

    In a container verify may still complain about its environment (missing targets); only
    complaints about the file itself fail the test.
    """
    text = UNIT.read_text().replace("/opt/edgetb/venv/bin/edgetb-agent", sys.executable)
    copy = tmp_path / "edgetb-agent.service"
    copy.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    for complaint in ("Unknown key", "Unknown section", "Failed to parse", "Invalid", "bad-setting"):
        assert complaint not in output, output


# --- RAPL access for the agent's group ------------------------------------------------------------


def test_rapl_rules_grant_the_units_group_read_access_to_the_counters_the_agent_reads() -> None:
    group = one(parse_unit(UNIT.read_text())["Service"], "Group")
    rules = [line for line in (DEPLOY / "60-edgetb-rapl.rules").read_text().splitlines() if line and line[0] != "#"]
    assert len(rules) == 1
    rule = rules[0]
    assert 'SUBSYSTEM=="powercap"' in rule and 'KERNEL=="intel-rapl:*"' in rule
    assert f'RUN+="/usr/bin/chgrp {group} /sys%p/energy_uj"' in rule
    assert 'RUN+="/usr/bin/chmod g+r /sys%p/energy_uj"' in rule
    entries = [line.split() for line in (DEPLOY / "edgetb-rapl.conf").read_text().splitlines() if line[:1] != "#"]
    entries = [e for e in entries if e]
    assert entries == [["z", "/sys/class/powercap/intel-rapl:*/energy_uj", "0440", "root", group, "-"]]


@pytest.mark.skipif(
    shutil.which("systemd-tmpfiles") is None or os.geteuid() != 0, reason="needs systemd-tmpfiles and root (chown)"
)
def test_tmpfiles_rule_applies_to_a_fake_powercap_tree(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/group").write_text("root:x:0:\nedgetb:x:990:\n")
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    for zone in ("intel-rapl:0", "intel-rapl:0:0"):
        counter = tmp_path / "sys/class/powercap" / zone / "energy_uj"
        counter.parent.mkdir(parents=True)
        counter.write_text("123\n")
        counter.chmod(0o400)
    result = subprocess.run(
        ["systemd-tmpfiles", f"--root={tmp_path}", "--create", str(DEPLOY / "edgetb-rapl.conf")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for zone in ("intel-rapl:0", "intel-rapl:0:0"):
        st = (tmp_path / "sys/class/powercap" / zone / "energy_uj").stat()
        assert (st.st_mode & 0o777, st.st_gid) == (0o440, 990)


def test_orchestrator_example_config_loads() -> None:
    from orchestrator.config import OrchestratorConfig

    path = REPO / "deploy" / "orchestrator.example.toml"
    config = OrchestratorConfig.load(path)
    assert config.listen == "127.0.0.1:50051" and config.heartbeat_s == 2.0
    assert config.limits.max_inflight_requests == 64 and config.agents == ()
    assert config.run_dir == (path.parent / "runs").resolve()  # relative to the file
