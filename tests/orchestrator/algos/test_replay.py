"""The shared plumbing: fixed-capacity replay, target updates, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestrator.algos.replay import ReplayBuffer, mlp, seed_everything, soft_update


def test_replay_keeps_the_newest_transitions_up_to_its_capacity() -> None:
    buffer = ReplayBuffer(obs_dim=2, act_dim=1, capacity=4, seed=0)
    for i in range(7):
        buffer.add([i, i], [i], float(i), [i + 1, i + 1], done=i % 2 == 0)
    assert len(buffer) == 4 and buffer.obs.shape == (4, 2)
    assert sorted(buffer.rewards.tolist()) == [3.0, 4.0, 5.0, 6.0]  # 0, 1, 2 were overwritten
    batch = buffer.sample(256)
    assert batch.obs.shape == (256, 2) and batch.actions.shape == (256, 1) and batch.rewards.shape == (256,)
    assert batch.obs.dtype == torch.float32 and batch.next_masks is None
    assert set(batch.rewards.tolist()) == {3.0, 4.0, 5.0, 6.0}
    np.testing.assert_array_equal(batch.next_obs[:, 0], batch.obs[:, 0] + 1)
    np.testing.assert_array_equal(batch.dones, (batch.rewards % 2 == 0).float())


def test_discrete_replay_stores_integer_actions_and_next_masks() -> None:
    buffer = ReplayBuffer(obs_dim=1, act_dim=0, capacity=8, n_actions=3)
    buffer.add([0.0], 2, 1.0, [1.0], False, next_mask=[True, False, True])
    buffer.add([1.0], 1, 0.0, [2.0], True)  # no mask: all valid
    batch = buffer.sample(32)
    assert batch.actions.dtype == torch.int64 and batch.actions.shape == (32,)
    for action, mask in zip(batch.actions.tolist(), batch.next_masks.tolist(), strict=True):
        assert mask == ([True, False, True] if action == 2 else [True, True, True])
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(1, 1, 0)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(1, 1, 2).sample(1)


def test_soft_update_moves_the_target_by_tau_and_tau_one_copies() -> None:
    seed_everything(0)
    source, target = mlp(3, (4,), 2), mlp(3, (4,), 2)
    before = [p.clone() for p in target.parameters()]
    soft_update(target, source, 0.25)
    for t, b, s in zip(target.parameters(), before, source.parameters(), strict=True):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * s)
    soft_update(target, source, 1.0)
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        torch.testing.assert_close(t, s)


def test_seed_everything_makes_torch_and_numpy_reproducible() -> None:
    seed_everything(7)
    first = (torch.rand(3), np.random.rand(3))
    seed_everything(7)
    torch.testing.assert_close(torch.rand(3), first[0])
    np.testing.assert_array_equal(np.random.rand(3), first[1])
