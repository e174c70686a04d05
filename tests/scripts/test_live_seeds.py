"""scripts/live_seeds.py: fidelity runs gathered by workload seed, the per-seed gains, and trees it refuses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from live_seeds import summarize  # noqa: E402


def summary(utility: float, hit_ratio: float = 0.5, failed: int = 0) -> dict:
    return {"requests": 100, "failed_requests": failed, "utility": utility, "hit_ratio": hit_ratio,
            "mean_latency_s": 0.4, "mean_quality": 0.95, "mean_downlink_s": 0.3}  # fmt: skip


def write_run(folder: Path, seed: int, policies: dict[str, tuple[float, float]], scenario: str = "t2drl") -> None:
    """One fidelity.json: per policy (live utility, sim utility)."""
    folder.mkdir(parents=True)
    entries = {name: {"live": summary(live), "sim": summary(sim)} for name, (live, sim) in policies.items()}
    (folder / "fidelity.json").write_text(json.dumps({"scenario": scenario, "seed": seed, "policies": entries}))


def test_gains_are_the_per_seed_ratios_of_the_runs_of_one_workload(tmp_path) -> None:
    live = {1: (0.60, 0.50), 2: (0.66, 0.60), 3: (0.55, 0.55)}  # seed: (reference, other)
    for seed, (ours, other) in live.items():
        write_run(tmp_path / f"seed{seed}" / "ours", seed, {"ours": (ours, ours + 0.02)})
        write_run(tmp_path / f"seed{seed}" / "other", seed, {"other": (other, other + 0.01)})
    write_run(tmp_path / "seed2" / "only-here", 2, {"extra": (0.9, 0.9)})  # not on every seed: left out

    result = summarize(tmp_path, "ours")

    assert result["workload_seeds"] == [1, 2, 3]
    assert list(result["policies"]) == ["ours", "other"]  # by live utility, best first
    assert result["left_out"] == ["extra"]
    ratios = [o / b - 1 for o, b in live.values()]  # 0.2, 0.1, 0.0
    live_gain, live_half = result["gains"]["other"]["live"]
    assert live_gain == pytest.approx(sum(ratios) / 3)
    assert live_half == pytest.approx(4.303 * 0.1 / 3**0.5, rel=1e-3)  # t(2) x sd 0.1 / sqrt 3
    sim_ratios = [(o + 0.02) / (b + 0.01) - 1 for o, b in live.values()]
    assert result["gains"]["other"]["sim"][0] == pytest.approx(sum(sim_ratios) / 3)
    assert result["policies"]["ours"]["live_utility"][0] == pytest.approx((0.60 + 0.66 + 0.55) / 3)
    assert result["policies"]["ours"]["per_seed_sim_utility"] == pytest.approx({1: 0.62, 2: 0.68, 3: 0.57})
    gaps = [0.02 / o for o, _ in live.values()]  # sim - live, relative to live
    assert result["policies"]["ours"]["sim_minus_live_utility"][0] == pytest.approx(sum(gaps) / 3)


def test_a_policy_twice_on_one_seed_or_a_missing_reference_is_refused(tmp_path) -> None:
    write_run(tmp_path / "a", 1, {"ours": (0.6, 0.6)})
    write_run(tmp_path / "b", 1, {"ours": (0.5, 0.5)})
    with pytest.raises(SystemExit, match="ours on workload seed 1 a second time"):
        summarize(tmp_path, "ours")
    other = tmp_path / "other"
    write_run(other / "a", 1, {"x": (0.6, 0.6)})
    with pytest.raises(SystemExit, match="--reference: ours"):
        summarize(other, "ours")
    with pytest.raises(SystemExit, match=r"no fidelity\.json"):
        summarize(tmp_path / "empty", "ours")


def test_runs_of_different_scenarios_are_refused(tmp_path) -> None:
    write_run(tmp_path / "a", 1, {"ours": (0.6, 0.6)})
    write_run(tmp_path / "b", 2, {"ours": (0.5, 0.5)}, scenario="t2drl-users18")
    with pytest.raises(
        SystemExit, match=r"a/fidelity\.json ran scenario t2drl, .*b/fidelity\.json scenario t2drl-users18"
    ):
        summarize(tmp_path, "ours")
