"""The square-root band split on hand-built views: shares checked by hand, the rate learned per slot."""

from __future__ import annotations

import math

import pytest

from orchestrator.policies.base import AgentState, ClusterView, RequestInfo
from orchestrator.policies.sqrt_band import SqrtBand
from orchestrator.radio import Downlink

DOWNLINK = Downlink(bandwidth_hz=5e6, image_bytes=50_000, min_share=0.05)
MODELS = frozenset({"a"})


def _view(slot: int, elapsed: float = 0.0, downlink: Downlink | None = DOWNLINK) -> ClusterView:
    agents = (
        AgentState("e1", True, False, MODELS, MODELS, queue_depth=0),
        AgentState("cloud", True, True, MODELS, MODELS),
    )
    return ClusterView(now_s=0.0, slot=slot, frame=0, agents=agents, slot_elapsed=elapsed, downlink=downlink)


def _request(snr_db: float = 10.0, w: float = 0.5, deadline_s: float = 3.0) -> RequestInfo:
    return RequestInfo("r", "a", 0, snr_db=snr_db, w_latency=w, deadline_s=deadline_s)


def test_before_a_slot_has_ended_one_more_request_is_expected_then_the_rate_shares_the_band() -> None:
    policy = SqrtBand(steps=4, coming_scale=1.0, alpha=1.0)  # alpha 1: the last slot's count is the rate
    first = policy.allocate(_view(0), _request())
    assert first.agent == "e1" and first.steps == 4 and first.bandwidth_share == pytest.approx(1 / 2)  # the prior
    policy.allocate(_view(0, 0.5), _request())
    policy.allocate(_view(0, 0.9), _request())  # 3 requests in slot 0
    # slot 1, at its start: 3 more expected, each of the same cost: 1 / (1 + 3)
    assert policy.allocate(_view(1), _request()).bandwidth_share == pytest.approx(1 / 4)
    # halfway through slot 1: 1.5 more expected
    assert policy.allocate(_view(1, 0.5), _request()).bandwidth_share == pytest.approx(1 / 2.5)
    assert policy.rate == 3
    # slot 4 after slots 2-3 without requests: the rate is 0, alpha 1
    assert policy.allocate(_view(4), _request()).bandwidth_share == pytest.approx(1.0) and policy.rate == 0


def test_the_rate_is_the_plain_mean_until_one_over_alpha_slots_have_passed() -> None:
    policy = SqrtBand(steps=4, alpha=0.25)
    for slot, n in enumerate((4, 2, 0, 6, 2, 2)):  # requests per slot
        for i in range(n):
            policy.allocate(_view(slot, i / max(n, 1)), _request())
    policy.allocate(_view(6), _request())  # ends slot 5
    rate = (4 + 2 + 0 + 6) / 4  # the mean of the first 4 slots, then weight 0.25 for each newer one
    rate = 0.75 * (0.75 * rate + 0.25 * 2) + 0.25 * 2
    assert policy.rate == pytest.approx(rate)


def test_the_mean_cost_weighs_a_poor_channel_against_the_coming_requests() -> None:
    policy = SqrtBand(steps=4, coming_scale=1.0, alpha=0.25)
    for slot in range(3):
        policy.allocate(_view(slot), _request(snr_db=10.0))
    t_good, t_poor = DOWNLINK.tx_time_s(1.0, 10.0), DOWNLINK.tx_time_s(1.0, 0.0)
    poor = policy.allocate(_view(3), _request(snr_db=0.0)).bandwidth_share
    c_poor, rate = math.sqrt(0.5 * t_poor), 1.0
    mean = 0.75 * math.sqrt(0.5 * t_good) + 0.25 * c_poor  # the 4th cost: the plain mean, weight 1/4
    assert poor == pytest.approx(c_poor / (c_poor + rate * mean)) and t_poor > t_good
    # in the same slot, half of it gone: a user with four times the weight is worth twice the cost, sqrt(w t)
    c_heavy = math.sqrt(2.0 * t_good)
    mean = 0.75 * mean + 0.25 * c_heavy
    heavy = policy.allocate(_view(3, 0.5), _request(w=2.0)).bandwidth_share
    assert heavy == pytest.approx(c_heavy / (c_heavy + 0.5 * rate * mean))


def test_a_hopeless_request_takes_the_least_share_and_no_radio_is_fixed_steps() -> None:
    policy = SqrtBand(steps=4)
    hopeless = policy.allocate(_view(0), _request(snr_db=-30.0, deadline_s=0.5))
    assert hopeless.bandwidth_share == 0.0 and "hopeless" in hopeless.reason
    plain = policy.allocate(_view(0, downlink=None), _request())
    assert plain.bandwidth_share is None and plain.steps == 4
    with pytest.raises(ValueError, match="coming_scale"):
        SqrtBand(coming_scale=-1.0)


def test_a_new_run_starts_its_rate_afresh() -> None:
    policy = SqrtBand(steps=4, coming_scale=1.0, alpha=1.0)
    for elapsed in (0.0, 0.3, 0.6):
        policy.allocate(_view(10, elapsed), _request())
    policy.allocate(_view(11), _request())
    assert policy.rate == 3
    policy.allocate(_view(0), _request())  # the slot went back: the simulator's next episode
    policy.allocate(_view(1), _request())
    assert policy.rate == 1
