"""Cache-most-popular: each edge agent keeps the k models requested most so far.

Ties of request counts go to the model ranked first in the view's ``model_rank``, then by name.
Models nobody requested are never cached; an agent only gets models in its repository.
"""

from __future__ import annotations

from orchestrator.policies.base import ClusterView


class MostPopular:
    """The top-``view.cache_models`` models by requests seen since the start, on every up edge agent."""

    name = "most-popular"

    def plan(self, view: ClusterView) -> dict[str, frozenset[str]]:
        ranked = view.most_requested()
        return {a.name: frozenset([m for m in ranked if m in a.repository][: view.cache_models]) for a in view.edges()}
