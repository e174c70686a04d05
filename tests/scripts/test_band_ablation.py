"""scripts/band_ablation.py on a tiny band-prior run: the three replays of its pair, and runs it refuses."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from band_ablation import ablate, critic_view  # noqa: E402

from orchestrator.algos import d3pg  # noqa: E402
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
    # the run's critic on the replayed requests: without the rule prior, 0 is no rule and is not compared
    critic = row["critic"]
    assert set(critic) == {"q_mean", "band_entry_0"} and 0 <= critic["band_entry_0"]["prefers_learned"] <= 1
    assert critic["band_entry_0"]["q_gain_mean"] != 0
    residual = tmp_path / "residual"
    priors = {"band_prior": True, "rule_prior": True}
    train_t2drl("t2drl", residual, seed=3, time_budget_s=120, overrides={**TINY, **priors})
    critic = ablate(residual, residual)["critic"]
    assert set(critic) == {"q_mean", "band_entry_0", "zero"}
    # critic_view against the critic by hand, on made-up observations and actions
    agent = d3pg.D3PG.load(residual / "allocation.pt")
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (20, agent.obs_dim)).astype(np.float32)
    actions = rng.uniform(-1, 1, (20, agent.act_dim)).astype(np.float32)
    view = critic_view(residual, "d3pg", obs, actions, zero=True)

    def q(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.min(*agent.critic(torch.as_tensor(obs), torch.as_tensor(a))).numpy()

    band_zero = actions.copy()
    band_zero[:, -1] = 0.0
    zero_gap, band_gap = q(actions) - q(np.zeros_like(actions)), q(actions) - q(band_zero)
    assert view["zero"]["q_gain_mean"] == pytest.approx(zero_gap.mean(), rel=1e-5, abs=1e-7)
    assert view["zero"]["prefers_learned"] == pytest.approx((zero_gap > 0).mean())
    assert view["band_entry_0"]["q_gain_mean"] == pytest.approx(band_gap.mean(), rel=1e-5, abs=1e-7)
    assert view["q_mean"] == pytest.approx(q(actions).mean(), rel=1e-5)
    assert critic_view(residual, "sac", obs, actions, zero=True) is None
    plain = tmp_path / "plain"
    train_t2drl("ddqn+ddpg", plain, seed=3, time_budget_s=120, overrides=TINY)
    with pytest.raises(SystemExit, match="without the band prior"):
        ablate(plain, plain)
    with pytest.raises(SystemExit, match=r"^run: .* is not an `edgetb train --env t2drl` run folder"):
        ablate(tmp_path, tmp_path)  # no result.json
