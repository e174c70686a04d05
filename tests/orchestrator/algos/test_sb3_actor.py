"""SAC and TD3 as the T2DRL trainer's actor (``sb3.Actor``): fed our batches, they learn; checkpoints round-trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestrator.algos.replay import Batch, ReplayBuffer

sb3 = pytest.importorskip("orchestrator.algos.sb3")
pytest.importorskip("stable_baselines3")

SMALL = dict(hidden=(32, 32), critic_hidden=(64, 64), batch_size=64, learning_rate=1e-3, gamma=0.0)


def _fill_and_train(actor, env, steps: int, rng: np.random.Generator) -> ReplayBuffer:
    """The trainer's loop in small: act (exploring), store a one-step transition, one update per step."""
    buffer = ReplayBuffer(2, 2, 10_000, seed=0)
    for i in range(steps):
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        action = rng.uniform(-1, 1, 2).astype(np.float32) if i < 100 else actor.act(obs)
        _, reward, *_ = env.step(action)
        buffer.add(obs, action, reward, obs, True)
        if i >= 100:
            actor.update(buffer.sample(actor.cfg.batch_size))
    return buffer


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_learns_a_one_step_problem_from_the_batches_it_is_handed(algo: str, target_env) -> None:
    env = target_env()
    obs = np.random.default_rng(1).uniform(-1, 1, (256, 2)).astype(np.float32)
    actor = sb3.Actor(2, 2, sb3.Config(algo=algo, seed=0, **SMALL))
    before = env.score(lambda o: actor.act(o, deterministic=True), obs)
    _fill_and_train(actor, env, 700, np.random.default_rng(0))
    after = env.score(lambda o: actor.act(o, deterministic=True), obs)
    # optimum 0; acting at random scores about -1.3
    assert after > -0.05, f"{algo}: mean reward {after:.4f} after 600 updates (untrained {before:.4f})"
    assert after > before + 0.3
    assert actor.updates == 600


def test_an_update_trains_on_exactly_the_batch_handed_over() -> None:
    actor = sb3.Actor(2, 1, sb3.Config(algo="td3", seed=0, hidden=(16,), batch_size=4, gamma=0.0, learning_rate=1e-2))
    obs = torch.zeros(4, 2)
    actions = torch.full((4, 1), 0.5)

    def q() -> float:
        with torch.no_grad():
            return float(actor.model.critic.q1_forward(obs[:1], actions[:1]))

    for reward in (3.0, -3.0):  # the critic moves toward the reward of the batch it was handed
        start = q()
        for _ in range(30):
            actor.update(Batch(obs, actions, torch.full((4,), reward), obs, torch.ones(4), None))
        assert (q() - start) * reward > 0
    with pytest.raises(RuntimeError, match="no batch"):
        actor.model.train(gradient_steps=1, batch_size=4)  # SB3 reaching for a batch nobody handed over


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_checkpoint_round_trips_and_exploration_is_noisy(algo: str, tmp_path, target_env) -> None:
    actor = sb3.Actor(2, 2, sb3.Config(algo=algo, seed=3, **SMALL))
    buffer = _fill_and_train(actor, target_env(), 160, np.random.default_rng(2))
    actor.env_steps = 160
    path = tmp_path / "allocation.pt"
    actor.save(path)
    restored = sb3.Actor.load(path)
    obs = np.random.default_rng(4).uniform(-1, 1, (32, 2)).astype(np.float32)
    np.testing.assert_allclose(restored.act(obs, deterministic=True), actor.act(obs, deterministic=True), atol=1e-6)
    assert restored.cfg == actor.cfg and (restored.updates, restored.env_steps) == (60, 160)
    if algo == "sac":  # the tuned entropy coefficient comes back too
        assert float(restored.model.log_ent_coef.detach()) == pytest.approx(float(actor.model.log_ent_coef.detach()))
        assert float(actor.model.log_ent_coef.detach()) != 0.0  # it moved from SB3's start, log(1)
    # training goes on from the checkpoint exactly as from the original (networks and optimisers restored)
    batch = buffer.sample(64)
    torch.manual_seed(0)
    actor.update(batch)
    torch.manual_seed(0)
    restored.update(batch)
    np.testing.assert_allclose(restored.act(obs, deterministic=True), actor.act(obs, deterministic=True), atol=1e-5)
    explored = actor.act(np.repeat(obs[:1], 64, axis=0))
    assert explored.std(axis=0).min() > 0.01 and np.all(np.abs(explored) <= 1)
    single = actor.act(obs[0], deterministic=True)
    assert single.shape == (2,) and single.dtype == np.float32


def test_bad_algo_is_named() -> None:
    with pytest.raises(ValueError, match="algo"):
        sb3.Actor(2, 2, sb3.Config(algo="ppo"))
