"""Online replay of live fine-tuning: one-step transitions, or chained from one request to the next."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np

from orchestrator.algos.replay import ReplayBuffer
from orchestrator.policies.drl import LOGGED_FAILURES, MAX_DUE_UPDATES, ChainedTuning, Tuning


class _Learner:
    """Counts updates; a batch size no buffer here reaches, so nothing trains."""

    def __init__(self) -> None:
        self.cfg = SimpleNamespace(batch_size=10_000)
        self.env_steps = 0
        self.updates = 0

    def update(self, batch) -> None:
        self.updates += 1


def _obs(i: int) -> np.ndarray:
    return np.full(3, float(i), np.float32)


def _stored(buffer: ReplayBuffer) -> list[tuple[float, float, float, bool]]:
    """(obs[0], reward, next_obs[0], done) of every stored transition, in order."""
    n = len(buffer)
    return [(float(buffer.obs[i][0]), float(buffer.rewards[i]), float(buffer.next_obs[i][0]), bool(buffer.dones[i]))
            for i in range(n)]  # fmt: skip


def test_one_step_tuning_stores_terminal_transitions() -> None:
    buffer = ReplayBuffer(3, 1, 100)
    tuning = Tuning(_Learner(), buffer)
    tuning.remember("a", _obs(1), np.zeros(1, np.float32))
    tuning.remember("b", _obs(2), np.zeros(1, np.float32))
    assert tuning.add("a", 0.5) and not tuning.add("a", 0.5)  # once
    assert _stored(buffer) == [(1.0, 0.5, 1.0, True)]


def test_chained_tuning_links_each_request_to_the_next_in_either_order() -> None:
    buffer = ReplayBuffer(3, 1, 100)
    tuning = ChainedTuning(_Learner(), buffer)
    act = np.zeros(1, np.float32)
    tuning.remember("a", _obs(1), act)
    assert tuning.add("a", 0.25)  # a's reward comes before the next decision: it waits
    assert len(buffer) == 0
    tuning.remember("b", _obs(2), act)  # ... and is stored with b's observation as its next
    tuning.remember("c", _obs(3), act)  # b's next is known before its reward
    assert tuning.add("b", 0.5)
    assert not tuning.add("zz", 1.0)  # not a decision of ours
    assert _stored(buffer) == [(1.0, 0.25, 2.0, False), (2.0, 0.5, 3.0, False)]
    assert tuning.rewards == 2


def test_a_retried_decision_replaces_the_first_and_still_leads_to_the_next_request() -> None:
    buffer = ReplayBuffer(3, 1, 100)
    tuning = ChainedTuning(_Learner(), buffer)
    tuning.remember("a", _obs(1), np.zeros(1, np.float32))
    tuning.remember("a", _obs(2), np.ones(1, np.float32))  # the router retried a on another agent
    assert tuning.add("a", 0.5) and len(buffer) == 0  # a's next request is still to come
    tuning.remember("b", _obs(3), np.zeros(1, np.float32))
    assert _stored(buffer) == [(2.0, 0.5, 3.0, False)] and buffer.actions[0] == 1.0


def test_chained_tuning_stays_bounded_when_rewards_never_come() -> None:
    buffer = ReplayBuffer(3, 1, 100)
    tuning = ChainedTuning(_Learner(), buffer, max_pending=5)
    for i in range(50):  # failed requests: decisions without rewards
        tuning.remember(i, _obs(i), np.zeros(1, np.float32))
    assert len(tuning.pending) == 5 and tuning.dropped == 45
    assert len(tuning._next) <= 5 and not tuning._rewards
    assert tuning.add(48, 1.0) and _stored(buffer) == [(48.0, 1.0, 49.0, False)]


class _SlowLearner(_Learner):
    """Trains from the first stored transition; each update waits until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(batch_size=1)
        self.go = threading.Event()
        self.started = threading.Event()
        self.threads: set[str] = set()

    def update(self, batch) -> None:
        self.started.set()
        self.threads.add(threading.current_thread().name)
        assert self.go.wait(10), "the test never let the update go"
        self.updates += 1


def test_background_tuning_takes_its_steps_off_the_callers_thread_and_owes_a_bounded_number() -> None:
    learner = _SlowLearner()
    tuning = Tuning(learner, ReplayBuffer(3, 1, 1_000), background=True)
    owed = MAX_DUE_UPDATES + 5
    for i in range(owed + 1):  # the first update starts and blocks; the rest are owed, up to the bound
        tuning.remember(i, _obs(i), np.zeros(1, np.float32))
        assert tuning.add(i, 0.5)  # returns while an update is under way: the caller never waits for one
        if i == 0:
            assert learner.started.wait(10)
    assert tuning.rewards == owed + 1 and learner.updates == 0
    assert tuning.skipped == owed - MAX_DUE_UPDATES  # beyond the bound: skipped and counted
    learner.go.set()
    tuning.close()  # takes the owed steps, then stops
    assert learner.updates == 1 + MAX_DUE_UPDATES and not tuning._worker.is_alive()
    assert learner.threads == {"fine-tuning"}
    tuning.remember("late", _obs(0), np.zeros(1, np.float32))
    assert tuning.add("late", 0.5) and tuning.skipped == owed - MAX_DUE_UPDATES + 1  # closed: no more steps


def test_inline_tuning_steps_in_add() -> None:
    learner = _SlowLearner()
    learner.go.set()
    tuning = Tuning(learner, ReplayBuffer(3, 1, 100))
    tuning.remember("a", _obs(1), np.zeros(1, np.float32))
    assert tuning.add("a", 0.5) and learner.updates == 1
    assert learner.threads == {threading.current_thread().name}
    tuning.close()  # nothing to stop


def test_background_tuning_counts_failed_steps_and_keeps_going(caplog) -> None:
    class Failing(_Learner):
        def __init__(self) -> None:
            super().__init__()
            self.cfg = SimpleNamespace(batch_size=1)

        def update(self, batch) -> None:
            self.updates += 1
            raise RuntimeError("a broken step")

    learner = Failing()
    tuning = Tuning(learner, ReplayBuffer(3, 1, 100), background=True)
    for i in range(10):
        tuning.remember(i, _obs(i), np.zeros(1, np.float32))
        assert tuning.add(i, 0.5)
    tuning.close()
    assert learner.updates == tuning.failed == 10 and not tuning._worker.is_alive()
    assert sum("a broken step" in r.getMessage() or r.exc_info is not None for r in caplog.records) == LOGGED_FAILURES
