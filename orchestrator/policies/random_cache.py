"""Random caching: each edge agent keeps k models drawn at random from its repository, anew each frame.

Deterministic given the seed, the frame index and the agent's name (the draw does not depend on
Python's per-process string hashing).
"""

from __future__ import annotations

import zlib

import numpy as np

from orchestrator.policies.base import ClusterView


class RandomCaching:
    """A uniform draw of ``view.cache_models`` models per up edge agent and frame.

    Args:
        seed: seed of the draws.
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def plan(self, view: ClusterView) -> dict[str, frozenset[str]]:
        plan = {}
        for agent in view.edges():
            models = sorted(agent.repository)
            rng = np.random.default_rng([self.seed, view.frame, zlib.crc32(agent.name.encode())])
            k = min(view.cache_models, len(models))
            plan[agent.name] = frozenset(rng.choice(models, size=k, replace=False).tolist()) if k else frozenset()
        return plan
