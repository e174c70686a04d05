"""Trained learners as policies: a DDQN (or any masked discrete agent) caches, a D3PG/DDPG actor allocates.

They implement the same ``CachingPolicy`` / ``AllocationPolicy`` interfaces as the heuristics and read
only the ``ClusterView`` (features: :mod:`orchestrator.envs.features`), so the policy loop of the live
daemon and the simulator (:func:`orchestrator.sim.cluster.simulate`) run them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

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
