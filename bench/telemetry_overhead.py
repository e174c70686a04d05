"""CPU overhead of the telemetry sampler with the real `cpu` device of this machine.

Measures, side by side in one run, over the same wall-clock window length:

* process CPU time with the sampler off (baseline: the main thread just sleeps),
* process CPU time with the sampler on at 10 Hz and at 100 Hz,
* the sampler thread's own CPU time (`time.thread_time` inside the thread),

and prints each as a percentage of one core against the goals (<= 1 % at 10 Hz, <= 5 % at 100 Hz),
plus the achieved sample period. Run: `python bench/telemetry_overhead.py [--seconds 5]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass

from node_agent.devices.cpu import CpuDevice
from node_agent.telemetry.log import TelemetryLog
from node_agent.telemetry.sampler import TelemetrySampler

GOALS_PCT = {10.0: 1.0, 100.0: 5.0}


@dataclass
class Run:
    """One measured window."""

    hz: float | None
    wall_s: float
    process_cpu_s: float
    thread_cpu_s: float = 0.0
    samples: int = 0
    errors: int = 0
    overruns: int = 0
    mean_period_s: float | None = None
    std_period_s: float | None = None


def measure(hz: float | None, seconds: float) -> Run:
    """Process CPU time over `seconds` of wall time with a sampler at `hz` (None: no sampler)."""
    sampler = None
    if hz is not None:
        sampler = TelemetrySampler(CpuDevice(), hz, TelemetryLog(capacity=10_000))
    cpu0_s, t0_s = time.process_time(), time.monotonic()
    if sampler is not None:
        sampler.start()
    time.sleep(seconds)
    if sampler is not None:
        sampler.stop()
    run = Run(hz=hz, wall_s=time.monotonic() - t0_s, process_cpu_s=time.process_time() - cpu0_s)
    if sampler is not None:
        st = sampler.stats()
        run.thread_cpu_s, run.samples, run.errors, run.overruns = st.thread_cpu_s, st.samples, st.errors, st.overruns
        run.mean_period_s, run.std_period_s = st.mean_period_s, st.std_period_s
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wall time per window, s")
    args = parser.parse_args()

    device = CpuDevice()
    info = device.info()
    print(f"host: {info.name}; {os.cpu_count()} logical CPUs; Python {platform.python_version()}")
    print(f"device sources: { {k: str(v) for k, v in info.sources.items()} }")
    for metric, why in info.unavailable.items():
        print(f"  {metric} unavailable: {why}")
    t0_s = time.perf_counter()
    n = 200
    for _ in range(n):
        device.read()
    print(f"one CpuDevice.read(): {(time.perf_counter() - t0_s) / n * 1e6:.0f} µs wall (mean of {n})")

    baseline = measure(None, args.seconds)
    base_pct = 100.0 * baseline.process_cpu_s / baseline.wall_s
    print(f"\nbaseline, sampler off: process CPU {base_pct:.3f} % of one core over {baseline.wall_s:.2f} s\n")
    header = (
        f"{'rate':>6} | {'goal':>6} | {'thread CPU':>10} | {'ratio':>6} | {'proc on-off':>11} | "
        f"{'period mean ± std (ms)':>24} | {'samples':>7} | {'overruns':>8} | verdict"
    )
    print(header)
    print("-" * len(header))
    for hz, goal_pct in GOALS_PCT.items():
        run = measure(hz, args.seconds)
        thread_pct = 100.0 * run.thread_cpu_s / run.wall_s
        delta_pct = 100.0 * run.process_cpu_s / run.wall_s - base_pct
        period = (
            f"{run.mean_period_s * 1e3:8.3f} ± {run.std_period_s * 1e3:6.3f} (req {1e3 / hz:g})"
            if run.mean_period_s is not None and run.std_period_s is not None
            else "n/a"
        )
        verdict = "meets goal" if max(thread_pct, delta_pct) <= goal_pct else "MISSES goal"
        print(
            f"{hz:>4g}Hz | {goal_pct:>5.1f}% | {thread_pct:>9.3f}% | {thread_pct / goal_pct:>6.3f} | "
            f"{delta_pct:>10.3f}% | {period:>24} | {run.samples:>7} | {run.overruns:>8} | {verdict}"
        )
    print(
        "\nthread CPU = sampler thread's time.thread_time / wall; ratio = thread CPU / goal;"
        "\nproc on-off = process CPU % with the sampler on minus the sampler-off baseline (same window length)."
    )


if __name__ == "__main__":
    main()
