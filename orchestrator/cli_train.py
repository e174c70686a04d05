"""``edgetb train``: train a policy on one of the testbed's envs and score it.

``app`` holds one command, ``train``; the main CLI mounts it (``app.command("train")(train)``) and
``select_policy`` as ``edgetb select-policy``.

- ``--env waterfill --algo d3pg|ddpg|sac|td3 --channels N``: the sanity problem with a known optimum
  (:mod:`orchestrator.train_waterfill`);
- ``--env t2drl --scenario S --algo t2drl|ddqn+ddpg|random+d3pg|ddqn+sac|ddqn+td3|ddqn+sqrt-band --backend
  sim|live``: two-timescale caching and allocation on the simulator fitted from the measured profiles, or on a
  live local cluster in real time (:mod:`orchestrator.t2drl`, :mod:`orchestrator.envs.live`); the env is implied
  by a T2DRL ``--algo``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

T2DRL_ALGOS = ("t2drl", "ddqn+ddpg", "random+d3pg", "ddqn+sac", "ddqn+td3", "ddqn+sqrt-band")
"""``orchestrator.t2drl.ALGOS`` (kept here so the CLI starts without torch; a test checks they agree)"""

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()

ENVS = {"waterfill": ("d3pg", "ddpg", "sac", "td3"), "t2drl": tuple(T2DRL_ALGOS)}
"""env name -> the algorithms it can train"""
PLANNED = ("caching", "allocation")
BACKENDS = ("sim", "live")
AGENT_DEVICES = ("auto", "cpu")


@app.command()
def train(
    env: Annotated[str | None, typer.Option(help="environment: waterfill | t2drl (default: the algo's)")] = None,
    algo: Annotated[
        str,
        typer.Option(
            help="waterfill: d3pg|ddpg|sac|td3; t2drl: t2drl|ddqn+ddpg|random+d3pg|ddqn+sac|ddqn+td3|ddqn+sqrt-band"
        ),
    ] = "d3pg",
    scenario: Annotated[str, typer.Option(help="t2drl: shipped scenario name or scenario TOML")] = "t2drl",
    device: Annotated[str, typer.Option(help="t2drl: device whose model profiles drive the simulator")] = "x86-cpu",
    backend: Annotated[
        str, typer.Option(help="t2drl: sim, or live (a local cluster in OUT/live-cluster, real time: size --config)")
    ] = "sim",
    agent_device: Annotated[str, typer.Option(help="t2drl --backend live: the agents' device, auto | cpu")] = "auto",
    slot_s: Annotated[float | None, typer.Option(help="t2drl --backend live: slot length, s")] = None,
    channels: Annotated[int, typer.Option(help="waterfill: number of channels N")] = 10,
    seed: Annotated[int, typer.Option(help="training seed")] = 0,
    out: Annotated[Path, typer.Option(help="output folder (result.json, curve, checkpoint)")] = Path("runs/train"),
    time_budget_s: Annotated[float, typer.Option(help="training wall-time budget, s")] = 600.0,
    steps: Annotated[int | None, typer.Option(help="environment steps at most (default: the algorithm's)")] = None,
    config: Annotated[str, typer.Option(help="JSON object of Config overrides, e.g. '{\"batch_size\": 128}'")] = "",
    threads: Annotated[int, typer.Option(help="torch threads")] = 1,
) -> None:
    """Train ALGO on ENV under a time budget, then report the held-out score and write the results to OUT."""
    if env is None:
        if not any(algo in algos for algos in ENVS.values()):
            known = "; ".join(f"{name}: {', '.join(algos)}" for name, algos in ENVS.items())
            console.print(f"[red]edgetb train: --algo {algo!r} trains on no env; choose from {known}[/red]")
            raise typer.Exit(2)
        env = "t2drl" if algo in ENVS["t2drl"] else "waterfill"
    if env not in ENVS:
        later = f" ({env} is planned but not available yet)" if env in PLANNED else ""
        console.print(f"[red]edgetb train: --env {env!r} is not available{later}; choose from: {', '.join(ENVS)}[/red]")
        raise typer.Exit(2)
    if algo not in ENVS[env]:
        choices = ", ".join(ENVS[env])
        console.print(f"[red]edgetb train: --algo {algo!r} does not train on {env}; choose from: {choices}[/red]")
        raise typer.Exit(2)
    for name, value, low in (("--channels", channels, 1), ("--threads", threads, 1), ("--steps", steps or 1, 1)):
        if value < low:
            raise typer.BadParameter(f"{name}: {value} must be >= {low}")
    if time_budget_s <= 0:
        raise typer.BadParameter(f"--time-budget-s: {time_budget_s} must be > 0")
    try:
        overrides = json.loads(config) if config else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--config: not JSON ({exc})") from exc
    if not isinstance(overrides, dict):
        raise typer.BadParameter("--config: must be a JSON object")

    if env == "t2drl":
        _train_t2drl(
            algo, scenario, device, backend, seed, out, time_budget_s, steps, overrides, threads, agent_device, slot_s
        )
        return
    from orchestrator.train_waterfill import train_waterfill

    console.print(f"training {algo} on {env} (N = {channels}, seed {seed}) for up to {time_budget_s:g} s ...")
    try:
        result = train_waterfill(
            algo, channels, seed, out, time_budget_s=time_budget_s, steps=steps, overrides=overrides,
            threads=threads, log=lambda line: console.print(f"[dim]{line}[/dim]"),
        )  # fmt: skip
    except (ValueError, ImportError) as exc:
        console.print(f"[red]edgetb train: {exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(
        f"{algo}: optimality ratio {result['optimality_ratio']:.4f} on {result['eval_draws']} held-out draws "
        f"(uniform power {result['uniform_ratio']:.4f}); {result['train_steps']} steps, {result['updates']} updates "
        f"in {result['train_wall_s']:.0f} s; act p99 {result['act_latency_ms']['p99']:.2f} ms. "
        f"Written: {out}/result.json"
    )


def _train_t2drl(
    algo: str, scenario: str, device: str, backend: str, seed: int, out: Path, time_budget_s: float,
    steps: int | None, overrides: dict, threads: int, agent_device: str, slot_s: float | None,
) -> None:  # fmt: skip
    if backend not in BACKENDS:
        console.print(f"[red]edgetb train: --backend {backend!r} is not one of {', '.join(BACKENDS)}[/red]")
        raise typer.Exit(2)
    if agent_device not in AGENT_DEVICES:
        console.print(f"[red]edgetb train: --agent-device {agent_device!r} is not one of auto, cpu[/red]")
        raise typer.Exit(2)
    if slot_s is not None and not slot_s > 0:
        raise typer.BadParameter(f"--slot-s: {slot_s} must be > 0")
    from orchestrator.cluster import ClusterError
    from orchestrator.t2drl import train_t2drl
    from profiles.scenario import ScenarioError

    if steps is not None:
        overrides = {**overrides, "requests": steps}
    where = f"sim, {device} profiles" if backend == "sim" else f"live local cluster, {agent_device} agents"
    console.print(f"training {algo} on {scenario} ({where}, seed {seed}) for up to {time_budget_s:g} s ...")
    try:
        result = train_t2drl(
            algo, out, scenario=scenario, device=device, seed=seed, time_budget_s=time_budget_s, overrides=overrides,
            threads=threads, log=lambda line: console.print(f"[dim]{line}[/dim]"), backend=backend,
            agent_device=agent_device, slot_s=slot_s,
        )  # fmt: skip
    except (ValueError, ScenarioError, OSError, ClusterError) as exc:
        console.print(f"[red]edgetb train: {exc}[/red]")
        raise typer.Exit(1) from exc
    how = "simulated" if backend == "sim" else "live"
    table = Table(title=f"held-out workloads: {result['eval_episodes']} x {result['eval_slots']} slots ({how})")
    for column in ("policy", "utility", "hit ratio", "mean latency (ms)", "mean quality"):
        table.add_column(column)
    for name, summary in result["policies"].items():
        latency = summary["mean_latency_s"]
        table.add_row(
            name, f"{summary['utility']:.4f}", f"{summary['hit_ratio']:.3f}",
            "n/a" if latency is None else f"{latency * 1e3:.1f}",
            "n/a" if summary["mean_quality"] is None else f"{summary['mean_quality']:.3f}",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"{algo}: {result['train_requests']} requests, {result['train_frames']} frames in "
        f"{result['train_wall_s']:.0f} s. Written: {out}/result.json"
    )


def select_policy(
    runs: Annotated[list[Path], typer.Argument(help="`edgetb train --env t2drl` output folders of one algo")],
    out: Annotated[Path, typer.Option(help="folder the selected run is copied to")] = Path("runs/selected"),
    episodes: Annotated[int, typer.Option(help="validation workloads")] = 5,
    slots: Annotated[int, typer.Option(help="slots per validation workload")] = 300,
) -> None:
    """Copy the run whose learned policies score best on validation workloads (simulator) to OUT."""
    from orchestrator.t2drl_select import select_policy as select

    console.print(f"scoring {len(runs)} runs on {episodes} validation workloads of {slots} slots ...")
    try:
        selection = select(runs, out, episodes, slots, log=console.print)
    except (ValueError, OSError) as exc:
        console.print(f"[red]edgetb select-policy: {exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"selected {selection['selected']}. Written: {out}/selection.json")


if __name__ == "__main__":
    app()
