"""The node-agent demo: a local agent generates digits with each shipped model at several step
counts; the table shows measured latency, energy (or why it is unavailable) and quality.

Quality is scored here, on the client side, by the evaluator in ``profiles/evaluator/digits``:
accuracy of the evaluator on the requested class, and the Fréchet distance between the evaluator's
features of the generated images and of held-out real digits.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from orchestrator.client import AgentClient
from orchestrator.figures import sample_grid
from orchestrator.local import local_agent
from profiles.quality import Evaluator

REPO = Path(__file__).resolve().parent.parent
DEFAULT_STEPS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class DemoRow:
    """One (model, steps) point of the demo."""

    model: str
    steps: int
    images: int
    latency_s_p50: float
    compute_time_s: float  # the agent's compute per batch of 10, median over the batches
    step_time_ms: float
    energy_j_per_image: float | None
    energy_source: str
    accuracy: float
    frechet_distance: float


def run_point(
    client: AgentClient, evaluator: Evaluator, model: str, steps: int, per_class: int, seed: int
) -> tuple[DemoRow, np.ndarray]:
    """Generate ``per_class`` images of every class, in batches of 10 (one per class).

    Returns the measured point and the first batch (digits 0..9) for the sample figure.
    """
    images, labels, latencies, computes, energies, step_times = [], [], [], [], [], []
    source = "unavailable"
    for i in range(per_class):
        batch = list(range(10))
        started = time.perf_counter()
        result = client.generate(model, batch, steps=steps, seed=seed + i)
        latencies.append(time.perf_counter() - started)
        computes.append(result.compute_time_s)
        step_times.extend(result.step_times_s)
        source = result.energy_source
        energies.append(result.energy_j)
        images.append(result.images)
        labels.extend(batch)
    score = evaluator.score(np.concatenate(images), np.asarray(labels))
    measured = [e for e in energies if e is not None]
    n_images = len(labels)
    row = DemoRow(
        model=model,
        steps=steps,
        images=n_images,
        latency_s_p50=float(np.median(latencies)),
        compute_time_s=float(np.median(computes)),  # one batch slowed by a busy box does not move it
        step_time_ms=1e3 * float(np.mean(step_times)) if step_times else 0.0,
        energy_j_per_image=sum(measured) / n_images if len(measured) == len(energies) else None,
        energy_source=source,
        accuracy=score.accuracy,
        frechet_distance=score.frechet_distance,
    )
    return row, images[0]


def run_demo(
    out: Path,
    models_dir: Path = REPO / "profiles/models",
    steps: tuple[int, ...] = DEFAULT_STEPS,
    per_class: int = 10,
    seed: int = 0,
    console=None,
) -> dict:
    """Start an agent, sweep steps for every shipped model, write ``out/demo.json`` (and
    ``out/samples.png`` when matplotlib is installed), return the report."""
    from rich.progress import Progress

    evaluator = Evaluator.from_dir(REPO / "profiles/evaluator/digits")
    floor = evaluator.real_floor()
    out.mkdir(parents=True, exist_ok=True)
    rows: list[DemoRow] = []
    samples: dict[str, np.ndarray] = {}
    with local_agent("demo-edge", models_dir) as agent, AgentClient(agent.address) as client:
        client.wait_ready()
        info = client.info()
        models = [m for m in client.models() if not m.error]
        loads = {}
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("generating", total=len(models) * len(steps))
            for model in models:
                loads[model.name] = asdict(client.load(model.name))
                # The agent warms up at load with a batch of 2; the first batch of 10 still pays for
                # new buffer shapes, which would be charged to whichever step count comes first.
                client.generate(model.name, list(range(10)), steps=1, seed=seed)  # warm-up, not counted
                for s in steps:
                    row, first_batch = run_point(client, evaluator, model.name, s, per_class, seed)
                    rows.append(row)
                    samples[f"{model.name}, {s} steps"] = first_batch
                    progress.advance(task)
                client.unload(model.name)
        report = {
            "agent": {
                "name": info.name,
                "device": f"{info.device_kind}: {info.device_name}",
                "power_source": info.power_source,
                "execution_providers": list(info.execution_providers),
            },
            "real_data_floor": {"accuracy": floor.accuracy, "frechet_distance": floor.frechet_distance},
            "loads": loads,
            "points": [asdict(r) for r in rows],
        }
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    if importlib.util.find_spec("matplotlib") is not None:
        sample_grid(samples, out / "samples.png")
    return report
