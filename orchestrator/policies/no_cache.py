"""No caching: edge agents keep nothing loaded, so every request goes to the cloud."""

from __future__ import annotations

from orchestrator.policies.base import ClusterView


class NoCache:
    """An empty cache on every up edge agent."""

    name = "no-cache"

    def plan(self, view: ClusterView) -> dict[str, frozenset[str]]:
        return {a.name: frozenset() for a in view.edges()}
