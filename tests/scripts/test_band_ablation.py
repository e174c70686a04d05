"""scripts/band_ablation.py on a tiny band-prior run: the three replays of its pair, and runs it refuses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from band_ablation import ablate  # noqa: E402

from orchestrator.envs.t2drl import SimBackend  # noqa: E402
from orchestrator.policies import build_policies  # noqa: E402
from orchestrator.t2drl import evaluate, train_t2drl  # noqa: E402

TINY = {
    "requests": 300, "caching_requests": 100, "eval_episodes": 1, "eval_slots": 30,
    "allocation": {"learning_starts": 100, "batch_size": 32, "hidden": [16, 16], "critic_hidden": [16, 16]},
    "caching": {"learning_starts": 4, "batch_size": 8, "hidden": [16, 16]},
}  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_ablation_replays_the_pair_its_band_entry_at_zero_and_its_ddqn_with_the_rule(tmp_path) -> None:
    run = tmp_path / "bp"
    result = train_t2drl("ddqn+ddpg", run, seed=3, time_budget_s=120, overrides={**TINY, "band_prior": True})
    row = ablate(run, run)  # raises if the learned pair does not replay its recorded score
    assert row["learned"]["utility"] == pytest.approx(result["policies"]["ddqn+ddpg"]["utility"])
    backend = SimBackend.from_scenario("t2drl", "x86-cpu")
    rule = build_policies("ddqn", "sqrt-band", checkpoint=str(run))
    expected = evaluate(backend, {"p": rule}, result["eval_seeds"], TINY["eval_slots"])["p"]["utility"]
    assert row["ddqn+sqrt-band"]["utility"] == pytest.approx(expected)
    assert row["band_entry_0"]["utility"] != row["learned"]["utility"]  # the actor's band entries are not all 0
    assert -1 <= row["band_entry"]["p10"] <= row["band_entry"]["p90"] <= 1 and row["band_entry"]["sd"] > 0
    plain = tmp_path / "plain"
    train_t2drl("ddqn+ddpg", plain, seed=3, time_budget_s=120, overrides=TINY)
    with pytest.raises(SystemExit, match="without the band prior"):
        ablate(plain, plain)
