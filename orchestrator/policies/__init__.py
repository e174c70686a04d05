"""Decision policies and their baselines: one small file each; ``base`` holds the interfaces."""

from __future__ import annotations

from orchestrator.policies.base import AllocationPolicy, CachingPolicy
from orchestrator.policies.external import ExternalAllocation
from orchestrator.policies.fixed_steps import FixedSteps
from orchestrator.policies.greedy_latency import GreedyLatency
from orchestrator.policies.lru import LeastRecentlyUsed
from orchestrator.policies.most_popular import MostPopular
from orchestrator.policies.no_cache import NoCache
from orchestrator.policies.popular_spread import PopularSpread
from orchestrator.policies.random_cache import RandomCaching
from orchestrator.policies.sqrt_band import SqrtBand

#: Caching policies by their ``[policy] caching`` name.
CACHING: dict[str, type] = {
    "most-popular": MostPopular, "lru": LeastRecentlyUsed, "no-cache": NoCache, "random": RandomCaching,
    "popular-spread": PopularSpread,
}  # fmt: skip
#: Allocation policies by their ``[policy] allocation`` name.
ALLOCATION: dict[str, type] = {"fixed-steps": FixedSteps, "greedy-latency": GreedyLatency, "sqrt-band": SqrtBand}
#: Learned policies (``orchestrator.policies.drl``), loaded from a training run's checkpoints.
LEARNED_CACHING = ("ddqn",)
LEARNED_ALLOCATION = ("d3pg", "ddpg", "sac", "td3")


def build_policies(
    caching: str,
    allocation: str,
    *,
    seed: int = 0,
    fixed_steps: int = 8,
    step_candidates: tuple[int, ...] = (4, 8),
    checkpoint: str = "",
    fine_tune: bool = False,
) -> tuple[CachingPolicy | None, AllocationPolicy | None]:
    """The policies named by a ``[policy]`` table (``none`` / ``router``: None), the same for live and sim runs.

    ``ddqn`` (caching) and ``d3pg`` / ``ddpg`` / ``sac`` / ``td3`` (allocation) are learners trained by ``edgetb train
    --env t2drl``, loaded from the run folder ``checkpoint`` (needs torch); ``fine_tune``: they keep learning.
    """
    learned = None
    if caching in LEARNED_CACHING or allocation in LEARNED_ALLOCATION:
        from orchestrator.policies.drl import load_trained

        learned = load_trained(checkpoint, caching if caching in LEARNED_CACHING else None,
                               allocation if allocation in LEARNED_ALLOCATION else None, fine_tune)  # fmt: skip
    cache: CachingPolicy | None = None
    if caching == "random":
        cache = RandomCaching(seed)
    elif caching in CACHING:
        cache = CACHING[caching]()
    elif learned is not None and caching in LEARNED_CACHING:
        cache = learned[0]
    alloc: AllocationPolicy | None = None
    if learned is not None and allocation in LEARNED_ALLOCATION:
        alloc = learned[1]
    elif allocation == "fixed-steps":
        alloc = FixedSteps(fixed_steps)
    elif allocation == "sqrt-band":
        alloc = SqrtBand(fixed_steps)
    elif allocation == "greedy-latency":
        alloc = GreedyLatency(fixed_steps, step_candidates)
    elif allocation == "external":
        alloc = ExternalAllocation()
    return cache, alloc


__all__ = [
    "ALLOCATION",
    "CACHING",
    "LEARNED_ALLOCATION",
    "LEARNED_CACHING",
    "AllocationPolicy",
    "CachingPolicy",
    "build_policies",
]
