"""Decision policies and their baselines: one small file each; ``base`` holds the interfaces."""

from __future__ import annotations

from orchestrator.policies.base import AllocationPolicy, CachingPolicy
from orchestrator.policies.fixed_steps import FixedSteps
from orchestrator.policies.greedy_latency import GreedyLatency
from orchestrator.policies.lru import LeastRecentlyUsed
from orchestrator.policies.most_popular import MostPopular
from orchestrator.policies.no_cache import NoCache
from orchestrator.policies.random_cache import RandomCaching

#: Caching policies by their ``[policy] caching`` name.
CACHING: dict[str, type] = {
    "most-popular": MostPopular, "lru": LeastRecentlyUsed, "no-cache": NoCache, "random": RandomCaching,
}  # fmt: skip
#: Allocation policies by their ``[policy] allocation`` name.
ALLOCATION: dict[str, type] = {"fixed-steps": FixedSteps, "greedy-latency": GreedyLatency}

__all__ = ["ALLOCATION", "CACHING", "AllocationPolicy", "CachingPolicy"]
