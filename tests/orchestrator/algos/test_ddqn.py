"""DDQN: double-Q target, masks, learning a small corridor, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestrator.algos import ddqn
from orchestrator.algos.replay import Batch

SMALL = dict(hidden=(32,), batch_size=32, lr=2e-3, learning_starts=200, epsilon_decay_steps=1_500, gamma=0.9)


def test_the_online_net_picks_and_the_target_net_evaluates_the_next_action() -> None:
    agent = ddqn.DDQN(2, 3, ddqn.Config(gamma=1.0, lr=0.0))
    with torch.no_grad():
        for net, bias in ((agent.q, [5.0, 1.0, 0.0]), (agent.q_target, [1.0, 9.0, 7.0])):
            net.net[-1].weight.zero_()
            net.net[-1].bias.copy_(torch.tensor(bias))
    batch = Batch(torch.zeros(2, 2), torch.tensor([0, 0]), torch.zeros(2), torch.zeros(2, 2), torch.zeros(2),
                  next_masks=torch.tensor([[True, True, True], [False, True, True]]))  # fmt: skip
    target = agent.td_target(batch)
    # online argmax: action 0 (masked out in the second row: action 1); the target net values them 1 and 9
    np.testing.assert_allclose(target.numpy(), [1.0, 9.0])


def test_act_never_picks_a_masked_action_greedy_or_exploring() -> None:
    agent = ddqn.DDQN(3, 4, ddqn.Config(seed=1))
    obs = np.random.default_rng(0).random((64, 3)).astype(np.float32)
    mask = np.zeros((64, 4), bool)
    mask[:, 2] = True
    mask[::2, 3] = True
    for epsilon in (0.0, 1.0):
        actions = agent.act(obs, mask, epsilon=epsilon)
        assert actions.shape == (64,) and mask[np.arange(64), actions].all()
    explored = agent.act(obs, mask, epsilon=1.0)
    assert set(explored[::2]) == {2, 3}  # exploration draws among the valid actions only
    assert isinstance(agent.act(obs[0], mask[0]), int)
    with pytest.raises(ValueError, match="valid action"):
        agent.act(obs[0], np.zeros(4, bool))


def test_epsilon_decays_linearly() -> None:
    agent = ddqn.DDQN(1, 2, ddqn.Config(epsilon_start=1.0, epsilon_end=0.1, epsilon_decay_steps=100))
    assert [agent.epsilon(s) for s in (0, 50, 100, 1_000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


@pytest.mark.parametrize("tau", [1.0, 0.05])
def test_ddqn_learns_to_walk_the_corridor_with_masks(chain_env, tau: float) -> None:
    env = chain_env()
    cfg = ddqn.Config(seed=0, total_steps=2_500, tau=tau, target_update_every=100, **SMALL)
    agent, history = ddqn.train(cfg, env, callback_every=500)
    states = np.eye(5, dtype=np.float32)[:4]
    masks = np.array([[False, True, True]] + [[True, True, True]] * 3)
    assert agent.act(states, masks).tolist() == [1, 1, 1, 1]  # always "right"
    # Q(s, right) = the discounted return of walking right: 1 from the last state, -0.01 + 0.9 V(next) before it
    values = [1.0]
    for _ in range(3):
        values.insert(0, -0.01 + 0.9 * values[0])
    with torch.no_grad():
        q_right = agent.q(torch.from_numpy(states))[:, 1].numpy()
    np.testing.assert_allclose(q_right, values, atol=0.1)
    assert history[-1]["episode_return"] > max(0.9, history[0]["episode_return"] + 0.2)  # 4 steps: 0.97 at best
    assert agent.env_steps == 2_500 and agent.updates == 2_300


def test_checkpoint_round_trip(tmp_path, chain_env) -> None:
    agent, _ = ddqn.train(ddqn.Config(seed=3, total_steps=400, **SMALL), chain_env())
    agent.save(tmp_path / "q.pt")
    loaded = ddqn.DDQN.load(tmp_path / "q.pt")
    obs = np.random.default_rng(1).random((16, 5)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_array_equal(loaded.q(torch.from_numpy(obs)).numpy(), agent.q(torch.from_numpy(obs)).numpy())
    assert (loaded.act(obs) == agent.act(obs)).all()
    assert loaded.cfg == agent.cfg and loaded.updates == agent.updates == 200
