"""The simulated radio downlink: each image's modeled transmission on its share of the slot's band."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pytest

from orchestrator.config import PolicyConfig
from orchestrator.policies import build_policies
from orchestrator.policies.base import Allocation
from orchestrator.radio import Downlink, SlotBand
from orchestrator.sim.cluster import CLOUD, SimEpisode, SimSettings, simulate
from orchestrator.sim.sampler import ModelSampler
from orchestrator.workload import Workload
from profiles.scenario import Scenario

MODELS = ("digits-mlp-s", "digits-resmlp-l", "digits-ldm")
PER_STEP_S = {"digits-mlp-s": 0.0005, "digits-resmlp-l": 0.002, "digits-ldm": 0.001}
RADIO = {"bandwidth_hz": 1e6, "image_bytes": 20_000, "snr_db": [0.0, 20.0], "fading": "rayleigh", "min_share": 0.05}
SHARE = 0.3  # the fixed policies' fraction of the free band


def radio_scenario(deadline_s: float, **radio: object) -> Scenario:
    """6 busy users (several requests per slot) over 40 slots of 1 s, with a [radio] table (RADIO | radio)."""
    return Scenario.build(
        name="radio-sim", seed=3, timing={"slot_s": 1.0, "frame_slots": 5, "slots": 40},
        models={"names": list(MODELS), "rank": ["digits-resmlp-l", "digits-mlp-s", "digits-ldm"]},
        users={"count": 6, "rate_per_s": [0.5, 1.5]}, requests={"deadline_s": deadline_s},
        cluster={"edge_agents": 2, "cache_models": 1}, radio=RADIO | radio,
    )  # fmt: skip


@pytest.fixture(scope="module")
def samplers(synthetic_profile) -> dict[str, ModelSampler]:
    return {m: ModelSampler(synthetic_profile(m, "dev", per_step_s=PER_STEP_S[m]), power_w=10.0) for m in MODELS}


def policy(sc: Scenario) -> PolicyConfig:
    return PolicyConfig(
        caching="random", allocation="fixed-steps", slot_s=sc.timing.slot_s, frame_slots=sc.timing.frame_slots,
        cache_models=sc.cluster.cache_models, model_rank=tuple(sc.models.order), cloud_agent=CLOUD,
        bandwidth_share=SHARE, seed=1,
    )  # fmt: skip


def settings(sc: Scenario, downlink: Downlink | None) -> SimSettings:
    return SimSettings(edge_agents=sc.cluster.edge_agents, cloud_delay_ms=200.0, seed=5, downlink=downlink)


def link_of(sc: Scenario) -> Downlink:
    assert sc.radio is not None
    return Downlink(sc.radio.bandwidth_hz, sc.radio.image_bytes, sc.radio.min_share)


def test_downlink_is_the_shannon_time_of_the_granted_share(samplers) -> None:
    sc = radio_scenario(deadline_s=1000.0)
    reqs = Workload.from_scenario(sc).requests()
    assert len(reqs) > 100 and all(r.snr_db is not None for r in reqs)
    link = link_of(sc)
    results = simulate(reqs, samplers, policy(sc), settings(sc, link))
    assert [r.id for r in results] == [r.id for r in reqs]
    ok = [(res, req) for res, req in zip(results, reqs, strict=True) if res.outcome == "ok"]
    assert len(ok) > 0.95 * len(reqs)
    for res, req in ok:
        assert res.latency_s >= res.downlink_s > 0
        assert res.downlink_s == pytest.approx(link.tx_time_s(res.bandwidth_share, req.snr_db), rel=1e-9, abs=1e-9)
    # the shares are the band ledger's: SHARE of what is free in the request's slot (a fresh ledger, replayed)
    band, per_slot = SlotBand(link.min_share), defaultdict(float)
    for res, req in zip(results, reqs, strict=True):
        assert res.bandwidth_share == pytest.approx(band.grant(req.slot, SHARE), abs=1e-12)
        per_slot[req.slot] += res.bandwidth_share
    assert max(per_slot.values()) <= 1.0 + 1e-9
    assert max(per_slot.values()) > 1 - (1 - SHARE) ** 2  # several requests did share a slot
    # the downlink only adds to the latency: what the cluster took is that of the same run without a radio
    plain = simulate(reqs, samplers, policy(sc), settings(sc, None))
    assert all(r.downlink_s == 0.0 and r.bandwidth_share is None for r in plain)
    for (res, _), base in zip(ok, (plain[res.id] for res, _ in ok), strict=True):
        assert base.outcome == "ok" and (base.agent, base.steps) == (res.agent, res.steps)
        assert res.latency_s == pytest.approx(base.latency_s + res.downlink_s, rel=1e-9, abs=1e-9)


def test_a_narrower_band_gives_longer_latencies(samplers) -> None:
    wide_sc = radio_scenario(deadline_s=1000.0)
    narrow_sc = radio_scenario(deadline_s=1000.0, bandwidth_hz=RADIO["bandwidth_hz"] / 4)
    reqs = Workload.from_scenario(wide_sc).requests()
    assert reqs == Workload.from_scenario(narrow_sc).requests()  # the radio's band does not change the workload
    wide = simulate(reqs, samplers, policy(wide_sc), settings(wide_sc, link_of(wide_sc)))
    narrow = simulate(reqs, samplers, policy(narrow_sc), settings(narrow_sc, link_of(narrow_sc)))
    both = [(w, n) for w, n in zip(wide, narrow, strict=True) if w.outcome == n.outcome == "ok"]
    assert len(both) > 0.95 * len(reqs)
    # the same shares on a quarter of the band: every image takes four times as long
    for w, n in both:
        assert n.bandwidth_share == w.bandwidth_share
        assert n.downlink_s == pytest.approx(4 * w.downlink_s, rel=1e-9)
        assert n.latency_s > w.latency_s
    assert np.mean([n.latency_s for _, n in both]) > np.mean([w.latency_s for w, _ in both])
    # the narrow band's latency is the wide one's plus three more downlinks
    mean_gap = np.mean([n.latency_s - w.latency_s for w, n in both])
    assert mean_gap == pytest.approx(3 * np.mean([w.downlink_s for w, _ in both]), rel=1e-6)


def test_the_deadline_counts_the_downlink(samplers) -> None:
    """A deadline the cluster meets but the slow downlink does not: the request misses it."""
    sc = radio_scenario(deadline_s=1.0)  # about half the images miss it
    reqs = Workload.from_scenario(sc).requests()
    link = link_of(sc)
    results = simulate(reqs, samplers, policy(sc), settings(sc, link))
    plain = simulate(reqs, samplers, policy(sc), settings(sc, None))
    missed = 0
    for res, base, req in zip(results, plain, reqs, strict=True):
        assert base.outcome == "ok"  # without the radio every request meets its deadline
        total = base.latency_s + link.tx_time_s(res.bandwidth_share, req.snr_db)
        if res.outcome == "ok":
            assert res.latency_s == pytest.approx(total, rel=1e-9) and res.latency_s <= req.deadline_s
        else:
            assert res.outcome == "DEADLINE_EXCEEDED" and total > req.deadline_s
            missed += 1
    assert 0 < missed < len(reqs)  # the test sees both outcomes


def test_simulate_without_snr_is_refused(samplers) -> None:
    sc = radio_scenario(deadline_s=1000.0)
    reqs = [dataclasses.replace(r, snr_db=None) for r in Workload.from_scenario(sc).requests(3)]
    with pytest.raises(ValueError, match="snr_db"):
        simulate(reqs, samplers, policy(sc), settings(sc, link_of(sc)))


def run_episode(reqs, samplers, sc: Scenario, downlink: Downlink | None, fraction=None) -> tuple[SimEpisode, list]:
    """:func:`simulate`'s loop on a :class:`SimEpisode` (random caching, fixed steps); ``fraction(i)`` overrides
    the band fraction of request ``i`` (None: the policy's default). Returns the episode and each request's view."""
    caching, allocation = build_policies("random", "fixed-steps", seed=1)
    episode = SimEpisode(reqs, samplers, policy(sc), settings(sc, downlink))
    views = []
    while not episode.done:
        while episode.frame_due():
            episode.end_frame(caching.plan(episode.frame_view()))
        _, view, info = episode.request_view()
        views.append(view)
        choice = allocation.allocate(view, info)
        share = fraction(episode.index) if fraction is not None else None
        episode.allocate(Allocation(choice.agent, choice.steps, choice.reason, share))
    return episode, views


def test_views_carry_the_band_and_the_measurements_leave_the_downlink_out(samplers) -> None:
    sc = radio_scenario(deadline_s=1000.0)
    reqs = Workload.from_scenario(sc).requests()
    link = link_of(sc)
    radio, radio_views = run_episode(reqs, samplers, sc, link)
    plain, plain_views = run_episode(reqs, samplers, sc, None)
    assert all(r.outcome == "ok" for r in radio.results + plain.results)
    # the views: the free band of the request's slot before it is served, and how far into its slot it came
    granted: dict[int, float] = defaultdict(float)
    for req, view, res in zip(reqs, radio_views, radio.results, strict=True):
        assert view.band_free == pytest.approx(1.0 - granted[req.slot], abs=1e-12)
        assert view.slot_elapsed == pytest.approx(req.arrival_s % 1.0, abs=1e-9)
        assert res.bandwidth_share == pytest.approx(SHARE * view.band_free, abs=1e-12)  # None: the policy's share
        granted[req.slot] += res.bandwidth_share
    assert all(v.band_free is None for v in plain_views)
    # the measured means (what latency-aware policies read) are the cluster's own: no downlink in them
    measured = radio.cluster.measured.snapshot()
    assert measured and measured == plain.cluster.measured.snapshot()
    assert any(r.downlink_s > 0.05 for r in radio.results)  # ... though the downlinks are not negligible


def test_an_allocation_chooses_its_band_fraction(samplers) -> None:
    sc = radio_scenario(deadline_s=1000.0)
    reqs = Workload.from_scenario(sc).requests(10)
    link = link_of(sc)
    fractions = np.random.default_rng(0).uniform(0.0, 1.0, len(reqs))
    assert len(reqs) > 30
    episode, views = run_episode(reqs, samplers, sc, link, fraction=lambda i: float(fractions[i]))
    for i, (req, view, res) in enumerate(zip(reqs, views, episode.results, strict=True)):
        expected = min(max(fractions[i], link.min_share), 1.0) * view.band_free
        assert res.bandwidth_share == pytest.approx(expected, abs=1e-12)
        if res.outcome == "ok":
            assert res.downlink_s == pytest.approx(link.tx_time_s(expected, req.snr_db), rel=1e-9)
        else:  # a sliver of the band (a deep fade): its image cannot arrive in time
            assert res.outcome == "DEADLINE_EXCEEDED" and link.tx_time_s(expected, req.snr_db) > req.deadline_s
    assert sum(r.outcome == "ok" for r in episode.results) > len(reqs) / 2
