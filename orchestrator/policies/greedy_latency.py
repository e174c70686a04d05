"""Greedy by measured latency: the candidate agent with the lowest estimated latency.

Candidates: up edge agents with the model loaded, and the cloud agent. Steps: the smallest of the
candidate set whose measured mean quality (over agents) meets the request's quality floor; without
a floor, or when no candidate is measured to meet it, the default steps. The estimate of an agent is
its EWMA latency for (agent, model, steps) times (1 + its queue depth + the daemon's requests in
flight there). A candidate never measured at those steps is tried first (lowest queue depth, then
name), so every candidate gets measured; with no measurement at all this is queue depth alone.
"""

from __future__ import annotations

from orchestrator.policies.base import AgentState, Allocation, ClusterView, NoAgent, RequestInfo


class GreedyLatency:
    """Allocation by the lowest measured latency.

    Args:
        default_steps: steps when no candidate step count is known to meet the floor.
        step_candidates: step counts to choose from, any order.
    """

    name = "greedy-latency"

    def __init__(self, default_steps: int = 8, step_candidates: tuple[int, ...] = (4, 8, 16, 32)) -> None:
        self.default_steps = default_steps
        self.step_candidates = tuple(sorted(set(step_candidates)))

    def steps_for(self, view: ClusterView, request: RequestInfo) -> tuple[int, str]:
        """The steps and why."""
        if request.steps is not None:
            return request.steps, "steps set by the request"
        if request.quality_floor is None:
            return self.default_steps, "no quality floor: default steps"
        for steps in self.step_candidates:
            quality = view.mean_quality(request.model, steps)
            if quality is not None and quality >= request.quality_floor:
                return steps, f"{steps} steps measured quality {quality:.3f} >= floor {request.quality_floor:g}"
        return self.default_steps, "no measured step count meets the floor: default steps"

    def allocate(self, view: ClusterView, request: RequestInfo) -> Allocation:
        steps, why_steps = self.steps_for(view, request)
        candidates = [a for a in view.edges() if request.model in a.loaded]
        cloud = view.cloud()
        if cloud is not None and (request.model in cloud.repository or request.model in cloud.loaded):
            candidates.append(cloud)
        if not candidates:
            raise NoAgent(f"model: '{request.model}' is loaded on no up edge agent and no cloud agent is up with it")

        def latency(a: AgentState) -> float | None:
            m = view.measured.get((a.name, request.model, steps))
            return None if m is None or m.latency_s is None else m.latency_s * (1 + a.queue_depth + a.inflight)

        unmeasured = [a for a in candidates if latency(a) is None]
        if unmeasured:
            best = min(unmeasured, key=lambda a: (a.queue_depth + a.inflight, a.name))
            return Allocation(best.name, steps, f"not measured yet (queue depth {best.queue_depth}); {why_steps}")
        best = min(candidates, key=lambda a: (latency(a), a.name))
        return Allocation(best.name, steps, f"lowest estimated latency {latency(best):.3f} s; {why_steps}")
