"""The modeled radio downlink: Shannon transmission time and the per-slot band ledger."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from orchestrator.radio import MIN_USABLE_SHARE, Downlink, SlotBand, spectral_efficiency


def test_tx_time_matches_a_hand_computation() -> None:
    # 0 dB: snr = 1, log2(1 + 1) = 1 bit/s/Hz; 125 000 bytes = 1e6 bits on 1 MHz -> 1 s on the whole band
    link = Downlink(bandwidth_hz=1e6, image_bytes=125_000)
    assert spectral_efficiency(0.0) == pytest.approx(1.0, abs=1e-12)
    assert link.tx_time_s(1.0, 0.0) == pytest.approx(1.0, rel=1e-12)
    assert link.tx_time_s(0.5, 0.0) == pytest.approx(2.0, rel=1e-12)
    assert link.tx_time_s(0.25, 0.0) == pytest.approx(4.0, rel=1e-12)
    # 10 log10(3) dB: snr = 3, log2(4) = 2 bit/s/Hz -> half the time
    assert spectral_efficiency(10 * math.log10(3.0)) == pytest.approx(2.0, rel=1e-12)
    assert link.tx_time_s(1.0, 10 * math.log10(3.0)) == pytest.approx(0.5, rel=1e-12)
    # 10 log10(15) dB: snr = 15, log2(16) = 4 bit/s/Hz; 2 MHz and 10 kB: 8e4 / (0.2 * 2e6 * 4) = 0.05 s
    other = Downlink(bandwidth_hz=2e6, image_bytes=10_000)
    assert other.tx_time_s(0.2, 10 * math.log10(15.0)) == pytest.approx(8 * 10_000 / (0.2 * 2e6 * 4), rel=1e-12)


@pytest.mark.parametrize("snr_db", [-20.0, -3.0, 0.0, 7.5, 20.0, 45.0])
@pytest.mark.parametrize("share", [1e-6, 0.05, 0.3, 1.0])
def test_tx_time_is_the_formula(share: float, snr_db: float) -> None:
    link = Downlink(bandwidth_hz=5e6, image_bytes=3_136)
    expected = 8 * 3_136 / (share * 5e6 * math.log2(1 + 10 ** (snr_db / 10)))
    assert link.tx_time_s(share, snr_db) == pytest.approx(expected, rel=1e-12)


def test_tx_time_falls_as_snr_and_share_grow() -> None:
    link = Downlink(bandwidth_hz=1e6, image_bytes=50_000)
    snrs = np.linspace(-30.0, 60.0, 91)
    times = [link.tx_time_s(0.5, float(s)) for s in snrs]
    assert all(a > b for a, b in itertools.pairwise(times))
    ses = [spectral_efficiency(float(s)) for s in snrs]
    assert all(0 < a < b for a, b in itertools.pairwise(ses))
    shares = np.linspace(0.01, 1.0, 50)
    times = [link.tx_time_s(float(s), 10.0) for s in shares]
    assert all(a > b for a, b in itertools.pairwise(times))
    # the time is inversely proportional to the share
    assert link.tx_time_s(0.1, 10.0) == pytest.approx(10 * link.tx_time_s(1.0, 10.0), rel=1e-12)


def test_empty_share_never_sends() -> None:
    link = Downlink(bandwidth_hz=1e6, image_bytes=1)
    for share in (0.0, -0.5, MIN_USABLE_SHARE / 2):
        assert link.tx_time_s(share, 30.0) == math.inf
    assert math.isfinite(link.tx_time_s(MIN_USABLE_SHARE, 30.0))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bandwidth_hz": 0.0}, "bandwidth_hz"),
        ({"bandwidth_hz": -1e6}, "bandwidth_hz"),
        ({"bandwidth_hz": math.inf}, "bandwidth_hz"),
        ({"bandwidth_hz": math.nan}, "bandwidth_hz"),
        ({"image_bytes": 0}, "image_bytes"),
        ({"image_bytes": -5}, "image_bytes"),
        ({"min_share": 0.0}, "min_share"),
        ({"min_share": -0.1}, "min_share"),
        ({"min_share": 1.5}, "min_share"),
        ({"min_share": math.nan}, "min_share"),
    ],
)
def test_downlink_validation_names_the_field(kwargs: dict, field: str) -> None:
    args = {"bandwidth_hz": 1e6, "image_bytes": 1000, "min_share": 0.05} | kwargs
    with pytest.raises(ValueError, match=f"^{field}:"):
        Downlink(**args)


def test_downlink_accepts_the_bounds() -> None:
    assert Downlink(1.0, 1, 1.0).min_share == 1.0
    assert Downlink(1e6, 1000).min_share == 0.05  # the default floor


def test_grants_of_a_slot_never_exceed_the_band() -> None:
    rng = np.random.default_rng(20240611)
    for trial in range(300):
        min_share = float(rng.choice([0.01, 0.05, 0.2, 1.0]))
        band = SlotBand(min_share)
        slot, total = 0, 0.0
        for _ in range(int(rng.integers(1, 40))):
            if rng.random() < 0.15:  # a new slot: everything is free again
                slot += int(rng.integers(1, 3))
                total = 0.0
            # fractions beyond [0, 1] are clipped by the ledger
            fraction = float(rng.choice([rng.uniform(0.0, 1.0), rng.uniform(-2.0, 3.0), 0.0, 1.0]))
            before = band.free(slot)
            share = band.grant(slot, fraction)
            assert 0.0 <= share <= before + 1e-15, (trial, fraction, before, share)
            # the formula: min(max(fraction, min_share), 1) of what was free
            assert share == pytest.approx(min(max(fraction, min_share), 1.0) * before, abs=1e-15)
            total += share
            assert total <= 1.0 + 1e-9, (trial, total)
            assert band.free(slot) == pytest.approx(1.0 - total, abs=1e-9)


def test_min_share_floor() -> None:
    band = SlotBand(0.1)
    assert band.grant(0, 0.0) == pytest.approx(0.1)  # the floor, of the whole band
    assert band.grant(0, 0.01) == pytest.approx(0.1 * 0.9)  # the floor of what is left
    assert band.free(0) == pytest.approx(0.9 * 0.9)
    assert band.grant(0, 0.5) == pytest.approx(0.5 * 0.81)  # above the floor: the fraction asked for
    assert band.grant(0, 7.0) == pytest.approx(0.405)  # above 1: all that is left
    assert band.free(0) == pytest.approx(0.0, abs=1e-15)
    assert band.grant(0, 1.0) == pytest.approx(0.0, abs=1e-15)  # nothing left in this slot


def test_new_slot_frees_the_band_and_past_slots_have_none() -> None:
    band = SlotBand(0.05)
    assert band.free(0) == 1.0 and band.free(3) == 1.0  # nothing granted yet
    assert band.grant(3, 0.75) == pytest.approx(0.75)
    assert band.free(3) == pytest.approx(0.25)
    assert band.free(4) == 1.0  # a later slot is untouched (free() does not advance the ledger)
    assert band.free(3) == pytest.approx(0.25)
    assert band.free(2) == 0.0  # a past slot
    assert band.grant(2, 0.5) == 0.0  # a past slot gets nothing ...
    assert band.free(3) == pytest.approx(0.25)  # ... and takes nothing from the current one
    assert band.grant(5, 0.4) == pytest.approx(0.4)  # a later slot starts with the whole band
    assert band.free(5) == pytest.approx(0.6)
    assert band.free(3) == 0.0 and band.grant(3, 1.0) == 0.0  # slot 3 is over now
    assert band.free(5) == pytest.approx(0.6)


@pytest.mark.parametrize("fraction", [math.nan, math.inf, -math.inf])
def test_non_finite_fraction_is_refused(fraction: float) -> None:
    band = SlotBand(0.05)
    band.grant(0, 0.5)
    with pytest.raises(ValueError, match="fraction"):
        band.grant(0, fraction)
    assert band.free(0) == pytest.approx(0.5)  # the refused grant took nothing
