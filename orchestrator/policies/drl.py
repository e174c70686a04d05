"""Trained learners as policies: a DDQN (or any masked discrete agent) caches, a D3PG/DDPG actor allocates.

They implement the same ``CachingPolicy`` / ``AllocationPolicy`` interfaces as the heuristics and read
only the ``ClusterView`` (features: :mod:`orchestrator.envs.features`), so the policy loop of the live
daemon and the simulator (:func:`orchestrator.sim.cluster.simulate`) run them unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from orchestrator.envs.features import (
    Layout,
    allocation_observation,
    cache_configs,
    caching_mask,
    caching_observation,
    decode_allocation,
)
from orchestrator.policies.base import Allocation, ClusterView, RequestInfo


class LearnedCaching:
    """Caching by a discrete learner: ``act(obs, mask) -> index`` into :func:`cache_configs`.

    Args:
        act: the learner's greedy action (e.g. ``lambda o, m: ddqn.act(o, m)``).
        layout: models and agents the features are laid out by.
        mem_bytes: model -> memory it takes loaded, bytes (masks plans that do not fit; {}: none masked).
        name: the policy's name in reports.
    """

    def __init__(
        self, act: Callable[[np.ndarray, np.ndarray], int], layout: Layout, mem_bytes: dict[str, int] | None = None,
        name: str = "ddqn",
    ) -> None:  # fmt: skip
        self.act = act
        self.layout = layout
        self.mem_bytes = mem_bytes or {}
        self.configs = cache_configs(layout)
        self.name = name

    def plan(self, view: ClusterView) -> dict[str, frozenset[str]]:
        obs = caching_observation(view, self.layout)
        index = int(self.act(obs, caching_mask(view, self.layout, self.configs, self.mem_bytes)))
        return dict(self.configs[index])


class LearnedAllocation:
    """Allocation by a continuous actor: ``act(obs) -> action`` in [-1, 1] (see ``decode_allocation``).

    Args:
        act: the actor's deterministic action for one observation.
        layout: models, agents and step range the features and actions are laid out by.
        name: the policy's name in reports.
    """

    def __init__(self, act: Callable[[np.ndarray], np.ndarray], layout: Layout, name: str = "d3pg") -> None:
        self.act = act
        self.layout = layout
        self.name = name

    def allocate(self, view: ClusterView, request: RequestInfo) -> Allocation:
        action = self.act(allocation_observation(view, request, self.layout))
        agent, steps = decode_allocation(action, view, request, self.layout)
        if request.steps is not None:
            steps = request.steps
        return Allocation(agent, steps, f"{self.name}: {steps} steps on {agent}")


def load_trained(
    checkpoint: str | Path, caching: str | None, allocation: str | None
) -> tuple[LearnedCaching | None, LearnedAllocation | None]:
    """The learned policies of an ``edgetb train --env t2drl`` run folder (needs torch).

    Args:
        checkpoint: the run folder (``result.json`` with the feature layout, ``caching.pt``, ``allocation.pt``).
        caching: the caching learner wanted (``ddqn``), or None.
        allocation: the allocation learner wanted (``d3pg`` / ``ddpg``), or None.

    Raises:
        ValueError: the folder is not such a run, or it trained other learners (the message names the field).
    """
    folder = Path(checkpoint)
    try:
        result = json.loads((folder / "result.json").read_text())
        layout = Layout(**{k: tuple(v) if isinstance(v, list) else v for k, v in result["layout"].items()})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"checkpoint: {folder} is not an `edgetb train --env t2drl` output folder ({exc})") from exc
    cache_policy, alloc_policy = None, None
    if caching is not None:
        if result.get("caching") != caching:
            raise ValueError(f"checkpoint: {folder} trained caching {result.get('caching')!r}, not {caching!r}")
        from orchestrator.algos.ddqn import DDQN

        learner = DDQN.load(folder / result["checkpoints"]["caching"])
        cache_policy = LearnedCaching(lambda o, m: learner.act(o, m), layout, result.get("mem_bytes", {}), caching)
    if allocation is not None:
        if result.get("allocation") != allocation:
            raise ValueError(
                f"checkpoint: {folder} trained allocation {result.get('allocation')!r}, not {allocation!r}"
            )
        if allocation == "d3pg":
            from orchestrator.algos.d3pg import D3PG as Actor
        else:
            from orchestrator.algos.ddpg import DDPG as Actor  # type: ignore[assignment]
        actor = Actor.load(folder / result["checkpoints"]["allocation"])
        alloc_policy = LearnedAllocation(lambda o: actor.act(o, deterministic=True), layout, allocation)
    return cache_policy, alloc_policy
