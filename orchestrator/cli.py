"""``edgetb``: the orchestrator and harness command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from orchestrator import cli_profiles, cli_train

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/demo"),
    slots: Annotated[int | None, typer.Option(help="slots per policy run; default: the scenario's")] = None,
    scenario: Annotated[str, typer.Option(help="shipped scenario name or scenario TOML file")] = "t2drl",
    seed: Annotated[int | None, typer.Option(help="workload seed (default: the scenario's; --agent-only: 0)")] = None,
    slot_s: Annotated[float | None, typer.Option(help="slot length, s; default: the scenario's")] = None,
    policies: Annotated[str, typer.Option(help="comma-separated caching+allocation combinations")] = "",
    device: Annotated[str, typer.Option(help="agents' device: auto | cpu | simulated")] = "auto",
    sim_profile: Annotated[Path | None, typer.Option(help="device profile TOML for --device simulated")] = None,
    agent_only: Annotated[bool, typer.Option("--agent-only", help="the single-agent steps sweep instead")] = False,
    steps: Annotated[str, typer.Option(help="--agent-only: comma-separated step counts")] = "1,2,4,8,16,32,64",
    per_class: Annotated[int, typer.Option(help="--agent-only: images per class and point")] = 10,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="edgetb train --env t2drl run folder of ddqn / d3pg / ddpg / sac / td3 (default: shipped)"),
    ] = None,
    fine_tune: Annotated[
        bool, typer.Option("--fine-tune", help="learned policies keep learning live (tuned copy in the run folder)")
    ] = False,
) -> None:
    """Run every policy live on a local cluster with the scenario's seeded workload; report, figures, table.

    With ``--agent-only``: start one local agent and show latency, energy and quality per steps for
    every shipped model.
    """
    if agent_only:
        _agent_demo(out, steps, per_class, 0 if seed is None else seed)
        return
    from orchestrator.cluster import ClusterError
    from orchestrator.live_demo import default_policies, run_live_demo

    if slots is not None and not 1 <= slots <= 10_000:
        raise typer.BadParameter(f"--slots: {slots} is outside 1..10000")
    try:
        chosen = tuple(p.strip() for p in policies.split(",") if p.strip()) or default_policies(checkpoint)
        report = run_live_demo(
            out, scenario=scenario, slots=slots, seed=seed, slot_s=slot_s, policies=chosen, device=device,
            sim_profile=sim_profile, checkpoint=checkpoint, fine_tune=fine_tune,
            log=lambda line: console.print(f"[dim]{line}[/dim]"),
        )  # fmt: skip
    except (ValueError, ClusterError) as exc:
        console.print(f"[red]edgetb demo: {exc}[/red]")
        raise typer.Exit(1) from exc
    sources = dict(report["agents"])
    console.print(
        f"scenario {report['scenario']} (seed {report['seed']}): {report['requests']} requests per policy over "
        f"{report['slots']} slots of {report['slot_s']:g} s; agents' power source: "
        + ", ".join(f"{n} {s}" for n, s in sources.items())
    )
    console.print(policy_table(report))
    written = (
        "report.json",
        "telemetry.sqlite",
        "latency_cdf.png",
        "power_timeline.png",
        "utility_per_slot.png",
        "samples.png",
    )
    console.print(
        f"took {report['wall_s']:.0f} s. Written: " + ", ".join(str(out / n) for n in written if (out / n).exists())
    )


def policy_table(report: dict) -> Table:
    """One row per policy of a live-demo report (policy names wrap at "+", so 80 columns fit)."""
    from rich import box

    from orchestrator.cluster import CLOUD

    table = Table(title="edgetb demo", box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False)
    table.add_column("policy", min_width=15, no_wrap=True)
    for header in ("utility", "quality", "mean\nms", "p99\nms", "J/req", "hit\nratio", "failed", "edge/\ncloud"):
        table.add_column(header, justify="right")

    def ms(value: float | None) -> str:
        return f"{1e3 * value:.0f}" if value is not None else "n/a"

    for name, p in report["policies"].items():
        energy = p["energy_j_per_request"]
        cloud = p["served_by"].get(CLOUD, 0)
        table.add_row(
            name.replace("+", "\n+"),
            f"{p['utility']:.3f}",
            f"{p['mean_quality']:.3f}" if p["mean_quality"] is not None else "n/a",
            ms(p["mean_latency_s"]),
            ms(p["p99_latency_s"]),
            f"{energy:.3f}" if energy is not None else "n/a",
            f"{p['hit_ratio']:.2f}",
            f"{p['failed_requests']}/{p['requests']}",
            f"{sum(p['served_by'].values()) - cloud}/{cloud}",
        )
    return table


def _agent_demo(out: Path, steps: str, per_class: int, seed: int) -> None:
    """``edgetb demo --agent-only``: the single-agent steps sweep (``orchestrator.demo``)."""
    from orchestrator.demo import run_demo

    try:
        step_list = tuple(int(s) for s in steps.split(","))
    except ValueError as exc:
        raise typer.BadParameter(f"--steps: '{steps}' is not a list of integers") from exc
    report = run_demo(out, steps=step_list, per_class=per_class, seed=seed, console=console)
    agent = report["agent"]
    sources = sorted({row["energy_source"] for row in report["points"]})
    console.print(
        f"agent: {agent['device']}; providers {', '.join(agent['execution_providers'])}; "
        f"power source: [bold]{agent['power_source']}[/bold]; energy per image from: {', '.join(sources)}"
    )
    table = Table("model", "steps", "p50 ms", "ms/step", "J/image", "accuracy", "FD", title="edgetb demo --agent-only")
    for row in report["points"]:
        energy = row["energy_j_per_image"]
        table.add_row(
            row["model"],
            str(row["steps"]),
            f"{1e3 * row['latency_s_p50']:.1f}",
            f"{row['step_time_ms']:.2f}",
            f"{energy:.4f}" if energy is not None else "n/a",
            f"{row['accuracy']:.3f}",
            f"{row['frechet_distance']:.2f}",
        )
    console.print(table)
    floor = report["real_data_floor"]
    console.print(
        f"real held-out digits: accuracy {floor['accuracy']:.3f}, FD {floor['frechet_distance']:.2f} "
        f"(the floor a perfect generator would reach). Written: "
        + ", ".join(str(out / name) for name in ("demo.json", "samples.png") if (out / name).exists())
    )


@app.command()
def info(target: Annotated[str, typer.Option(help="agent HOST:PORT")]) -> None:
    """Show an agent's device, telemetry sources and models."""
    from orchestrator.client import AgentClient

    with AgentClient(target, timeout_s=10) as client:
        status = client.info()
        console.print(f"{status.name} ({status.hostname}) v{status.version}: {status.device_kind} {status.device_name}")
        for metric, (source, note) in status.sources.items():
            console.print(f"  {metric:<12} {source:<16} {note}")
        for model in client.models():
            console.print(f"  model {model.name:<20} {model.kind:<7} loaded={model.loaded} {model.error}")


@app.command()
def bench(
    target: Annotated[str, typer.Option(help="server HOST:PORT")],
    model: Annotated[str, typer.Option(help="model name on the server")],
    steps: Annotated[int, typer.Option(help="denoising steps per query")],
    scenario: Annotated[str, typer.Option(help="single-stream | server | offline")] = "single-stream",
    protocol: Annotated[str, typer.Option(help="edgeagent | kserve")] = "edgeagent",
    rate: Annotated[float | None, typer.Option(help="server: Poisson arrival rate, queries/s")] = None,
    batch: Annotated[int, typer.Option(help="images per query")] = 1,
    min_duration_s: Annotated[float, typer.Option(help="run at least this long, s")] = 10.0,
    min_queries: Annotated[int, typer.Option(help="issue at least this many queries")] = 100,
    max_duration_s: Annotated[float, typer.Option(help="hard cap on the issuing time, s")] = 600.0,
    max_queries: Annotated[int, typer.Option(help="hard cap on the queries issued")] = 100_000,
    max_in_flight: Annotated[int, typer.Option(help="server/offline: most queries outstanding")] = 8,
    windows: Annotated[int, typer.Option(help="measurement windows for the validity check (>= 3)")] = 5,
    seed: Annotated[int, typer.Option(help="seeds arrivals, labels and per-query seeds")] = 0,
    idle_s: Annotated[float, typer.Option(help="idle-power baseline before the run, s (0: none)")] = 5.0,
    timeout_s: Annotated[float, typer.Option(help="deadline of each query, s")] = 60.0,
    connect_timeout_s: Annotated[float, typer.Option(help="wait this long for the target to connect, s")] = 5.0,
    warmup: Annotated[int, typer.Option(help="warm-up queries before the run (not recorded)")] = 2,
    num_classes: Annotated[int | None, typer.Option(help="labels from 0..N-1; default: from the target")] = None,
    out: Annotated[Path, typer.Option(help="where to write the report")] = Path("bench.json"),
) -> None:
    """Drive a model with a MLPerf-LoadGen-style scenario and write bench.json."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from orchestrator.harness.bench import run_bench
    from orchestrator.harness.report import summary_rows, write_report
    from orchestrator.harness.runner import BenchConfig
    from orchestrator.harness.scenarios import Limits
    from orchestrator.harness.targets import PROTOCOLS, BenchError

    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"--protocol: '{protocol}' is not one of {', '.join(PROTOCOLS)}")
    try:
        config = BenchConfig(
            scenario=scenario,
            model=model,
            steps=steps,
            batch=batch,
            seed=seed,
            rate_qps=rate,
            max_in_flight=max_in_flight,
            limits=Limits(min_duration_s, min_queries, max_duration_s, max_queries),
            windows=windows,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            idle_s=idle_s,
            warmup_queries=warmup,
            num_classes=num_classes,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("starting", total=min_duration_s or None, counts="")

        def on_progress(issued: int, finished: int, elapsed_s: float) -> None:
            progress.update(task, completed=elapsed_s, counts=f"{finished}/{issued} queries finished")

        try:
            report = run_bench(
                config, target, protocol, on_progress, lambda text: progress.update(task, description=text)
            )
        except BenchError as exc:
            progress.stop()
            console.print(f"[red]edgetb bench: {exc}[/red]")
            raise typer.Exit(1) from None
    write_report(report, out)
    table = Table("figure", "value", title=f"edgetb bench: {target}")
    for name, value in summary_rows(report):
        table.add_row(name, value)
    console.print(table)
    console.print(f"written: {out}")


@app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", help="orchestrator TOML file (see orchestrator/config.py)")],
    listen: Annotated[str | None, typer.Option(help="HOST:PORT of the gRPC API; overrides the file")] = None,
    metrics_listen: Annotated[str | None, typer.Option(help="HOST:PORT of /metrics; overrides the file")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="folder of the run store files; overrides the file")] = None,
    log_level: Annotated[str, typer.Option(help="debug|info|warning")] = "info",
) -> None:
    """Run the orchestrator daemon (registry, routing, telemetry store, /metrics) until SIGTERM/SIGINT."""
    import asyncio
    import logging

    from orchestrator.config import ConfigError, OrchestratorConfig

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = OrchestratorConfig.load(config, listen=listen, metrics_listen=metrics_listen, run_dir=run_dir)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    from orchestrator.daemon import serve as run

    asyncio.run(run(cfg))


@app.command()
def up(
    agents: Annotated[int, typer.Option(min=1, max=16, help="edge agents edge-1..edge-N, 1..16")] = 2,
    models: Annotated[Path | None, typer.Option(help="model repository of every agent (default: shipped)")] = None,
    device: Annotated[str, typer.Option(help="auto|cpu|simulated, for every agent")] = "auto",
    sim_profile: Annotated[Path | None, typer.Option(help="device profile for --device simulated")] = None,
    cloud_delay_ms: Annotated[float, typer.Option(help="cloud agent: EMULATED WAN round-trip delay, ms")] = 80.0,
    cloud_jitter_ms: Annotated[float, typer.Option(help="cloud agent: standard deviation of that delay, ms")] = 10.0,
    no_cloud: Annotated[bool, typer.Option("--no-cloud", help="start no cloud agent")] = False,
    run_dir: Annotated[Path, typer.Option(help="folder of the daemon's config and run store")] = Path("runs/cluster"),
    listen: Annotated[str, typer.Option(help="HOST:PORT of the daemon's gRPC API (port 0: a free one)")] = (
        "127.0.0.1:0"
    ),
    metrics_listen: Annotated[str, typer.Option(help="HOST:PORT of the daemon's /metrics (port 0: a free one)")] = (
        "127.0.0.1:0"
    ),
    heartbeat_s: Annotated[float, typer.Option("--heartbeat-s", help="heartbeat interval, s")] = 1.0,
    telemetry_hz: Annotated[float, typer.Option("--telemetry-hz", help="agents' sampler rate, Hz")] = 10.0,
    ready_timeout_s: Annotated[float, typer.Option(help="how long the cluster may take to come up, s")] = 120.0,
) -> None:
    """Run the daemon, N edge agents and a cloud agent on loopback until Ctrl-C/SIGTERM (development, demos)."""
    import signal
    import threading

    from orchestrator.cluster import SHIPPED_MODELS, ClusterError, LocalCluster
    from orchestrator.config import check_host_port

    for flag, value in (("--listen", listen), ("--metrics-listen", metrics_listen)):
        try:
            check_host_port(value)
        except ValueError as exc:
            raise typer.BadParameter(f"{flag}: {exc}") from exc
    try:
        cluster = LocalCluster(
            agents, models=models or SHIPPED_MODELS, device=device, sim_profile=sim_profile, cloud=not no_cloud,
            cloud_delay_ms=cloud_delay_ms, cloud_jitter_ms=cloud_jitter_ms, run_dir=run_dir, listen=listen,
            metrics_listen=metrics_listen, heartbeat_s=heartbeat_s, telemetry_hz=telemetry_hz,
            ready_timeout_s=ready_timeout_s,
        )  # fmt: skip
    except ValueError as exc:  # "setting: message"; name the flag instead
        setting, _, message = str(exc).partition(": ")
        flag = {"n_agents": "agents"}.get(setting, setting).replace("_", "-")
        raise typer.BadParameter(f"--{flag}: {message}") from exc

    stop = threading.Event()
    starting = threading.Event()
    starting.set()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        if starting.is_set():  # still starting: unwind start() once, which stops what it started
            starting.clear()
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        try:
            cluster.start()
        except ClusterError as exc:
            starting.clear()
            console.print(f"edgetb up: {exc}", style="red", soft_wrap=True, markup=False, highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            starting.clear()
            console.print("edgetb up: interrupted while starting; stopped")
            raise typer.Exit(130) from None
        starting.clear()
        views = {a.name: a for a in cluster.status().agents}
        columns = ("process", "address", "device", "power source", "pid", "note")
        table = Table(*columns, title="edgetb up: local cluster")
        metrics = cluster.metrics_url or "off"
        table.add_row("orchestrator", cluster.daemon_address, "-", "-", str(cluster.daemon.process.pid), metrics)
        for name, proc in cluster.agent_processes.items():
            view = views.get(name)
            note = f"+{cloud_delay_ms:g}±{cloud_jitter_ms:g} ms WAN (emulated)" if name == "cloud" else ""
            device_kind, power = (view.device_kind, view.power_source) if view else ("?", "?")
            table.add_row(name, proc.address, device_kind, power, str(proc.process.pid), note)
        console.print(table)
        console.print(f"metrics: {cluster.metrics_url or 'off'}; run folder: {cluster.run_dir}")
        console.print(f"edgetb up: ready; orchestrator {cluster.daemon_address}; Ctrl-C stops", highlight=False)
        while not stop.wait(0.5):
            dead = [name for name, proc in cluster.processes.items() if proc.process.poll() is not None]
            if dead:
                console.print(f"[red]edgetb up:[/red] {', '.join(dead)} exited; stopping the cluster")
                for name in dead:
                    for line in list(cluster.processes[name].output)[-15:]:
                        console.print(f"  {name}: {line}", markup=False, highlight=False)
                code = 1
                break
    finally:
        codes = cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if codes:
        console.print("stopped: " + ", ".join(f"{name} exit {rc}" for name, rc in codes.items()), highlight=False)
    raise typer.Exit(code)


app.command("profile")(cli_profiles.profile)
app.command("report")(cli_profiles.report)
app.command("scale-profile")(cli_profiles.scale)
app.command("fidelity")(cli_profiles.fidelity)
app.command("train")(cli_train.train)
app.command("select-policy")(cli_train.select_policy)

if __name__ == "__main__":
    app()
