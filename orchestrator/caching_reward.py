"""The caching learner's frame reward with a per-request baseline that no caching plan changes.

A frame's mean utility carries the effect of its cache plan (hits, loads, queues: ~0.15 utility per unit of
hit ratio on the t2drl scenario) under far larger noise from the frame's requests themselves: a user far
from the cell or with a heavy latency weight, a request that cannot reach its user before its deadline.
Those requests would be as good or as bad under any plan. The baseline of a request is its utility under a
fixed reference service that only looks at the request: served at once on an edge agent at the steps best
for its user (expected quality, compute and energy from the model's profile, as in
:mod:`orchestrator.t2drl_bound`), its image sent on ``share`` of the band at its SNR; a request whose image
cannot arrive before its deadline that way scores as a miss. The reward of a frame is the mean of
``utility - baseline`` over its requests.

The baseline depends only on the request (model, user weights, SNR, deadline), which no cache plan
changes, so for any state its expectation is the same whatever plan is taken: the plans' values shift
alike and the best plan stays the best, while the reward's variance falls (on the t2drl scenario's
simulated frames with the D3PG allocating, by ~60 %; with fixed steps ~70 %, which
``tests/orchestrator/test_caching_reward.py`` checks). Trained with it, the DDQN cached no better (docs/t2drl-log.md):
``T2DRLConfig.caching_baseline`` is off by default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.radio import Downlink, downlink_of
from orchestrator.sim.cluster import SimSettings
from orchestrator.sim.sampler import ModelSampler
from orchestrator.t2drl_bound import expected_service
from orchestrator.utility import request_utility
from orchestrator.workload import WorkloadRequest
from profiles.scenario import Scenario


@dataclass(frozen=True)
class ReferenceService:
    """The reference service the baseline scores requests under.

    Attributes:
        steps: model -> per step count 1..S, (mean quality, mean latency s without the downlink, mean energy J
            or None), from the model's profile on the simulated device.
        share: the fraction of the band a request's image is sent on (the scenario's fixed share).
        downlink: the cell, or None without a radio (no transfer term).
    """

    steps: Mapping[str, tuple[tuple[float, float, float | None], ...]]
    share: float
    downlink: Downlink | None

    @classmethod
    def from_samplers(
        cls, samplers: Mapping[str, ModelSampler], hops: float, max_steps: int, share: float, downlink: Downlink | None
    ) -> ReferenceService:
        """The reference of models drawn by ``samplers`` (``hops`` overheads per request), steps ``1..max_steps``."""
        table = {
            model: tuple(expected_service(sampler, s, hops) for s in range(1, max_steps + 1))
            for model, sampler in samplers.items()
        }
        return cls(table, share, downlink)

    @classmethod
    def for_scenario(cls, scenario: Scenario, device: str, max_steps: int) -> ReferenceService:
        """The reference of ``scenario``'s models profiled on ``device`` (the simulator's two gRPC hops per
        request; the band share fixed policies take)."""
        from orchestrator.fidelity import samplers_for

        samplers = samplers_for(scenario.models.names, device)
        share = scenario.radio.fixed_share if scenario.radio is not None else 1.0
        return cls.from_samplers(samplers, SimSettings.hops, max_steps, share, downlink_of(scenario))

    def baseline(self, model: str, w_latency: float, w_energy: float, snr_db: float | None, deadline_s: float) -> float:
        """The utility of one request under the reference service (see the module docstring)."""
        missed = -w_latency * deadline_s
        rows = self.steps.get(model)
        if not rows:
            return missed
        air_s = 0.0
        if self.downlink is not None and snr_db is not None:
            air_s = self.downlink.tx_time_s(self.share, snr_db)
        if not air_s <= deadline_s:  # also inf
            return missed
        best = max(request_utility(q, lat + air_s, e, w_latency, w_energy).value for q, lat, e in rows)
        return max(best, missed)

    def baseline_of(self, req: WorkloadRequest) -> float:
        """:meth:`baseline` of a workload request."""
        return self.baseline(req.model, req.w_latency, req.w_energy, req.snr_db, req.deadline_s)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (``from_json`` reads it back)."""
        radio = None
        if self.downlink is not None:
            d = self.downlink
            radio = {"bandwidth_hz": d.bandwidth_hz, "image_bytes": d.image_bytes, "min_share": d.min_share}
        steps = {m: [list(r) for r in rows] for m, rows in self.steps.items()}
        return {"share": self.share, "downlink": radio, "steps": steps}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferenceService:
        """The reference ``to_json`` wrote; ValueError naming the field when it is malformed."""
        try:
            share = float(data["share"])
            radio = data["downlink"]
            downlink = None if radio is None else Downlink(float(radio["bandwidth_hz"]), int(radio["image_bytes"]),
                                                            float(radio["min_share"]))  # fmt: skip
            steps = {
                str(m): tuple((float(q), float(lat), None if e is None else float(e)) for q, lat, e in rows)
                for m, rows in data["steps"].items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"caching_reward.reference: malformed ({exc!r})") from exc
        if not (0.0 < share <= 1.0 and math.isfinite(share)):
            raise ValueError(f"caching_reward.reference.share: {share!r} must be in (0, 1]")
        return cls(steps, share, downlink)
