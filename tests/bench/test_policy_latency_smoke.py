"""Smoke test of ``bench/policy_latency.py`` with few calls: every row is measured and the verdict printed.

Correctness only (the rows, positive times, the shipped checkpoint loads); the 2 ms goal is not asserted.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "policy_latency.py"


def test_policy_latency_measures_every_decision(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("policy_latency", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(
        sys, "argv", ["policy_latency.py", "--calls", "30", "--t2drl", str(ROOT / "profiles/policies/t2drl")]
    )
    bench.main()
    out = capsys.readouterr().out
    rows = re.findall(r"^(.+?)\s+([0-9.]+|nan)\s+([0-9.]+|nan)$", out, flags=re.M)
    names = [name.strip() for name, _, _ in rows]
    assert [n for n in names if n.startswith("D3PG act, I = ")][-1] == "D3PG act, I = 10"
    assert {"DDPG act", "DDQN act (masked)", "allocate(): features + D3PG + amender"} <= set(names)
    assert all(float(p50) > 0 and float(p99) >= float(p50) for name, p50, p99 in rows if "not installed" not in name)
    assert "rows: trained " in out and re.search(r"D3PG at the default I = 5: p99 [0-9.]+ ms (meets|misses)", out)
