"""One ``edgetb bench`` run, from a target address to the report: open the target (checks and
loads the model), measure the idle baseline, warm up, run the scenario, build the report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.harness.report import build_report
from orchestrator.harness.runner import BenchConfig, Progress, run_queries
from orchestrator.harness.targets import open_target

#: Labels drawn from 0..DEFAULT_NUM_CLASSES-1 when neither the user nor the target says otherwise.
DEFAULT_NUM_CLASSES = 10


def resolve_num_classes(wanted: int | None, reported: int | None) -> tuple[int, str]:
    """The class count labels are drawn from, and where it came from."""
    if wanted is not None:
        return wanted, "--num-classes"
    if reported is not None:
        return reported, "reported by the target"
    return DEFAULT_NUM_CLASSES, f"default {DEFAULT_NUM_CLASSES}: the target does not report a class count"


def run_bench(
    config: BenchConfig,
    address: str,
    protocol: str,
    on_progress: Progress | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one benchmark and return the ``bench.json`` document.

    Args:
        config: scenario, model, limits.
        address: HOST:PORT of the target.
        protocol: ``edgeagent`` or ``kserve``.
        on_progress: called with (issued, finished, elapsed_s) while the scenario runs.
        on_phase: called with a short sentence when a phase starts.

    Raises:
        BenchError: unreachable target, wrong protocol, unknown model, failing warm-up.
        ValueError: unknown protocol.
    """
    phase = on_phase or (lambda text: None)
    with open_target(protocol, address, config.timeout_s, config.connect_timeout_s) as target:
        phase(f"connecting to {address} ({protocol}), checking model {config.model}")
        facts = target.open(config.model)
        num_classes, note = resolve_num_classes(config.num_classes, facts.num_classes)
        if config.idle_s > 0:
            phase(f"measuring idle power for {config.idle_s:g} s")
        idle = target.idle_baseline(config.idle_s)
        phase(f"running {config.scenario}")
        run = run_queries(config, target, num_classes, on_progress)
    return build_report(config, address, protocol, facts, idle, run, num_classes, note)
