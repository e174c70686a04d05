"""Fixed steps: the edge agent that has the model loaded with the shortest queue, else the cloud.

Steps are a fixed number (``[policy] fixed_steps``) unless the user asked for a number.
"""

from __future__ import annotations

from orchestrator.policies.base import Allocation, ClusterView, NoAgent, RequestInfo


class FixedSteps:
    """Allocation with fixed steps.

    Args:
        steps: denoising steps of every request that does not set its own.
    """

    name = "fixed-steps"

    def __init__(self, steps: int = 8) -> None:
        self.steps = steps

    def allocate(self, view: ClusterView, request: RequestInfo) -> Allocation:
        steps = request.steps if request.steps is not None else self.steps
        holders = [a for a in view.edges() if request.model in a.loaded]
        if holders:
            best = min(holders, key=lambda a: (a.queue_depth, a.inflight, a.name))
            return Allocation(best.name, steps, f"edge with the model loaded, queue depth {best.queue_depth}")
        cloud = view.cloud()
        if cloud is not None and (request.model in cloud.repository or request.model in cloud.loaded):
            return Allocation(cloud.name, steps, "no edge agent has the model loaded: cloud")
        raise NoAgent(f"model: '{request.model}' is loaded on no up edge agent and no cloud agent is up with it")
