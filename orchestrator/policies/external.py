"""Allocation decided by a caller in the daemon's own process: the live backend of the T2DRL envs.

The env computes its decision from the daemon's view (``orchestrator.envs.live``), hands it over with
``decide(request_id, allocation)`` and then submits the request; the router asks ``allocate`` as it
asks any policy and gets that decision. A request without a decision is refused (``NoAgent``: the
daemon answers UNAVAILABLE naming ``request_id``), never placed by a guess.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from orchestrator.policies.base import Allocation, ClusterView, NoAgent, RequestInfo

#: Decisions waiting for their request at most (older ones are dropped and counted).
MAX_PENDING = 1_000


class ExternalAllocation:
    """Hands out the decisions a caller made per request id (thread-safe: the caller is another thread)."""

    name = "external"

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self.dropped = 0  # decisions whose request never came before ``max_pending`` newer ones
        self._decisions: OrderedDict[str, Allocation] = OrderedDict()
        self._lock = threading.Lock()

    def decide(self, request_id: str, allocation: Allocation) -> None:
        """The decision for the request ``request_id`` (replaces an earlier one)."""
        with self._lock:
            self._decisions[request_id] = allocation
            self._decisions.move_to_end(request_id)
            while len(self._decisions) > self.max_pending:
                self._decisions.popitem(last=False)
                self.dropped += 1

    def allocate(self, view: ClusterView, request: RequestInfo) -> Allocation:
        with self._lock:
            allocation = self._decisions.pop(request.request_id, None)
        if allocation is None:
            raise NoAgent(f"request_id: '{request.request_id}' has no decision from the external allocator")
        agent = view.agent(allocation.agent)
        if agent is None or not agent.up:  # e.g. a retry after the chosen agent failed
            raise NoAgent(f"agent: the external allocator chose '{allocation.agent}', which is not up")
        return allocation
