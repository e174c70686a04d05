"""Smoke test of ``bench/orchestrator_scale.py`` at a tiny size: it runs end to end and measures.

Correctness only: every agent comes up, telemetry is ingested, decisions are timed and the table is
printed. The benchmark's speed goals are not asserted here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "orchestrator_scale.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("orchestrator_scale", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_run_measures_everything(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load()
    argv = ["--agents", "4", "--hosts", "1", "--seconds", "3", "--settle-s", "1", "--frame-slots", "2"]
    figures = bench.run(bench.parse_args(argv))
    assert figures.agents_up == 4
    assert figures.rows_per_s > 0
    assert figures.rows_expected_per_s == 40
    assert figures.daemon_rss_max_bytes > 0
    assert figures.allocation.n > 0  # Submits were allocated by the policy and timed
    assert figures.allocation.p50_s is not None and figures.allocation.p99_s is not None
    assert figures.frame_plan.n > 0  # frames of 2 slots: at least one plan in a 3 s window
    assert figures.submits_ok > 0
    assert figures.slots_missed >= 0
    assert figures.daemon_exit == 0

    assert bench.main(["--agents", "2", "--hosts", "1", "--seconds", "1", "--settle-s", "0", "--submit-rps", "0"]) == 0
    out = capsys.readouterr().out
    for needle in ("decision: frame plan", "decision: allocation", "missed slots", "daemon RSS (max)",
                   "telemetry rows/s ingested", "agent hosts CPU"):  # fmt: skip
        assert needle in out, needle
