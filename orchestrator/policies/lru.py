"""LRU caching: each edge agent keeps the k most recently requested models.

The least recently requested model is the one evicted; ties (same request time) go by name.
"""

from __future__ import annotations

from orchestrator.policies.base import ClusterView


class LeastRecentlyUsed:
    """The ``view.cache_models`` models with the latest requests, on every up edge agent."""

    name = "lru"

    def plan(self, view: ClusterView) -> dict[str, frozenset[str]]:
        recent = sorted(view.last_request_s, key=lambda m: (-view.last_request_s[m], m))
        return {a.name: frozenset([m for m in recent if m in a.repository][: view.cache_models]) for a in view.edges()}
