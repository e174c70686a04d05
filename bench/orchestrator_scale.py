"""Orchestrator at scale: one daemon, many simulated-device agents streaming telemetry, 1 s slots.

The daemon runs as its own child process (``python -m orchestrator.cli serve --config``) with a
``[policy]`` table (caching ``most-popular``, allocation ``fixed-steps``, ``slot_s = 1``, frames of
10 slots). The agents (``simulated`` device, ``--hz`` telemetry, registering with the daemon) are
hosted many per process: ``--hosts`` child processes of this same file (``--agent-host`` mode), each
running its share of agent servers on one asyncio loop. Most agents get an empty model repository;
``--serving`` of them get the shipped models and preload ``digits-mlp-s``, so a modest Submit load
(``--submit-rps``) is served by real generations and each Submit runs a real allocation decision.

After a bounded warm-up (every agent ``up`` in GetStatus, else it stops everything and exits 1),
it measures for ``--seconds`` from two scrapes of the daemon's ``/metrics``:

* decision latency: ``edgetb_decision_seconds`` by kind, the compute time of the caching policy's
  frame plan and of each allocation (bucket-interpolated p50/p99; the RPCs that apply a plan are not
  in it: they are ``edgetb_cache_op_seconds``);
* telemetry rows/s ingested: ``edgetb_telemetry_rows_ingested_total`` delta / window, against the
  offered ``agents x hz``;
* missed slots: ``edgetb_slots_missed_total`` delta;
* daemon RSS: the maximum of psutil samples of the daemon's PID during the window;

and the CPU used by the daemon and by the agent hosts (the load generator is busy too). It prints a
table against the goals (no missed slots, decision p99 <= 50 ms, RSS <= 1 GiB) and exits 0 whether
they are met or not.

Run: ``python bench/orchestrator_scale.py [--agents 200] [--hosts 4] [--seconds 30] [--hz 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import re
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.local import LocalProcess, start_process  # noqa: E402

#: The model the serving agents preload and the Submit load asks for.
MODEL = "digits-mlp-s"
GOAL_P99_S = 0.050
GOAL_RSS_BYTES = 1 << 30
_HOST_READY = re.compile(r"agent host ready: \d+ agents; first on (\S+:\d+)")

SIM_PROFILE = """\
name = "sim-edge"
idle_power_w = 5.0
max_power_w = 15.0
mem_total_bytes = 8589934592
idle_mem_used_bytes = 1073741824
max_mem_used_bytes = 2147483648
"""


# --- agent host mode ------------------------------------------------------------------------------


async def host_agents(args: argparse.Namespace) -> None:
    """Start ``args.count`` agent servers on this loop, print the ready line, serve until SIGTERM."""
    from node_agent.config import SHIPPED_MODELS, AgentConfig
    from node_agent.server import AgentServer, start_server

    serving = {int(i) for i in args.serving.split(",") if i}
    servers: list[AgentServer] = []
    for index in range(args.first, args.first + args.count):
        config = AgentConfig(
            name=f"edge-{index:03d}", listen="127.0.0.1:0", device="simulated", sim_profile=Path(args.sim_profile),
            models=SHIPPED_MODELS if index in serving else Path(args.empty_models), telemetry_hz=args.hz,
            preload=(MODEL,) if index in serving else (), orchestrator=args.orchestrator,
            heartbeat_s=args.heartbeat_s, intra_op_threads=1, telemetry_capacity=1000,
        )  # fmt: skip
        servers.append(await start_server(config))
    print(f"agent host ready: {len(servers)} agents; first on {servers[0].address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await asyncio.gather(*(s.stop(grace_s=1.0) for s in servers), return_exceptions=True)


# --- measuring ------------------------------------------------------------------------------------


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``/metrics`` as sample name -> [(labels, value)]."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return samples


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


def buckets(samples: dict[str, list[tuple[dict[str, str], float]]], kind: str) -> list[tuple[float, float]]:
    """Cumulative ``(le, count)`` of ``edgetb_decision_seconds`` for ``kind``, by bound."""
    found = samples.get("edgetb_decision_seconds_bucket", [])
    return sorted((float(lab["le"]), v) for lab, v in found if lab["kind"] == kind)


@dataclass
class Quantiles:
    """Decision-time quantiles from a histogram delta: interpolated inside the bucket, and that bucket."""

    n: int
    p50_s: float | None = None
    p99_s: float | None = None
    p99_bucket: tuple[float, float] | None = None
    within_goal: bool | None = None  # at least 99 % of the decisions fell at or under the 50 ms bucket bound


def quantiles(before: Iterable[tuple[float, float]], after: Iterable[tuple[float, float]]) -> Quantiles:
    """p50/p99 of the observations between two scrapes of one histogram (linear inside a bucket)."""
    prior = dict(before)
    cum = [(le, count - prior.get(le, 0.0)) for le, count in after]
    n = int(cum[-1][1]) if cum else 0
    if n == 0:
        return Quantiles(0)

    def q(p: float) -> tuple[float, tuple[float, float]]:
        rank, low, below = p * n, 0.0, 0.0
        for le, count in cum:
            if count >= rank:
                if math.isinf(le):
                    return low, (low, le)
                return low + (le - low) * (rank - below) / max(count - below, 1e-12), (low, le)
            low, below = le, count
        return low, (low, math.inf)

    p50, _ = q(0.50)
    p99, bucket = q(0.99)
    at_goal = next((count for le, count in cum if le >= GOAL_P99_S - 1e-12), float(n))
    return Quantiles(n, p50, p99, bucket, at_goal >= math.ceil(0.99 * n))


@dataclass
class Sampler:
    """Samples processes' RSS every ``period_s`` on a thread; keeps the maximum per PID."""

    pids: dict[str, int]
    period_s: float = 0.5
    max_rss: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        procs = {name: psutil.Process(pid) for name, pid in self.pids.items()}
        while not self._stop.wait(self.period_s):
            for name, proc in procs.items():
                with contextlib.suppress(psutil.Error):
                    self.max_rss[name] = max(self.max_rss.get(name, 0), proc.memory_info().rss)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="rss-sampler", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


@dataclass
class SubmitLoad:
    """Submits ``MODEL`` at ``rps`` requests/s (sequentially, paced) until stopped; counts the outcomes."""

    address: str
    rps: float
    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import grpc

        from orchestrator.daemon_client import OrchestratorClient

        if self.rps <= 0:
            return
        with OrchestratorClient(self.address, timeout_s=30.0) as client:
            i, t0 = 0, time.monotonic()
            while not self._stop.wait(max(0.0, t0 + i / self.rps - time.monotonic())):
                t_s = time.monotonic()
                try:
                    client.submit(MODEL, i % 10, seed=i, request_id=f"scale-{i}")
                    self.ok += 1
                    self.latencies_s.append(time.monotonic() - t_s)
                except grpc.RpcError as exc:
                    code = exc.code().name if hasattr(exc, "code") else type(exc).__name__
                    self.failed[code] = self.failed.get(code, 0) + 1
                i += 1

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="submit-load", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Figures:
    """What one run measured (``None``: not measured)."""

    agents: int
    hosts: int
    seconds: float
    hz: float
    agents_up: int
    window_s: float = 0.0
    rows_per_s: float = 0.0
    rows_expected_per_s: float = 0.0
    telemetry_dropped: float = 0.0
    store_rows_dropped: float = 0.0
    slots_missed: float = 0.0
    slots_elapsed: float = 0.0
    frame_plan: Quantiles = field(default_factory=lambda: Quantiles(0))
    allocation: Quantiles = field(default_factory=lambda: Quantiles(0))
    daemon_rss_max_bytes: int = 0
    hosts_rss_max_bytes: int = 0
    daemon_cpu_pct: float = 0.0
    hosts_cpu_pct: list[float] = field(default_factory=list)
    host_threads: list[int] = field(default_factory=list)
    submits_ok: int = 0
    submits_failed: dict[str, int] = field(default_factory=dict)
    submit_p50_s: float | None = None
    cores: int = 0
    daemon_exit: int | None = None


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


# --- orchestration --------------------------------------------------------------------------------


def write_configs(tmp: Path, args: argparse.Namespace) -> Path:
    """Write the sim profile, the empty repository and the daemon's TOML; returns the TOML's path."""
    (tmp / "sim.toml").write_text(SIM_PROFILE)
    (tmp / "empty-models").mkdir()
    config = tmp / "orchestrator.toml"
    config.write_text(
        f"""\
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
heartbeat_s = {args.heartbeat_s}
run_dir = "runs"
telemetry_batch_size = 10

[limits]
max_agents = {args.agents + 16}

[policy]
caching = "most-popular"
allocation = "fixed-steps"
slot_s = {args.slot_s}
frame_slots = {args.frame_slots}
cache_models = 1
fixed_steps = 8
model_rank = ["{MODEL}"]
"""
    )
    return config


def start_hosts(tmp: Path, args: argparse.Namespace, daemon_address: str) -> list[LocalProcess]:
    """Start the agent host processes (agents split as evenly as possible)."""
    n_serving = min(args.serving, args.agents)
    serving = sorted({round(i * args.agents / n_serving) for i in range(n_serving)}) if n_serving else []
    hosts, first = [], 0
    for h in range(args.hosts):
        count = args.agents // args.hosts + (1 if h < args.agents % args.hosts else 0)
        if count == 0:
            continue
        cmd = [
            sys.executable, str(Path(__file__).resolve()), "--agent-host", "--first", str(first), "--count", str(count),
            "--orchestrator", daemon_address, "--sim-profile", str(tmp / "sim.toml"),
            "--empty-models", str(tmp / "empty-models"), "--serving-list", ",".join(map(str, serving)),
            "--hz", str(args.hz), "--heartbeat-s", str(args.heartbeat_s),
        ]  # fmt: skip
        timeout_s = 60 + 2.0 * count
        host = start_process(f"agent host {h}", cmd, timeout_s=timeout_s, pattern=_HOST_READY, die_with_parent=True)
        hosts.append(host)
        first += count
    return hosts


def wait_up(address: str, n: int, timeout_s: float) -> int:
    """Poll GetStatus until ``n`` agents are up; returns how many are (raises RuntimeError with counts on timeout)."""
    from orchestrator.daemon_client import OrchestratorClient

    deadline = time.monotonic() + timeout_s
    states: dict[str, int] = {}
    with OrchestratorClient(address, timeout_s=10.0) as client:
        while time.monotonic() < deadline:
            status = client.status()
            states = {}
            for a in status.agents:
                states[a.state] = states.get(a.state, 0) + 1
            if states.get("up", 0) >= n:
                return states["up"]
            time.sleep(0.5)
    raise RuntimeError(f"only {states.get('up', 0)} of {n} agents up after {timeout_s:.0f} s; states: {states}")


def run(args: argparse.Namespace) -> Figures:
    """Start the daemon and the agent hosts, warm up, measure for ``args.seconds``, stop everything."""
    figs = Figures(args.agents, args.hosts, args.seconds, args.hz, 0, cores=psutil.cpu_count() or 0)
    with tempfile.TemporaryDirectory(prefix="edgetb-scale-") as tmp_name:
        tmp = Path(tmp_name)
        config = write_configs(tmp, args)
        cmd = [sys.executable, "-m", "orchestrator.cli", "serve", "--config", str(config), "--log-level", "warning"]
        daemon = start_process("daemon", cmd, timeout_s=60, die_with_parent=True)
        hosts: list[LocalProcess] = []
        try:
            metrics_url = next(m.group(1) for line in daemon.output if (m := re.search(r"metrics (http\S+);", line)))
            hosts = start_hosts(tmp, args, daemon.address)
            figs.agents_up = wait_up(daemon.address, args.agents, args.warmup_timeout_s)
            time.sleep(args.settle_s)  # ingest streams open after "up"
            daemon_proc = psutil.Process(daemon.process.pid)
            host_procs = [psutil.Process(h.process.pid) for h in hosts]
            figs.host_threads = [p.num_threads() for p in host_procs]
            rss = Sampler({"daemon": daemon.process.pid} | {f"host{i}": p.pid for i, p in enumerate(host_procs)})
            load = SubmitLoad(daemon.address, args.submit_rps)
            before = scrape(metrics_url)
            cpu0 = [_cpu_s(daemon_proc), *(_cpu_s(p) for p in host_procs)]
            t0 = time.monotonic()
            rss.start()
            load_thread = load.start()
            time.sleep(args.seconds)
            load.stop()
            load_thread.join(timeout=35)
            after = scrape(metrics_url)
            figs.window_s = time.monotonic() - t0
            cpu1 = [_cpu_s(daemon_proc), *(_cpu_s(p) for p in host_procs)]
            rss.stop()
            w = figs.window_s
            cpu = [100.0 * (b - a) / w for a, b in zip(cpu0, cpu1, strict=True)]
            figs.daemon_cpu_pct, figs.hosts_cpu_pct = cpu[0], cpu[1:]
            figs.daemon_rss_max_bytes = rss.max_rss.get("daemon", 0)
            figs.hosts_rss_max_bytes = max((v for k, v in rss.max_rss.items() if k != "daemon"), default=0)

            def delta(name: str) -> float:
                return total(after, name) - total(before, name)

            figs.rows_per_s = delta("edgetb_telemetry_rows_ingested_total") / w
            figs.rows_expected_per_s = args.agents * args.hz
            figs.telemetry_dropped = delta("edgetb_telemetry_samples_dropped_total")
            figs.store_rows_dropped = delta("edgetb_store_rows_dropped_total")
            figs.slots_missed = delta("edgetb_slots_missed_total")
            figs.slots_elapsed = w / args.slot_s
            figs.frame_plan = quantiles(buckets(before, "frame-plan"), buckets(after, "frame-plan"))
            figs.allocation = quantiles(buckets(before, "allocation"), buckets(after, "allocation"))
            figs.submits_ok, figs.submits_failed = load.ok, load.failed
            if load.latencies_s:
                figs.submit_p50_s = sorted(load.latencies_s)[len(load.latencies_s) // 2]
        except RuntimeError:
            for proc in (daemon, *hosts):
                if proc.process.poll() is not None:
                    print(f"--- {proc.name} exited {proc.process.returncode}; last lines:", file=sys.stderr)
                    print("\n".join(list(proc.output)[-20:]), file=sys.stderr)
            raise
        finally:
            for host in hosts:
                host.process.send_signal(signal.SIGTERM)
            for host in hosts:
                host.stop(timeout_s=30)
            figs.daemon_exit = daemon.stop(timeout_s=40)
    return figs


# --- report ---------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1e3:.3g} ms"


def _verdict(ok: bool | None) -> str:
    return "n/a (no samples)" if ok is None else ("met" if ok else "NOT met")


def report(f: Figures) -> str:
    """The table of figures against the goals, and the run's conditions."""

    def dec(q: Quantiles) -> str:
        if q.n == 0:
            return "no decisions in the window"
        low, high = q.p99_bucket or (0.0, 0.0)
        return f"p50 {_ms(q.p50_s)}, p99 {_ms(q.p99_s)} (bucket {_ms(low)}..{_ms(high)}), n={q.n}"

    rss_ok = f.daemon_rss_max_bytes <= GOAL_RSS_BYTES if f.daemon_rss_max_bytes else None
    rows = [
        ("decision: frame plan", dec(f.frame_plan), "p99 <= 50 ms", _verdict(f.frame_plan.within_goal)),
        ("decision: allocation", dec(f.allocation), "p99 <= 50 ms", _verdict(f.allocation.within_goal)),
        ("missed slots", f"{f.slots_missed:.0f} of ~{f.slots_elapsed:.0f} slots", "0", _verdict(f.slots_missed == 0)),
        ("daemon RSS (max)", f"{f.daemon_rss_max_bytes / 2**20:.0f} MiB", "<= 1024 MiB", _verdict(rss_ok)),
        (
            "telemetry rows/s ingested",
            f"{f.rows_per_s:.0f} (offered {f.rows_expected_per_s:.0f} = {f.agents} x {f.hz:g} Hz)",
            "(figure)",
            f"{100 * f.rows_per_s / f.rows_expected_per_s:.1f} % of offered" if f.rows_expected_per_s else "",
        ),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"orchestrator_scale: {f.agents} simulated agents in {f.hosts} host processes, {f.hz:g} Hz telemetry, "
        f"1 daemon process; window {f.window_s:.1f} s after all {f.agents_up} agents were up",
        "",
        "  ".join(h.ljust(width[i]) for i, h in enumerate(("figure", "measured", "goal", "verdict"))).rstrip(),
    ]
    lines += ["  ".join(c.ljust(width[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    failed = ", ".join(f"{k} {v}" for k, v in sorted(f.submits_failed.items())) or "none"
    lines += [
        "",
        "conditions:",
        f"  machine: {f.cores} CPU cores; the daemon, the agent hosts and this driver share them",
        f"  daemon CPU: {f.daemon_cpu_pct:.0f} % of one core over the window",
        f"  agent hosts CPU: {', '.join(f'{c:.0f} %' for c in f.hosts_cpu_pct)} of one core each "
        f"(total {sum(f.hosts_cpu_pct):.0f} %); threads per host at start: {f.host_threads}; "
        f"host RSS max {f.hosts_rss_max_bytes / 2**20:.0f} MiB",
        f"  Submit load ({MODEL}, fixed-steps): {f.submits_ok} ok, failed: {failed}; "
        f"client-side latency p50 {_ms(f.submit_p50_s)}",
        f"  telemetry samples lost in agents' logs: {f.telemetry_dropped:.0f}; store rows dropped: "
        f"{f.store_rows_dropped:.0f}",
        f"  daemon exit code after SIGTERM: {f.daemon_exit}",
        "  decision time = the policy's compute (view + plan/allocate) inside the daemon, from the "
        "edgetb_decision_seconds histogram (interpolated in its bucket); applying a plan's "
        "Load/UnloadModel RPCs is not in it",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--agents", type=int, default=200, help="simulated agents in all")
    parser.add_argument("--hosts", type=int, default=4, help="agent host processes")
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window, s")
    parser.add_argument("--hz", type=float, default=10.0, help="telemetry rate per agent, Hz")
    parser.add_argument("--slot-s", type=float, default=1.0, help="policy slot, s")
    parser.add_argument("--frame-slots", type=int, default=10, help="slots per caching frame")
    parser.add_argument("--heartbeat-s", type=float, default=2.0, help="agents' heartbeat interval, s")
    parser.add_argument("--serving", type=int, default=2, help="agents that preload the model and serve Submits")
    parser.add_argument("--submit-rps", type=float, default=2.0, help="Submit requests per second (0: none)")
    parser.add_argument("--warmup-timeout-s", type=float, default=180.0, help="bound on waiting for all agents up")
    parser.add_argument("--settle-s", type=float, default=3.0, help="wait after all are up before measuring, s")
    host = parser.add_argument_group("agent host mode (started by the benchmark itself)")
    host.add_argument("--agent-host", action="store_true", help=argparse.SUPPRESS)
    host.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    host.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    host.add_argument("--orchestrator", default="", help=argparse.SUPPRESS)
    host.add_argument("--sim-profile", default="", help=argparse.SUPPRESS)
    host.add_argument("--empty-models", default="", help=argparse.SUPPRESS)
    host.add_argument("--serving-list", dest="serving_list", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.agent_host:
        for key in ("agents", "hosts"):
            if getattr(args, key) < 1:
                parser.error(f"--{key} must be >= 1")
        if args.seconds <= 0 or not 1 <= args.hz <= 100:
            parser.error("--seconds must be > 0 and --hz in 1..100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.agent_host:
        args.serving = args.serving_list
        asyncio.run(host_agents(args))
        return 0
    try:
        figures = run(args)
    except RuntimeError as exc:
        print(f"orchestrator_scale: FAILED: {exc}", file=sys.stderr)
        return 1
    print(report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
