"""Trained learners as policies: a DDQN (or any masked discrete agent) caches, a D3PG/DDPG actor allocates.

They implement the same ``CachingPolicy`` / ``AllocationPolicy`` interfaces as the heuristics and read
only the ``ClusterView`` (features: :mod:`orchestrator.envs.features`), so the policy loop of the live
daemon and the simulator (:func:`orchestrator.sim.cluster.simulate`) run them unchanged.

Live fine-tuning (``[policy] fine_tune = true``): the policies keep learning from what the live
cluster measures. The allocation policy remembers the observation and (exploring) action of each
request it placed; the policy loop hands back the request's utility (``learn``), which becomes a
transition in a bounded replay buffer (one-step for an actor trained with gamma 0, else leading to
the next request's observation, as in training), and the actor takes a gradient step every
``train_every`` rewards once a batch is there. The caching policy gets the mean utility of each
ended frame before it plans the next (``learn``) and stores the (plan, reward, next state)
transition for its DDQN the same way. ``save`` writes the tuned learners as a new run folder.

In the daemon the gradient steps run on a background thread (``Tuning(background=True)``): a D3PG
update takes ~11 ms on 2 cores, and taken inline it held up the daemon's event loop once per reward.
Storing a reward only takes the buffer's lock (the updater holds it while it draws a batch); decisions
and gradient steps take turns on the learner's lock, so a decision waits at most for the one step
under way. A step owed while ``MAX_DUE_UPDATES`` are already owed is skipped and counted.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from orchestrator.algos.replay import ReplayBuffer
from orchestrator.envs.features import (
    Layout,
    allocation_observation,
    cache_configs,
    caching_mask,
    caching_observation,
    decode_allocation,
)
from orchestrator.policies.base import Allocation, ClusterView, RequestInfo
from orchestrator.policies.sqrt_band import band_prior
from orchestrator.run_folder import read_run

TUNING_CAPACITY = 20_000
"""replay capacity of live fine-tuning, transitions"""
TUNING_EPSILON = 0.05
"""the DDQN's exploration probability while fine-tuning live"""
MAX_DUE_UPDATES = 64
"""gradient steps a background tuner may owe; one owed beyond them is skipped (counted in ``skipped``)"""
CLOSE_TIMEOUT_S = 30.0
"""how long ``Tuning.close`` waits for the background updater to finish the steps it owes"""
LOGGED_FAILURES = 3
"""failed background steps logged with their traceback; later ones are only counted (``failed``)"""

log = logging.getLogger(__name__)


class Tuning:
    """A loaded learner that keeps learning online: a bounded replay buffer and an update schedule.

    Args:
        learner: the DDQN, D3PG or DDPG agent (``update(batch)``, ``cfg.batch_size``).
        buffer: its replay buffer (bounded).
        train_every: rewards between updates.
        max_pending: decisions waiting for their reward at most (older ones are dropped and counted).
        background: take the gradient steps on a thread of their own (``close`` stops it) instead of in ``add``.
    """

    def __init__(
        self, learner, buffer: ReplayBuffer, train_every: int = 1, max_pending: int = 1_000, background: bool = False
    ) -> None:
        self.learner = learner
        self.buffer = buffer
        self.train_every = train_every
        self.max_pending = max_pending
        self.pending: OrderedDict[object, tuple[np.ndarray, object]] = OrderedDict()
        self.rewards = 0
        self.dropped = 0  # decisions whose reward never came before max_pending newer ones
        self.skipped = 0  # updates owed beyond MAX_DUE_UPDATES (background only)
        self.failed = 0  # background updates that raised
        self.lock = threading.Lock()  # the learner's weights: decisions and gradient steps take turns
        self._store_lock = threading.Lock()  # the buffer and the owed steps: stores and batch draws take turns
        self._wake = threading.Condition(self._store_lock)
        self._due = 0
        self._closed = False
        self._worker: threading.Thread | None = None
        if background:
            self._worker = threading.Thread(target=self._run, name="fine-tuning", daemon=True)
            self._worker.start()

    def remember(self, key: object, obs: np.ndarray, action: object) -> None:
        self.pending[key] = (obs, action)
        while len(self.pending) > self.max_pending:
            self.pending.popitem(last=False)
            self.dropped += 1

    def add(self, key: object, reward: float, next_obs: np.ndarray | None = None, next_mask=None, done=True) -> bool:
        """Store the transition of decision ``key`` and take the scheduled update; False if ``key`` is unknown."""
        entry = self.pending.pop(key, None)
        if entry is None:
            return False
        obs, action = entry
        with self._store_lock:
            self.buffer.add(obs, action, reward, obs if next_obs is None else next_obs, done, next_mask)
            self.rewards += 1
            self.learner.env_steps += 1
            step = len(self.buffer) >= self.learner.cfg.batch_size and self.rewards % self.train_every == 0
            if step and self._worker is not None:
                if self._due < MAX_DUE_UPDATES and not self._closed:
                    self._due += 1
                    self._wake.notify()
                else:
                    self.skipped += 1
        if step and self._worker is None:
            with self.lock:
                self.learner.update(self.buffer.sample(self.learner.cfg.batch_size))
        return True

    def _run(self) -> None:
        """The background updater: the owed steps, each on a batch drawn under the buffer's lock and taken
        under the learner's, until closed and none owed."""
        while True:
            with self._store_lock:
                while not self._due and not self._closed:
                    self._wake.wait()
                if not self._due:
                    return
                self._due -= 1
                batch = self.buffer.sample(self.learner.cfg.batch_size)
            with self.lock:
                try:
                    self.learner.update(batch)
                except Exception:  # a failed step must not end the updater: count it, log the first few, go on
                    self.failed += 1
                    if self.failed <= LOGGED_FAILURES:
                        log.exception("fine-tuning: an update of %s failed (%d so far; the first %d are logged)",
                                      type(self.learner).__name__, self.failed, LOGGED_FAILURES)  # fmt: skip

    def close(self) -> None:
        """Stop the background updater once it has taken the steps it owes (waits at most ``CLOSE_TIMEOUT_S``)."""
        if self._worker is None:
            return
        with self._store_lock:
            self._closed = True
            self._wake.notify()
        self._worker.join(CLOSE_TIMEOUT_S)
        if self._worker.is_alive():
            log.error("fine-tuning: the updater of %s did not stop within %.0f s", type(self.learner).__name__,
                      CLOSE_TIMEOUT_S)  # fmt: skip


class ChainedTuning(Tuning):
    """Tuning whose transitions lead from one decision to the next (an actor trained with gamma > 0).

    A request's transition ``(obs, action, utility, next request's obs)`` is stored once both its reward
    and the next decision's observation are known, in whichever order they come (rewards arrive when a
    request is served, possibly after the next decision). Bounded as ``Tuning``: decisions whose reward
    never came are dropped with their pending entry.
    """

    def __init__(
        self, learner, buffer: ReplayBuffer, train_every: int = 1, max_pending: int = 1_000, background: bool = False
    ) -> None:
        super().__init__(learner, buffer, train_every, max_pending, background)
        self._last_key: object = None
        self._rewards: dict[object, float] = {}
        self._next: dict[object, np.ndarray] = {}

    def remember(self, key: object, obs: np.ndarray, action: object) -> None:
        """Decision ``key``; a second decision of the same key (the router's retry of a request on another
        agent) replaces the first, and the request's transition still leads to the next request."""
        last = self._last_key
        if last is not None and last != key and last in self.pending:
            self._next[last] = obs
            self._store(last)
        super().remember(key, obs, action)
        self._last_key = key
        for waiting in (self._rewards, self._next):  # drop what belonged to decisions pushed out of ``pending``
            for stale in [k for k in waiting if k not in self.pending]:
                del waiting[stale]

    def add(self, key: object, reward: float, next_obs: np.ndarray | None = None, next_mask=None, done=True) -> bool:
        """The reward of decision ``key``; stored once the next decision's observation is known too."""
        if key not in self.pending:
            return False
        self._rewards[key] = reward
        self._store(key)
        return True

    def _store(self, key: object) -> None:
        if key in self._rewards and key in self._next:
            Tuning.add(self, key, self._rewards.pop(key), self._next.pop(key), done=False)


class LearnedCaching:
    """Caching by a discrete learner: ``act(obs, mask) -> index`` into :func:`cache_configs`.

    Args:
        act: the learner's action (e.g. ``lambda o, m: ddqn.act(o, m)``; greedy unless tuning explores).
        layout: models and agents the features are laid out by.
        mem_bytes: model -> memory it takes loaded, bytes (masks plans that do not fit; {}: none masked).
        name: the policy's name in reports.
        tuning: online learning (``learn`` before each plan), or None.
        reward_baseline: the per-request baseline the learner's frame reward subtracts
            (``ReferenceService.baseline``: model, w_latency, w_energy, snr_db, deadline_s), or None (the reward
            is the mean utility); the policy loop applies it to each scored request while tuning.
    """

    def __init__(
        self, act: Callable[[np.ndarray, np.ndarray], int], layout: Layout, mem_bytes: dict[str, int] | None = None,
        name: str = "ddqn", tuning: Tuning | None = None,
        reward_baseline: Callable[[str, float, float, float | None, float], float] | None = None,
    ) -> None:  # fmt: skip
        self.act = act
        self.layout = layout
        self.mem_bytes = mem_bytes or {}
        self.configs = cache_configs(layout)
        self.name = name
        self.tuning = tuning
        self.reward_baseline = reward_baseline
        self._frame = 0
        self._reward: float | None = None

    def learn(self, frame_utility: float) -> None:
        """The reward of the frame the last plan ran (its mean utility, less the baselines where the learner was
        trained with them); stored at the next plan."""
        self._reward = frame_utility

    def plan(self, view: ClusterView) -> dict[str, frozenset[str]]:
        obs = caching_observation(view, self.layout, self.mem_bytes)
        mask = caching_mask(view, self.layout, self.configs, self.mem_bytes)
        if self.tuning is not None and self._reward is not None:
            self.tuning.add(self._frame, self._reward, obs, mask, done=False)
        self._reward = None
        index = int(self.act(obs, mask))
        if self.tuning is not None:
            self._frame += 1
            self.tuning.remember(self._frame, obs, index)
        return dict(self.configs[index])


class LearnedAllocation:
    """Allocation by a continuous actor: ``act(obs) -> action`` in [-1, 1] (see ``decode_allocation``).

    Args:
        act: the actor's action for one observation (deterministic unless tuning explores).
        layout: models, agents and step range the features and actions are laid out by (with ``band_prior``, the
            policy keeps the square-root rule whose band fraction the actor corrects).
        name: the policy's name in reports.
        tuning: online learning from each request's utility (``learn``), or None.
    """

    def __init__(
        self, act: Callable[[np.ndarray], np.ndarray], layout: Layout, name: str = "d3pg", tuning: Tuning | None = None
    ) -> None:
        self.act = act
        self.layout = layout
        self.name = name
        self.tuning = tuning
        self.band = band_prior(layout)

    def learn(self, request_id: str, utility: float) -> bool:
        """The served request's utility: a transition for the actor; False if the request is not ours."""
        return self.tuning is not None and self.tuning.add(request_id, utility)

    def allocate(self, view: ClusterView, request: RequestInfo) -> Allocation:
        prior = self.band.prior_share(view, request) if self.band is not None else None
        obs = allocation_observation(view, request, self.layout, prior)
        action = self.act(obs)
        if self.tuning is not None:
            self.tuning.remember(request.request_id, obs, np.asarray(action, np.float32))
        agent, steps, share = decode_allocation(action, view, request, self.layout, prior)
        if request.steps is not None:
            steps = request.steps
        band = "" if share is None else f", {share:.2f} of the free band"
        return Allocation(agent, steps, f"{self.name}: {steps} steps on {agent}{band}", share)


def load_trained(
    checkpoint: str | Path, caching: str | None, allocation: str | None, fine_tune: bool = False
) -> tuple[LearnedCaching | None, LearnedAllocation | None]:
    """The learned policies of an ``edgetb train --env t2drl`` run folder (needs torch).

    Args:
        checkpoint: the run folder (``result.json`` with the feature layout, ``caching.pt``, ``allocation.pt``).
        caching: the caching learner wanted (``ddqn``), or None.
        allocation: the allocation learner wanted (``d3pg`` / ``ddpg`` / ``sac`` / ``td3``), or None.
        fine_tune: keep learning online (exploring: the actor's own noise, epsilon 0.05 for the DDQN).

    Raises:
        ValueError: the folder is not such a run, or it trained other learners (the message names the field).
    """
    folder = Path(checkpoint)
    result = read_run(folder, "checkpoint", ("layout",))
    try:
        layout = Layout(**{k: tuple(v) if isinstance(v, list) else v for k, v in result["layout"].items()})
    except (AttributeError, TypeError) as exc:
        raise ValueError(f"checkpoint: {folder} result.json layout does not fit this version ({exc})") from exc
    cache_policy, alloc_policy = None, None
    if caching is not None:
        if result.get("caching") != caching:
            raise ValueError(f"checkpoint: {folder} trained caching {result.get('caching')!r}, not {caching!r}")
        from orchestrator.algos.ddqn import DDQN

        learner = DDQN.load(folder / result["checkpoints"]["caching"])
        _check_shape(folder / result["checkpoints"]["caching"], (learner.obs_dim, learner.n_actions),
                     (layout.caching_obs_dim, len(cache_configs(layout))))  # fmt: skip
        tuning, epsilon = None, 0.0
        if fine_tune:
            buffer = ReplayBuffer(layout.caching_obs_dim, 0, TUNING_CAPACITY, n_actions=learner.n_actions)
            tuning, epsilon = Tuning(learner, buffer, background=True), TUNING_EPSILON
        cache_policy = LearnedCaching(
            _locked(lambda o, m: learner.act(o, m, epsilon=epsilon), tuning), layout, result.get("mem_bytes", {}),
            caching, tuning, _reward_baseline(folder, result),
        )  # fmt: skip
    if allocation is not None:
        if result.get("allocation") != allocation:
            raise ValueError(
                f"checkpoint: {folder} trained allocation {result.get('allocation')!r}, not {allocation!r}"
            )
        if allocation == "d3pg":
            from orchestrator.algos.d3pg import D3PG as Actor
        elif allocation in ("sac", "td3"):
            from orchestrator.algos.sb3 import Actor  # type: ignore[assignment]
        else:
            from orchestrator.algos.ddpg import DDPG as Actor  # type: ignore[assignment]
        actor = Actor.load(folder / result["checkpoints"]["allocation"])
        _check_shape(folder / result["checkpoints"]["allocation"], (actor.obs_dim, actor.act_dim),
                     (layout.allocation_obs_dim, layout.allocation_act_dim))  # fmt: skip
        tuning = None
        if fine_tune:
            buffer = ReplayBuffer(layout.allocation_obs_dim, layout.allocation_act_dim, TUNING_CAPACITY)
            tuning = (ChainedTuning if actor.cfg.gamma > 0 else Tuning)(actor, buffer, background=True)
        alloc_policy = LearnedAllocation(
            _locked(lambda o: actor.act(o, deterministic=not fine_tune), tuning), layout, allocation, tuning
        )
    return cache_policy, alloc_policy


def _reward_baseline(folder: Path, result: dict) -> Callable[[str, float, float, float | None, float], float] | None:
    """The caching reward's baseline the run trained with (``result.json`` ``caching_reward``), or None."""
    reward = result.get("caching_reward") or {"baseline": None}
    if reward.get("baseline") is None:
        return None  # trained on the frame's mean utility (also every run from before the baseline)
    if reward["baseline"] != "reference":
        raise ValueError(f"checkpoint: {folder} result.json caching_reward.baseline {reward['baseline']!r} is unknown")
    from orchestrator.caching_reward import ReferenceService

    try:
        return ReferenceService.from_json(reward["reference"]).baseline
    except (KeyError, ValueError) as exc:
        raise ValueError(f"checkpoint: {folder} result.json {exc}") from exc


def _locked(act: Callable, tuning: Tuning | None) -> Callable:
    """``act`` taking its turn on the tuner's lock (no update changes the weights mid-decision); ``act`` itself
    when nothing tunes."""
    if tuning is None:
        return act

    def locked(*args):
        with tuning.lock:
            return act(*args)

    return locked


def save_tuned(
    folder: str | Path, source: str | Path, caching: LearnedCaching | None, allocation: LearnedAllocation | None
) -> Path | None:
    """Write the fine-tuned learners as a run folder (``source``'s ``result.json`` marked ``fine_tuned``).

    Returns:
        The folder, or None when neither policy was tuned.
    """
    tuned = [(p, name) for p, name in ((caching, "caching"), (allocation, "allocation")) if p and p.tuning]
    if not tuned:
        return None
    for policy, _ in tuned:
        policy.tuning.close()  # type: ignore[union-attr]  # the steps it owes first
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result = read_run(source, "checkpoint", ("checkpoints",))
    for policy, name in tuned:
        with policy.tuning.lock:  # type: ignore[union-attr]  # an updater that did not stop steps no more meanwhile
            policy.tuning.learner.save(folder / result["checkpoints"][name])  # type: ignore[union-attr]
        result.setdefault("fine_tuned", {})[name] = {
            "from": str(source),
            "rewards": policy.tuning.rewards,
            "dropped": policy.tuning.dropped,  # type: ignore[union-attr]
            "skipped_updates": policy.tuning.skipped,  # type: ignore[union-attr]
            "failed_updates": policy.tuning.failed,  # type: ignore[union-attr]
            "updates": policy.tuning.learner.updates,  # type: ignore[union-attr]
        }
    for name in ("caching", "allocation"):  # an untuned learner travels unchanged
        if name in result["checkpoints"] and not (folder / result["checkpoints"][name]).exists():
            shutil.copy2(Path(source) / result["checkpoints"][name], folder / result["checkpoints"][name])
    (folder / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return folder


def _check_shape(path: Path, trained: tuple[int, int], features: tuple[int, int]) -> None:
    """A learner whose (observation, action) sizes are not what this version's features give fails loudly."""
    if trained != features:
        raise ValueError(
            f"checkpoint: {path} takes {trained[0]} observations and {trained[1]} actions, the features of this "
            f"version give {features[0]} and {features[1]} (trained before the features changed: retrain it)"
        )
