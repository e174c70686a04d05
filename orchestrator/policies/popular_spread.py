"""Cache-popular-spread: the cluster's most requested models, dealt out so the edge agents hold different ones.

With E up edge agents keeping k models each, the models requested most so far are dealt in rank
order, one per agent in turn (edge 1 gets rank 1, edge 2 rank 2, ...; then the next round), so the
cluster holds the E·k most popular models rather than k of them E times (``most-popular`` plans
each agent alone). With fewer requested models than places the ranking is dealt again from the top.
Ties of request counts go as in ``most-popular``; models nobody requested are never cached; an agent
only gets models in its repository.
"""

from __future__ import annotations

from orchestrator.policies.base import ClusterView


class PopularSpread:
    """The cluster's top models by requests seen since the start, spread over the up edge agents."""

    name = "popular-spread"

    def plan(self, view: ClusterView) -> dict[str, frozenset[str]]:
        ranked = view.most_requested()
        edges = view.edges()
        held: dict[str, list[str]] = {a.name: [] for a in edges}
        position = 0  # the next rank to deal
        for _ in range(view.cache_models if ranked else 0):
            for agent in edges:
                for offset in range(len(ranked)):
                    model = ranked[(position + offset) % len(ranked)]
                    if model in agent.repository and model not in held[agent.name]:
                        held[agent.name].append(model)
                        position = (position + offset + 1) % len(ranked)
                        break
        return {name: frozenset(models) for name, models in held.items()}
