"""The seeded workload (Zipf popularity, Poisson arrivals, slots, cap) and the per-request utility."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np
import pytest

from orchestrator.utility import class_probabilities, per_image_quality, request_utility
from orchestrator.workload import RADIO_STREAM, USER_STREAM, Workload, WorkloadError, zipf_pmf
from profiles.scenario import Scenario, load_scenario

MODELS = ("m-a", "m-b", "m-c", "m-d", "m-e")


def scenario(**over: object) -> Scenario:
    """A long-horizon test scenario: 5 models, 4 users, ~10 requests/s, no drift unless asked."""
    values: dict = {
        "name": "test",
        "seed": 7,
        "timing": {"slot_s": 0.5, "frame_slots": 10, "slots": 4000},
        "models": {"names": list(MODELS), "rank": ["m-c", "m-a", "m-e", "m-b", "m-d"], "popularity": {"zipf_s": 1.2}},
        "users": {"count": 4, "rate_per_s": [1.0, 4.0], "w_latency": 0.3},
        "requests": {"max_per_run": 100_000},
        "utility": {"w_energy": 0.02},
    }
    for key, value in over.items():
        section, _, field = key.partition("__")
        if field:
            values.setdefault(section, {})[field] = value
        else:
            values[section] = value
    return Scenario.build(**values)


@pytest.fixture(scope="module")
def long_run() -> tuple[Workload, list]:
    wl = Workload.from_scenario(scenario())
    return wl, wl.requests()


def chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_zipf_frequencies_match_pmf(long_run: tuple[Workload, list]) -> None:
    wl, reqs = long_run
    assert len(reqs) > 10_000
    order = wl.popularity(0)
    assert order == ("m-c", "m-a", "m-e", "m-b", "m-d")  # the configured rank, no drift
    counts = Counter(r.model for r in reqs)
    observed = np.array([counts[name] for name in order], dtype=np.float64)
    assert counts.most_common(1)[0][0] == "m-c"
    # chi-square, 4 degrees of freedom: 18.47 is the 0.999 quantile
    assert chi_square(observed, zipf_pmf(5, 1.2)) < 18.47
    # ... and the test has power: a wrong exponent or a uniform choice is far off
    assert chi_square(observed, zipf_pmf(5, 1.0)) > 100
    assert chi_square(observed, np.full(5, 0.2)) > 1000
    probs = wl.model_probabilities(0)
    assert probs["m-c"] == pytest.approx(1 / sum(k**-1.2 for k in range(1, 6)))
    assert sum(probs.values()) == pytest.approx(1.0)


def test_zipf_pmf_known_values() -> None:
    np.testing.assert_allclose(zipf_pmf(3, 1.0), np.array([6, 3, 2]) / 11)
    np.testing.assert_allclose(zipf_pmf(4, 0.0), np.full(4, 0.25))


def test_labels_uniform(long_run: tuple[Workload, list]) -> None:
    _, reqs = long_run
    counts = np.bincount([r.label for r in reqs], minlength=10).astype(np.float64)
    assert len(counts) == 10
    assert chi_square(counts, np.full(10, 0.1)) < 27.88  # 9 dof, 0.999 quantile


def test_poisson_rates_per_user(long_run: tuple[Workload, list]) -> None:
    wl, reqs = long_run
    horizon_s = 4000 * 0.5
    rates = [u.rate_per_s for u in wl.users]
    assert all(1.0 <= r <= 4.0 for r in rates) and len(set(rates)) == 4  # drawn per user
    for user in wl.users:
        times = np.array([r.arrival_s for r in reqs if r.user == user.user])
        expected = user.rate_per_s * horizon_s
        assert abs(len(times) - expected) < 5 * math.sqrt(expected), (user, len(times))
        gaps = np.diff(times)
        assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.08)  # exponential: CV = 1
    assert len(reqs) == pytest.approx(wl.expected_requests(), rel=0.05)


def test_user_parameters(long_run: tuple[Workload, list]) -> None:
    wl, reqs = long_run
    assert all(u.w_latency == 0.3 for u in wl.users)  # fixed value
    assert all(u.w_energy == 0.02 for u in wl.users)  # omitted: utility.w_energy
    assert all(u.quality_floor is None for u in wl.users)
    for r in reqs[:100]:
        user = wl.users[r.user]
        assert (r.w_latency, r.w_energy, r.quality_floor) == (user.w_latency, user.w_energy, user.quality_floor)
        assert r.deadline_s == 3.0


def test_slots_and_frames_consistent(long_run: tuple[Workload, list]) -> None:
    _, reqs = long_run
    assert [r.id for r in reqs] == list(range(len(reqs)))
    times = [r.arrival_s for r in reqs]
    assert times == sorted(times) and times[0] >= 0 and times[-1] < 4000 * 0.5
    for r in reqs:
        assert r.slot == math.floor(r.arrival_s / 0.5)
        assert r.slot * 0.5 <= r.arrival_s < (r.slot + 1) * 0.5
        assert r.frame == r.slot // 10


def test_drift_shifts_popularity() -> None:
    wl = Workload.from_scenario(scenario(models={"names": ["x", "y", "z"], "popularity": {"drift_frames": 2}}))
    assert wl.popularity(0) == wl.popularity(1) == ("x", "y", "z")
    assert wl.popularity(2) == ("y", "z", "x")
    assert wl.popularity(4) == ("z", "x", "y")
    assert wl.popularity(6) == ("x", "y", "z")
    reqs = wl.requests(600)  # 30 frames of 10 slots
    for epoch in range(3):
        counts = Counter(r.model for r in reqs if (r.frame // 2) % 3 == epoch)
        assert counts.most_common(1)[0][0] == wl.popularity(2 * epoch)[0]


def test_seed_determinism() -> None:
    sc = scenario()
    a = Workload.from_scenario(sc).requests(200)
    assert a == Workload.from_scenario(sc, seed=7).requests(200)  # scenario.seed is the default
    assert a == Workload.from_scenario(sc).requests(200)
    b = Workload.from_scenario(sc, seed=8).requests(200)
    assert a != b
    assert [r.arrival_s for r in a[:10]] != [r.arrival_s for r in b[:10]]
    for user in range(4):  # each draw depends on the seed: arrivals, user parameters and content
        assert [r.label for r in a if r.user == user][:20] != [r.label for r in b if r.user == user][:20]
    assert Workload.from_scenario(sc, seed=8).users != Workload.from_scenario(sc).users
    # a shorter run is a prefix of a longer one (policies run for different lengths agree)
    longer = Workload.from_scenario(sc).requests(400)
    assert longer[: len(a)] == a and longer[len(a)].slot >= 200


def test_cap_raises_not_truncates() -> None:
    wl = Workload.from_scenario(scenario())
    n = len(wl.requests(100))
    exact = Workload.from_scenario(scenario(requests={"max_per_run": n}))
    assert len(exact.requests(100)) == n
    over = Workload.from_scenario(scenario(requests={"max_per_run": n - 1}))
    with pytest.raises(WorkloadError, match=r"requests\.max_per_run"):
        over.requests(100)
    with pytest.raises(WorkloadError, match=r"timing\.slots"):
        wl.requests(0)


def test_shipped_scenario_workload() -> None:
    sc = load_scenario("t2drl")
    wl = Workload.from_scenario(sc)
    reqs = wl.requests()
    assert 60 <= len(reqs) <= 300  # a few requests/s over the default 60 slots
    assert len(reqs) <= sc.requests.max_per_run
    assert {r.model for r in reqs} <= set(sc.models.names)
    assert all(0.0 <= r.quality_floor <= 0.5 for r in reqs)
    assert all(0.2 <= r.w_latency <= 1.0 and 0.0 <= r.w_energy <= 0.05 for r in reqs)


def test_request_utility_known_values() -> None:
    res = request_utility(0.8, 0.5, 2.0, w_latency=0.4, w_energy=0.05)
    assert res.value == pytest.approx(0.8 - 0.2 - 0.1)
    assert (res.latency_term, res.energy_term) == (pytest.approx(0.2), pytest.approx(0.1))
    assert res.energy_available and res.floor_met is None
    assert request_utility(1.0, 0.0, 0.0, 1.0, 1.0).value == 1.0


def test_request_utility_energy_unavailable_is_flagged() -> None:
    res = request_utility(0.8, 0.5, None, w_latency=0.4, w_energy=0.05)
    assert res.value == pytest.approx(0.6)  # energy term omitted, not an invented 0 J
    assert res.energy_term is None and res.energy_available is False
    assert request_utility(0.8, 0.5, 0.0, 0.4, 0.05).energy_available is True  # measured 0 J differs


def test_request_utility_floor_and_validation() -> None:
    assert request_utility(0.6, 0.1, 1.0, 0.1, 0.1, quality_floor=0.5).floor_met is True
    assert request_utility(0.4, 0.1, 1.0, 0.1, 0.1, quality_floor=0.5).floor_met is False
    for kwargs, name in [
        ({"quality": 1.5}, "quality"),
        ({"latency_s": -1.0}, "latency_s"),
        ({"energy_j": float("nan")}, "energy_j"),
        ({"w_latency": -0.1}, "w_latency"),
        ({"w_energy": float("inf")}, "w_energy"),
    ]:
        args = {"quality": 0.5, "latency_s": 1.0, "energy_j": 1.0, "w_latency": 0.1, "w_energy": 0.1} | kwargs
        with pytest.raises(ValueError, match=f"^{name}:"):
            request_utility(**args)


def test_per_image_quality() -> None:
    probs = class_probabilities(np.array([0.0, math.log(3.0)]))
    np.testing.assert_allclose(probs, [0.25, 0.75])
    assert per_image_quality(probs, 1) == pytest.approx(0.75)
    big = class_probabilities(np.array([[1000.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))  # stable softmax
    np.testing.assert_allclose(per_image_quality(big, np.array([0, 2])), [1.0, 1 / 3])
    with pytest.raises(ValueError, match="sum to 1"):
        per_image_quality(np.array([2.0, 0.0]), 0)  # logits are not probabilities
    with pytest.raises(ValueError, match="label"):
        per_image_quality(probs, 2)
    with pytest.raises(ValueError, match="label"):
        per_image_quality(big, 0)  # a batch needs one label per image


RADIO = {"bandwidth_hz": 1e6, "image_bytes": 4096, "snr_db": [0.0, 20.0], "fading": "rayleigh"}


def test_radio_snr_per_request_and_other_draws_unchanged() -> None:
    plain = Workload.from_scenario(scenario())
    radio = Workload.from_scenario(scenario(radio=RADIO))
    a, b = plain.requests(400), radio.requests(400)
    assert len(a) == len(b) > 500
    assert all(r.snr_db is None for r in a) and all(u.snr_db is None for u in plain.users)  # no radio, no SNR
    assert all(r.snr_db is not None and math.isfinite(r.snr_db) for r in b)
    # the radio only adds draws: users, arrivals, models, labels and weights are those of the plain run
    assert [dataclasses.replace(u, snr_db=None) for u in radio.users] == list(plain.users)
    assert [dataclasses.replace(r, snr_db=None) for r in b] == a
    # its means lie in [low, high], drawn per user
    means = [u.snr_db for u in radio.users]
    assert all(0.0 <= m <= 20.0 for m in means) and len(set(means)) == len(means)
    # the documented streams: means on user-parameter stream 4, fading on a radio stream per user
    assert means == pytest.approx(np.random.default_rng((7, USER_STREAM, 4)).uniform(0.0, 20.0, 4).tolist())
    for user in radio.users:
        mine = [r.snr_db for r in b if r.user == user.user]
        fading = np.random.default_rng((7, RADIO_STREAM, user.user)).exponential(1.0, len(mine))
        assert mine == pytest.approx((user.snr_db + 10 * np.log10(fading)).tolist(), abs=1e-9)
    # the radio draws depend on the seed as the others do
    other = Workload.from_scenario(scenario(radio=RADIO), seed=8)
    assert [u.snr_db for u in other.users] != means


def test_radio_without_fading_reports_the_users_mean() -> None:
    wl = Workload.from_scenario(scenario(radio=RADIO | {"fading": "none"}))
    reqs = wl.requests(200)
    assert reqs
    for r in reqs:
        assert r.snr_db == wl.users[r.user].snr_db
    fixed = Workload.from_scenario(scenario(radio=RADIO | {"fading": "none", "snr_db": 17.5}))
    assert all(u.snr_db == 17.5 for u in fixed.users)
    assert all(r.snr_db == 17.5 for r in fixed.requests(50))


def test_rayleigh_fading_has_unit_mean_power(long_run: tuple[Workload, list]) -> None:
    _, plain = long_run
    wl = Workload.from_scenario(scenario(radio=RADIO))
    reqs = wl.requests()
    assert len(reqs) == len(plain) > 10_000  # the same arrivals as the plain long run
    gains = np.array([10 ** ((r.snr_db - wl.users[r.user].snr_db) / 10) for r in reqs])
    assert gains.min() > 0
    # |h|^2 ~ Exp(1): mean 1, sd 1, so the sample mean's sd is 1/sqrt(n) (< 0.01 here): 5 sd of slack
    n = len(gains)
    assert abs(gains.mean() - 1.0) < 5 / math.sqrt(n)
    # an exponential's sd equals its mean; the sample sd's own sd is about sqrt(2/n) (fourth moment 9)
    assert abs(gains.std() - 1.0) < 5 * math.sqrt(2 / n)
    # P(|h|^2 <= x) = 1 - exp(-x): the fading is exponential, not only of the right mean
    for x in (0.1, 0.5, 1.0, 2.0):
        p = 1 - math.exp(-x)
        assert abs((gains <= x).mean() - p) < 5 * math.sqrt(p * (1 - p) / n), x
    # per user too: the fading draws are independent of the user's mean
    for user in wl.users:
        g = np.array([10 ** ((r.snr_db - user.snr_db) / 10) for r in reqs if r.user == user.user])
        assert abs(g.mean() - 1.0) < 5 / math.sqrt(len(g)), user
    # Rayleigh fading changes the SNR of every request: not the user's mean
    assert np.mean([r.snr_db == wl.users[r.user].snr_db for r in reqs]) < 0.01


def test_fading_draws_are_clipped_to_the_snrs_a_request_may_report() -> None:
    from orchestrator.radio import SNR_MAX_DB, SNR_MIN_DB

    for mean in (SNR_MAX_DB, SNR_MIN_DB):  # fades reach ~+10 dB above and far below the mean
        snrs = [r.snr_db for r in Workload.from_scenario(scenario(radio=RADIO | {"snr_db": mean})).requests(400)]
        assert all(SNR_MIN_DB <= s <= SNR_MAX_DB for s in snrs)
        assert snrs.count(mean) > len(snrs) / 10  # many were clipped to the bound: the test saw clipping
