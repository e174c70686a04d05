"""``edgetb profile`` and ``edgetb report``: measure model profiles, and draw them (registered in ``cli``)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"comma-separated integers expected, got {text!r}", param_hint=option) from None
    if not values:
        raise typer.BadParameter("at least one value is needed", param_hint=option)
    return values


def profile(
    target: Annotated[str, typer.Option(help="agent HOST:PORT")],
    model: Annotated[str, typer.Option(help="model name in the agent's repository")],
    device: Annotated[str, typer.Option(help="device profile name the agent runs on (profiles/devices/NAME.toml)")],
    steps: Annotated[str, typer.Option(help="comma-separated step counts")] = "1,2,4,8,16,32,64,128",
    batches: Annotated[str, typer.Option(help="comma-separated batch sizes (latency/energy); 1 is required")] = "1",
    per_class: Annotated[int, typer.Option(help="quality images per class at each batch-1 point (0: none)")] = 50,
    min_requests: Annotated[int, typer.Option(help="fewest requests per point")] = 30,
    max_requests: Annotated[int, typer.Option(help="most requests per point")] = 300,
    max_point_s: Annotated[float, typer.Option(help="most seconds per point")] = 60.0,
    seed: Annotated[int, typer.Option(help="first request seed")] = 0,
    out: Annotated[Path | None, typer.Option(help="profile file (default: profiles/models/M/profile-D.toml)")] = None,
) -> None:
    """Sweep a model on a live agent over steps and batch sizes; fit the curves; write the profile TOML."""
    from orchestrator.profiler import SweepConfig, run_profile
    from profiles.profile import profile_path

    try:
        cfg = SweepConfig(
            steps=_ints(steps, "--steps"), batches=_ints(batches, "--batches"), quality_per_class=per_class,
            min_requests=min_requests, max_requests=max_requests, max_point_s=max_point_s, seed=seed,
        )  # fmt: skip
        path = out or profile_path(model, device)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    command = "edgetb profile " + shlex.join([
        "--target", target, "--model", model, "--device", device, "--steps", steps, "--batches", batches,
        "--per-class", str(per_class), "--min-requests", str(min_requests), "--max-requests", str(max_requests),
        "--max-point-s", f"{max_point_s:g}", "--seed", str(seed),
    ])  # fmt: skip
    try:
        result = run_profile(target, model, device, cfg, command=command, progress=console.print)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    header = (
        f"Measured profile of {model} on {device} ({result.provenance.device_name}), written by edgetb profile.\n"
        "Latency: end to end at the client (gRPC included); compute: the agent's denoising time.\n"
        "Schema and units: profiles/profile.py. Energy is absent where the agent had no energy source."
    )
    result.write(path, header)
    lat = result.latency_fit(1)
    console.print(f"latency(s) = {lat.a * 1e3:.3f} ms + {lat.b * 1e3:.4f} ms/step * s   (R² {lat.r2:.4f})")
    for metric, table in result.fits.quality.items():
        console.print(f"{metric}: exp R² {table.r2_exp:.3f}, saturating R² {table.r2_saturating:.3f} -> {table.chosen}")
    invalid = [f"{p.steps}x{p.batch}" for p in result.points if not p.valid]
    if invalid:
        console.print(f"[yellow]points not valid (cap hit): {', '.join(invalid)}[/yellow]")
    console.print(f"wrote {path}")


def report(
    directory: Annotated[
        Path, typer.Argument(help="profiles folder (profile-*.toml under it), fidelity run or T2DRL training runs")
    ],
    out: Annotated[Path | None, typer.Option(help="where the figures go; default: DIR/figures")] = None,
) -> None:
    """Draw a folder's figures: profiles (quality, latency, energy vs steps), a fidelity run, or T2DRL runs
    (seed-averaged table and learning curves)."""
    from orchestrator.report_figures import draw_report

    try:
        written = draw_report(directory, out)
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for path in written:
        console.print(f"wrote {path}")


def scale(
    model: Annotated[str, typer.Option(help="model name")],
    source: Annotated[str, typer.Option("--from", help="device the profile was measured on")],
    target: Annotated[str, typer.Option("--to", help="device profile to estimate for (profiles/devices/NAME.toml)")],
    out: Annotated[Path | None, typer.Option(help="profile file (default: profiles/models/M/profile-TO.toml)")] = None,
) -> None:
    """Estimate a model's profile on another device by the devices' relative peak throughput (an ESTIMATE)."""
    from orchestrator.sim.estimate import estimate_profile
    from profiles.profile import ProfileError, profile_path

    try:
        estimate, ratio = estimate_profile(model, source, target)
        path = out or profile_path(model, target)
    except (ProfileError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    header = (
        f"ESTIMATE, not a measurement: {model} measured on {source}, scaled to {target} by peak FP32 throughput\n"
        f"(x{ratio:.3g}: per-step compute / {ratio:.3g}; fixed overhead and quality kept).\n"
        "Written by edgetb scale-profile."
    )
    estimate.write(path, header)
    console.print(f"wrote {path} (estimate: {target} / {source} throughput ratio {ratio:.3g})")


def fidelity(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/fidelity"),
    scenario: Annotated[str, typer.Option(help="shipped scenario name or scenario TOML file")] = "t2drl",
    policies: Annotated[str, typer.Option(help="comma-separated caching+allocation")] = "most-popular+fixed-steps",
    device: Annotated[
        str, typer.Option(help="device profile of the local agents (its model profiles drive the sim)")
    ] = ("x86-cpu"),
    slots: Annotated[int | None, typer.Option(help="slots per run; default: the scenario's")] = None,
    seed: Annotated[int | None, typer.Option(help="workload seed; default: the scenario's")] = None,
    sim_only: Annotated[bool, typer.Option("--sim-only", help="the simulator only (no live run, no gaps)")] = False,
    simulated: Annotated[bool, typer.Option("--simulated", help="live agents on the simulated DEVICE")] = False,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="edgetb train --env t2drl run folder of ddqn / d3pg / ddpg / sac / td3 for every policy; "
            "default: each learned policy's shipped run (profiles/policies/)"
        ),
    ] = None,
) -> None:
    """Run policies live (local cluster) and in the simulator on one seeded workload; print the gaps."""
    from pydantic import ValidationError

    from orchestrator.fidelity import FIGURES, GOAL, run_fidelity

    names = [p.strip() for p in policies.split(",") if p.strip()]
    try:
        result = run_fidelity(
            out, scenario=scenario, policies=names, device=device, slots=slots, seed=seed, live=not sim_only,
            simulated=simulated, checkpoint=checkpoint, log=console.print,
        )  # fmt: skip
    except (ValueError, ValidationError) as exc:
        console.print(f"[red]edgetb fidelity: {exc}[/red]")
        raise typer.Exit(1) from exc
    for name, entry in result["policies"].items():  # type: ignore[union-attr]
        console.print(f"[bold]{name}[/bold]")
        for figure in FIGURES:
            live, sim = entry.get("live", {}).get(figure), entry["sim"].get(figure)
            g = entry.get("gap", {}).get(figure)
            gap_text = "n/a (unavailable)" if g is None else f"{g:+.1%}" + ("" if abs(g) <= GOAL else "  > goal")
            console.print(f"  {figure:<22} live {_fmt(live):>10}  sim {_fmt(sim):>10}  gap {gap_text}")
    console.print(f"wrote {out / 'fidelity.json'}")


def _fmt(value: object) -> str:
    return "unavailable" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
