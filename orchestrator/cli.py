"""``edgetb``: the orchestrator and harness command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for demo.json")] = Path("runs/demo"),
    steps: Annotated[str, typer.Option(help="comma-separated step counts")] = "1,2,4,8,16,32,64",
    per_class: Annotated[int, typer.Option(help="images per class and point")] = 10,
    seed: Annotated[int, typer.Option(help="seed of the first batch")] = 0,
) -> None:
    """Start a local agent and show latency, energy and quality per steps for every shipped model."""
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
    table = Table("model", "steps", "p50 ms", "ms/step", "J/image", "accuracy", "FD", title="edgetb demo")
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


if __name__ == "__main__":
    app()
