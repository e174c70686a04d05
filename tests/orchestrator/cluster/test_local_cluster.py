"""``LocalCluster`` and ``edgetb up``: the daemon plus agents as child processes, and their teardown.

Agents use the simulated device (a profile written in tmp) and the shipped models.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

import psutil
import pytest

from orchestrator.cluster import SHIPPED_MODELS, ClusterError, LocalCluster, repository_models
from orchestrator.daemon_client import OrchestratorClient

_READY = re.compile(r"edgetb up: ready; orchestrator (\S+:\d+)")


@pytest.fixture()
def sim_profile(tmp_path: Path, sim_profile_toml) -> Path:
    path = tmp_path / "sim.toml"
    path.write_text(sim_profile_toml(name="cluster-sim"))
    return path


def _assert_gone(pids: list[int], timeout_s: float = 5.0) -> None:
    """Fail if any of ``pids`` still runs after ``timeout_s`` seconds (and kill those, not to leak them)."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:
        p.kill()
    assert alive == [], f"left behind: {alive}"


def test_cluster_serves_and_leaving_it_stops_every_child(sim_profile: Path, tmp_path: Path) -> None:
    models = repository_models(SHIPPED_MODELS)
    assert len(models) >= 2, models
    with LocalCluster(
        2, device="simulated", sim_profile=sim_profile, run_dir=tmp_path / "run", heartbeat_s=0.2, telemetry_hz=20
    ) as cluster:
        assert set(cluster.agents) == {"edge-1", "edge-2", "cloud"}
        status = cluster.status()
        views = {a.name: a for a in status.agents}
        assert set(views) == {"edge-1", "edge-2", "cloud"}
        for name, view in views.items():
            assert view.state == "up" and view.registered, view
            assert view.address == cluster.agents[name]
            assert view.device_kind == "simulated"
        assert sorted(views["cloud"].loaded_models) == models  # the cloud preloads the whole repository
        assert views["edge-1"].loaded_models == () and views["edge-2"].loaded_models == ()
        assert cluster.metrics_url.startswith("http://127.0.0.1:") and cluster.metrics_url.endswith("/metrics")
        assert (tmp_path / "run" / "orchestrator.toml").is_file()

        with OrchestratorClient(cluster.daemon_address, timeout_s=60) as client:
            routed = client.submit(models[0], label=3, steps=2, request_id="via-daemon")
        # only the cloud has the model loaded, so the router sends it there; its WAN delay is
        # 80 ms mean, 10 ms sd, cut at 3 sd: at least 50 ms
        assert routed.agent == "cloud" and not routed.loaded_model and routed.steps == 2
        assert routed.latency_s >= 0.05
        assert cluster.status().requests_by_outcome.get("ok", 0) >= 1

        pids = {name: proc.process.pid for name, proc in cluster.processes.items()}
        assert set(pids) == {"orchestrator", "edge-1", "edge-2", "cloud"}
        assert all(psutil.pid_exists(pid) for pid in pids.values())
    assert cluster.exit_codes == dict.fromkeys(pids, 0)
    assert all(proc.process.returncode == 0 for proc in cluster.processes.values())
    _assert_gone(list(pids.values()))
    assert list(tmp_path.glob("run/*.sqlite")), "the daemon left no run store"


def test_an_agent_that_cannot_start_stops_the_cluster_and_reports_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[device]\nname = 'x'\nidle_power_w = 'a lot'\n")
    cluster = LocalCluster(1, cloud=False, device="simulated", sim_profile=bad, run_dir=tmp_path, ready_timeout_s=60)
    with pytest.raises(ClusterError, match="agent edge-1 did not start") as info:
        cluster.start()
    assert "idle_power_w" in str(info.value)  # the agent's own error is in the message
    assert cluster.exit_codes == {"orchestrator": 0}  # the daemon was stopped gracefully
    assert cluster.daemon is not None
    _assert_gone([cluster.daemon.process.pid])


def test_bad_arguments_are_refused_before_starting_anything(sim_profile: Path) -> None:
    with pytest.raises(ValueError, match="n_agents"):
        LocalCluster(0)
    with pytest.raises(ValueError, match="n_agents"):
        LocalCluster(17)
    with pytest.raises(ValueError, match="sim_profile"):
        LocalCluster(1, device="simulated")
    with pytest.raises(ValueError, match="device"):
        LocalCluster(1, device="nvidia", sim_profile=sim_profile)


# --- edgetb up ------------------------------------------------------------------------------------


def _up(*args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "orchestrator.cli", "up", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _wait_ready(proc: subprocess.Popen[str], timeout_s: float = 60.0) -> deque[str]:
    """Collect the output on a thread; return it once the ready line came (fail on exit or timeout)."""
    output: deque[str] = deque(maxlen=500)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line.rstrip())
            if _READY.search(line):
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout_s) or not any(_READY.search(line) for line in output):
        proc.kill()
        pytest.fail("edgetb up did not become ready:\n" + "\n".join(output))
    return output


def _start_up(sim_profile: Path, run_dir: Path) -> tuple[subprocess.Popen[str], deque[str], list[psutil.Process]]:
    proc = _up(
        "--agents", "1", "--no-cloud", "--device", "simulated", "--sim-profile", str(sim_profile),
        "--run-dir", str(run_dir), "--heartbeat-s", "0.2",
    )  # fmt: skip
    try:
        output = _wait_ready(proc)
        children = psutil.Process(proc.pid).children(recursive=True)
    except BaseException:
        proc.kill()
        raise
    return proc, output, children


def test_up_prints_the_table_and_sigint_stops_everything(sim_profile: Path, tmp_path: Path) -> None:
    proc, output, children = _start_up(sim_profile, tmp_path)
    text = "\n".join(output)
    for name in ("orchestrator", "edge-1"):
        row = next((line for line in output if f" {name} " in line), None)
        assert row is not None, text
        assert re.search(r"127\.0\.0\.1:\d+", row), row
    assert re.search(r"edge-1 .* simulated .* modeled", text), text
    assert re.search(r"http://127\.0\.0\.1:\d+/metrics", text), text
    assert "cloud" not in text
    assert len(children) == 2, children  # the daemon and edge-1
    assert {str(c.pid) for c in children} <= set(re.findall(r"\b\d+\b", text))  # the table shows their pids
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=60) == 0, "\n".join(output)
    finally:
        proc.kill()
    _assert_gone([c.pid for c in children])
    assert any("stopped: edge-1 exit 0, orchestrator exit 0" in line for line in output), "\n".join(output)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_hard_killed_up_leaves_no_child_behind(sim_profile: Path, tmp_path: Path) -> None:
    proc, _, children = _start_up(sim_profile, tmp_path)
    assert len(children) == 2
    proc.kill()  # SIGKILL: no finally runs in `up`; the children get SIGTERM from the kernel
    proc.wait(timeout=10)
    _assert_gone([c.pid for c in children], timeout_s=30)


@pytest.mark.parametrize(
    ("args", "flag"), [(["--agents", "0"], "--agents"), (["--device", "simulated"], "--sim-profile")]
)
def test_bad_options_exit_2_naming_the_option(args: list[str], flag: str) -> None:
    proc = _up(*args)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert flag in out, out
