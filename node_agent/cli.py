"""``edgetb-agent``: run a node agent, or show what it would detect."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from node_agent.config import AgentConfig, ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="agent TOML file; flags override it")]
NameOpt = Annotated[str | None, typer.Option(help="agent name")]
ListenOpt = Annotated[str | None, typer.Option(help="HOST:PORT to bind (loopback by default)")]
ModelsOpt = Annotated[Path | None, typer.Option(help="model repository folder")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto|cpu|nvidia|jetson|simulated")]
HzOpt = Annotated[float | None, typer.Option("--telemetry-hz", help="sampler rate, 1..100 Hz")]
SimOpt = Annotated[Path | None, typer.Option("--sim-profile", help="device profile for --device simulated")]


def _config(config: Path | None, **flags: object) -> AgentConfig:
    try:
        if config is not None:
            return AgentConfig.from_toml(config, **flags)
        return AgentConfig(**{k: v for k, v in flags.items() if v is not None})  # type: ignore[arg-type]
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def serve(
    config: ConfigOpt = None,
    name: NameOpt = None,
    listen: ListenOpt = None,
    models: ModelsOpt = None,
    device: DeviceOpt = None,
    telemetry_hz: HzOpt = None,
    sim_profile: SimOpt = None,
    queue_capacity: Annotated[int | None, typer.Option(help="queued requests per model")] = None,
    preload: Annotated[list[str] | None, typer.Option(help="model to load at start (repeatable)")] = None,
    emulated_delay_ms: Annotated[
        float | None,
        typer.Option(help="EMULATED WAN round-trip delay added to every generation response (cloud agent), ms"),
    ] = None,
    emulated_delay_jitter_ms: Annotated[
        float | None, typer.Option(help="standard deviation of that delay (normal, cut at 3 sd and 0), ms")
    ] = None,
    emulated_delay_seed: Annotated[int | None, typer.Option(help="seed of the emulated delay draws")] = None,
    sim_seed: Annotated[
        int | None,
        typer.Option(help="seed of the simulated device's modeled compute times (models with a profile-<device>.toml)"),
    ] = None,
    orchestrator: Annotated[
        str | None, typer.Option(help="orchestrator HOST:PORT to register with and heartbeat to")
    ] = None,
    heartbeat_s: Annotated[
        float | None, typer.Option("--heartbeat-s", help="heartbeat interval until the orchestrator assigns one, s")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug|info|warning")] = "info",
) -> None:
    """Serve the EdgeAgent and KServe v2 APIs until SIGTERM/SIGINT."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = _config(
        config,
        name=name,
        listen=listen,
        models=models,
        device=device,
        telemetry_hz=telemetry_hz,
        sim_profile=sim_profile,
        queue_capacity=queue_capacity,
        preload=tuple(preload) if preload else None,
        emulated_delay_ms=emulated_delay_ms,
        emulated_delay_jitter_ms=emulated_delay_jitter_ms,
        emulated_delay_seed=emulated_delay_seed,
        sim_seed=sim_seed,
        orchestrator=orchestrator,
        heartbeat_s=heartbeat_s,
    )
    from node_agent.server import serve as run

    asyncio.run(run(cfg))


@app.command()
def info(
    config: ConfigOpt = None,
    models: ModelsOpt = None,
    device: DeviceOpt = None,
    telemetry_hz: HzOpt = None,
    sim_profile: SimOpt = None,
    sample_s: Annotated[float, typer.Option(help="how long to run the sampler to measure its period")] = 1.0,
) -> None:
    """Print the detected device, its telemetry sources with measured sample periods, and the models."""
    cfg = _config(config, models=models, device=device, telemetry_hz=telemetry_hz, sim_profile=sim_profile)
    from node_agent.agent import Agent

    agent = Agent(cfg)
    agent.sampler.start()
    time.sleep(max(0.2, sample_s))  # run the sampler for a while to measure its real period
    status = agent.status()
    newest = agent.telemetry_log.latest()
    latest = newest.reading if newest is not None else None
    agent.close()

    dev = status.device
    console.print(f"[bold]device[/bold]  {dev.kind}: {dev.name}  memory {(dev.mem_total_bytes or 0) / 2**30:.1f} GiB")
    console.print(f"[bold]execution providers[/bold]  {', '.join(status.execution_providers)}")
    period = status.measured_sample_period_s
    console.print(
        f"[bold]sampler[/bold]  requested {cfg.telemetry_hz:g} Hz; measured period "
        + (f"{period * 1e3:.1f} ms" if period else "n/a")
    )
    table = Table("metric", "source", "native period", "latest value", "note")
    values = {
        "power": (latest.power_w, "W") if latest else None,
        "energy": (latest.energy_j, "J") if latest else None,
        "mem": (latest.mem_used_bytes / 2**30 if latest and latest.mem_used_bytes else None, "GiB used"),
        "util": (latest.util_pct, "%") if latest else None,
        "clock": (latest.clock_mhz, "MHz") if latest else None,
    }
    native = dev.native_update_period_s
    for metric, source in dev.sources.items():
        value = values.get(metric)
        shown = f"{value[0]:.3g} {value[1]}" if value and value[0] is not None else "-"
        table.add_row(
            metric,
            str(source),
            f"{native * 1e3:g} ms" if native else "-",
            shown,
            dev.unavailable.get(metric, ""),
        )
    console.print(table)
    models_table = Table("model", "kind", "classes", "T", "default steps", "status")
    for listing in agent.list_models():
        spec = listing.spec
        if spec is None:
            models_table.add_row(listing.name, "-", "-", "-", "-", f"[red]{listing.error}[/red]")
        else:
            models_table.add_row(
                spec.name,
                spec.kind,
                str(spec.num_classes),
                str(spec.schedule.num_train_timesteps),
                str(spec.default_steps),
                "ok",
            )
    console.print(models_table)


if __name__ == "__main__":
    app()
