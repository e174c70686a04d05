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


def build_policies(
    caching: str, allocation: str, *, seed: int = 0, fixed_steps: int = 8, step_candidates: tuple[int, ...] = (4, 8)
) -> tuple[CachingPolicy | None, AllocationPolicy | None]:
    """The policies named by a ``[policy]`` table (``none`` / ``router``: None), the same for live and sim runs."""
    cache: CachingPolicy | None = None
    if caching == "random":
        cache = RandomCaching(seed)
    elif caching in CACHING:
        cache = CACHING[caching]()
    alloc: AllocationPolicy | None = None
    if allocation == "fixed-steps":
        alloc = FixedSteps(fixed_steps)
    elif allocation == "greedy-latency":
        alloc = GreedyLatency(fixed_steps, step_candidates)
    return cache, alloc


__all__ = ["ALLOCATION", "CACHING", "AllocationPolicy", "CachingPolicy", "build_policies"]
