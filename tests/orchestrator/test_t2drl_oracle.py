"""The hindsight band allocation: the bound's slot split played in the simulator, below the bounds, above the
fixed fraction."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from orchestrator.envs.t2drl import SimBackend
from orchestrator.policies import build_policies
from orchestrator.policies.base import RequestInfo
from orchestrator.t2drl import eval_cached_bound, evaluate
from orchestrator.t2drl_oracle import HindsightAllocation, app, evaluate_hindsight
from orchestrator.workload import Workload


@pytest.fixture(scope="module")
def backend() -> SimBackend:
    return SimBackend.from_scenario("t2drl", "x86-cpu")


def _allocation(backend: SimBackend, requests) -> HindsightAllocation:
    s = backend.settings
    return HindsightAllocation(requests, backend.samplers, s.downlink, s.hops, s.cloud_delay_ms / 1e3, 32)


def test_each_slot_splits_its_band_by_the_bounds_optimum(backend) -> None:
    requests = Workload.from_scenario(backend.scenario, 21).requests(40)
    episode = backend.episode(21, 40)
    allocation = _allocation(backend, requests)
    spread, _ = build_policies("popular-spread", "none")
    shares: dict[int, list[float]] = {}
    while not episode.done:
        while episode.frame_due():
            episode.end_frame(spread.plan(episode.frame_view()))
        req, view, info = episode.request_view()
        choice = allocation.allocate(view, info)
        later = allocation.later[info.request_id]
        if not later and choice.bandwidth_share:  # the slot's last request served: all that is still free
            assert choice.bandwidth_share == pytest.approx(1.0)
        assert choice.steps is not None and 1 <= choice.steps <= 32
        result = episode.allocate(choice)
        shares.setdefault(req.slot, []).append(result.bandwidth_share or 0.0)
    assert all(sum(s) <= 1.0 + 1e-9 for s in shares.values())
    assert any(len(s) > 1 and all(x > 0.05 for x in s) for s in shares.values())  # slots that were split
    with pytest.raises(ValueError, match="request_id"):
        allocation.allocate(view, RequestInfo("sim-999999", req.model, 0))


def test_hindsight_beats_the_fixed_fraction_and_stays_under_the_bound(backend) -> None:
    seeds, slots = [7, 8], 60
    hindsight = evaluate_hindsight(backend, build_policies("popular-spread", "none")[0], seeds, slots)["utility"]
    spread, fixed = build_policies("popular-spread", "fixed-steps", fixed_steps=backend.policy.fixed_steps)
    online = evaluate(backend, {"p": (spread, fixed)}, seeds, slots)["p"]["utility"]
    assert online + 0.05 < hindsight < eval_cached_bound(backend, seeds, slots, 32)


def test_a_folder_that_is_no_run_is_refused_by_name(tmp_path) -> None:
    (tmp_path / "result.json").write_text('{"scenario": "t2drl"}')
    result = CliRunner().invoke(app, [str(tmp_path), "--out", str(tmp_path / "out.json")])
    assert result.exit_code == 2 and not (tmp_path / "out.json").exists()
    assert "runs:" in result.output and "result.json has no device" in result.output
