"""The simulated device's timing model (node_agent.sim_timing) on synthetic profiles: numbers, draws, errors."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pytest

from node_agent.runtime.errors import Cancelled, DeadlineExceeded
from node_agent.sim_timing import (
    DeviceProfileRef,
    ModelTiming,
    SimTiming,
    SimTimingError,
    read_device_profile,
    truncated_normal,
)

DEVICE = "testdev"


@pytest.fixture()
def point(model_profile):
    return model_profile.point


@pytest.fixture()
def write_profile(model_profile):
    def write(folder: Path, model: str, points: list[dict], **kw: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"profile-{kw.get('device', DEVICE)}.toml"
        path.write_text(model_profile.toml(model, points, **kw))
        return path

    return write


@pytest.fixture()
def timing(tmp_path, point, write_profile) -> ModelTiming:
    """Batch 1 at 10/20/40 steps (a kink at 20), batch 4 at 10/20 with energy."""
    pts = [point(10, 0.1, 0.01), point(20, 0.2, 0.03), point(40, 0.3, 0.05)]
    pts += [point(10, 0.3, 0.02, batch=4, energy_j=6.0), point(20, 0.5, 0.04, batch=4, energy_j=10.0)]
    path = write_profile(tmp_path / "m", "m", pts, method="scaled-estimate")
    return ModelTiming.from_file(path, "m", DEVICE)


def test_interpolation_and_extrapolation(timing, tmp_path, point, write_profile) -> None:
    def at(steps: int, batch: int = 1) -> tuple[float, float]:
        est = timing.estimate(steps, batch)
        return est.compute_s, est.compute_s_std

    assert at(20) == (0.2, 0.03)  # a measured point: that point
    assert at(40) == (0.3, 0.05)
    assert at(15) == pytest.approx((0.15, 0.02))  # between: linear in steps, mean and std
    assert at(30) == pytest.approx((0.25, 0.04))  # the segment 20..40, not a global line
    assert at(50) == pytest.approx((0.35, 0.05))  # beyond: the two nearest points, nearest std
    assert at(4) == pytest.approx((0.04, 0.01))
    # Unprofiled batches: the nearest profiled one, scaled by batch / that batch (ties: the larger).
    assert at(20, 2) == pytest.approx((0.4, 0.06))  # nearest 1, x2
    assert at(20, 3) == pytest.approx((0.375, 0.03))  # nearest 4, x3/4
    assert at(15, 8) == pytest.approx((0.8, 0.06))  # nearest 4, x2
    assert timing.estimate(20, 3).batch == 4
    # Energy only where every point of the batch has it; interpolated like the compute time.
    assert timing.estimate(20, 1).energy_j is None
    partial = [point(10, 0.1, energy_j=1.0), point(20, 0.2)]
    path = write_profile(tmp_path / "p", "p", partial)
    assert ModelTiming.from_file(path, "p", DEVICE).estimate(10, 1).energy_j is None  # not every point: none
    assert timing.estimate(15, 4).energy_j == pytest.approx(8.0)
    assert timing.estimate(30, 4).energy_j == pytest.approx(14.0)
    assert timing.estimate(20, 5).energy_j == pytest.approx(12.5)
    assert timing.label == f"simulated-device:{DEVICE}:compute drawn from profile-{DEVICE}.toml (scaled-estimate)"


def test_extrapolated_mean_is_cut_at_zero_and_batch_ties_go_up(tmp_path, point, write_profile) -> None:
    pts = [point(10, 0.1, 0.01), point(20, 0.3, 0.02), point(10, 0.2, batch=4), point(20, 0.4, batch=4)]
    timing = ModelTiming.from_file(write_profile(tmp_path / "m", "m", pts), "m", DEVICE)
    est = timing.estimate(1, 1)
    assert est.compute_s == 0.0 and est.compute_s_std == 0.01
    est = timing.estimate(10, 2)  # 1 and 4 are not equally near; ...
    assert est.batch == 1 and est.compute_s == pytest.approx(0.2)
    pts = [point(10, 0.1), point(20, 0.3), point(10, 0.3, batch=3), point(20, 0.6, batch=3)]
    timing = ModelTiming.from_file(write_profile(tmp_path / "m", "m", pts), "m", DEVICE)
    est = timing.estimate(10, 2)  # ... 1 and 3 are: the larger
    assert est.batch == 3 and est.compute_s == pytest.approx(0.2)


def test_draws_are_seeded_and_follow_the_profile(tmp_path, point, write_profile) -> None:
    folder = tmp_path / "m"
    write_profile(folder, "m", [point(10, 0.1, 0.01), point(20, 0.2, 0.03)])
    ref = DeviceProfileRef(DEVICE, tmp_path / "dev.toml", 20.0)

    def drawn(seed: int, n: int) -> list[float]:
        sim = SimTiming(ref, 20.0, seed)
        sim.load("m", folder)
        return [sim.draw("m", 20, 1).compute_s for _ in range(n)]  # type: ignore[union-attr]

    draws = drawn(3, 20_000)
    assert draws[:500] == drawn(3, 500)  # same seed, same sequence
    assert draws[:100] != drawn(4, 100)
    # One uniform per request through the inverse CDF of the normal truncated at 0.
    rng = np.random.default_rng(3)
    assert draws[:5] == [truncated_normal(0.2, 0.03, float(rng.random())) for _ in range(5)]
    assert statistics.fmean(draws) == pytest.approx(0.2, abs=0.001)  # 6.7 sd from 0: truncation negligible
    assert statistics.stdev(draws) == pytest.approx(0.03, rel=0.03)


def test_truncated_normal_never_negative() -> None:
    rng = np.random.default_rng(0)
    draws = [truncated_normal(0.01, 0.1, float(rng.random())) for _ in range(5000)]
    assert min(draws) >= 0.0 and max(draws) > 0.1
    assert truncated_normal(0.2, 0.0, 0.9) == 0.2


def test_energy_rules(tmp_path, timing) -> None:
    folder = tmp_path / "m"  # the fixture's profile: batch 1 without energy, batch 4 with
    sim = SimTiming(DeviceProfileRef(DEVICE, tmp_path / "testdev.toml", 20.0), 20.0, 0)
    sim.load("m", folder)
    d = sim.draw("m", 20, 1)
    assert d is not None and d.energy_j == pytest.approx(20.0 * d.compute_s)
    assert d.energy_method.startswith("modeled: max_power_w x modeled compute (20 W")
    d = sim.draw("m", 20, 4)
    assert d is not None and d.energy_j == pytest.approx(10.0 * d.compute_s / 0.5)  # profile's mean power x time
    assert "profile energy x modeled compute" in d.energy_method and "scaled-estimate" in d.energy_method
    none = SimTiming(DeviceProfileRef(DEVICE, tmp_path / "testdev.toml", None), None, 0)
    none.load("m", folder)
    d = none.draw("m", 20, 1)
    assert d is not None and d.energy_j is None and d.energy_method.startswith("unavailable")
    assert sim.draw("other", 20, 1) is None  # no profile: no draw


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda t: t.replace("compute_s = 0.2\n", "compute_s = -0.2\n"), "points[1].compute_s: must be >= 0"),
        (lambda t: t.replace('model = "m"', 'model = "other"'), "model: is 'other', expected 'm'"),
        (lambda t: t.replace('device = "testdev"', 'device = "jetson"'), "device: is 'jetson'"),
        (lambda t: t.replace('method = "measured"', 'method = "guessed"'), "provenance.method: must be one of"),
        (lambda t: t.replace("steps = 20", "steps = 0"), "points[1].steps: must be"),
        (lambda t: t.replace("steps = 20", "steps = 10"), "points[1]: (steps, batch) = (10, 1) appears more than once"),
        (lambda t: t.replace("compute_s_std = 0.01", 'compute_s_std = "x"'), "points[0].compute_s_std: must be a"),
        (lambda t: t.replace("compute_s = 0.1", "compute_sec = 0.1"), "points[0].compute_s: missing"),
        (lambda t: t.replace("batch = 1\ncompute_s = 0.2", "batch = 2\ncompute_s = 0.2"), "batch 1 has one point"),
        (lambda t: t.split("[[points]]")[0], "points: must be an array of at least 2 tables"),
        (lambda t: t + "\n[[[", "profile-testdev.toml: "),
    ],
)  # fmt: skip
def test_malformed_profiles_name_the_file_and_field(tmp_path, point, write_profile, edit, field) -> None:
    path = write_profile(tmp_path / "m", "m", [point(10, 0.1, 0.01), point(20, 0.2, 0.03)])
    path.write_text(edit(path.read_text()))
    with pytest.raises(SimTimingError) as info:
        ModelTiming.from_file(path, "m", DEVICE)
    assert str(info.value).startswith(str(path)) and field in str(info.value)


def test_device_profile_reference(tmp_path) -> None:
    path = tmp_path / "dev.toml"
    path.write_text('[device]\nname = "x"\nidle_power_w = 1\nmax_power_w = 2\nmem_total_bytes = 10\n')
    assert read_device_profile(path) is None  # no top-level name: not a named device profile
    path.write_text('name = "jetson-orin-nano"\n\n[sim]\nidle_power_w = 3\nmax_power_w = 15\nmem_total_bytes = 10\n')
    assert read_device_profile(path) == DeviceProfileRef("jetson-orin-nano", path, 15.0)
    path.write_text('name = "bad name/.."\n')
    with pytest.raises(SimTimingError, match=r"dev\.toml: name: "):
        read_device_profile(path)
    path.write_text('name = "d"\n[sim]\nmax_power_w = -1\n')
    with pytest.raises(SimTimingError, match=r"dev\.toml: sim\.max_power_w: must be >= 0"):
        read_device_profile(path)


def test_hold_waits_out_the_modeled_time_counts_overruns_and_respects_deadlines(tmp_path, point, write_profile) -> None:
    sim = SimTiming(DeviceProfileRef(DEVICE, tmp_path / "dev.toml", 10.0), 10.0, 0)

    def _held(sim: SimTiming, compute_s: float, **kw):
        write_profile(tmp_path / "h", "h", [point(1, compute_s), point(2, compute_s)])
        sim.load("h", tmp_path / "h")
        draw = sim.draw("h", 1, 1)
        assert draw is not None and draw.compute_s == compute_s
        args = {"deadline_s": None, "after_s": 0.0, "stop": lambda: False, "busy": None, **kw}
        return sim.held(None, draw, **args)

    held = _held(sim, 0.15)
    start = time.monotonic()
    held.end(held.begin())
    assert time.monotonic() - start >= 0.15 and 0.1 < held.hold_s <= 0.15 and not held.overrun

    held = _held(sim, 0.0)  # the real compute is always longer: nothing held, counted
    held.end(held.begin())
    assert held.hold_s == 0.0 and held.overrun and sim.overruns == 1
    assert "real compute was longer, not held" in held.label

    held = _held(sim, 0.5, deadline_s=time.monotonic() + 0.3)
    handle = held.begin()
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"modeled compute time of 0\.500 s"):
        held.end(handle)
    assert time.monotonic() - start < 0.1  # answered at once, not after holding
    held = _held(sim, 0.3, deadline_s=time.monotonic() + 0.4, after_s=0.2)  # the WAN delay still to come counts
    with pytest.raises(DeadlineExceeded):
        held.end(held.begin())

    stopped = _held(sim, 5.0, stop=lambda: True)
    start = time.monotonic()
    with pytest.raises(Cancelled):
        stopped.end(stopped.begin())
    assert time.monotonic() - start < 1.0

    class Meter:
        def __init__(self) -> None:
            self.intervals: list[str] = []

        def start(self) -> int:
            self.intervals.append("start")
            return 1

        def end(self, token: int) -> None:
            self.intervals.append("end")

    meter = Meter()
    held = _held(sim, 0.05, busy=meter)
    held.end(held.begin())
    assert meter.intervals == ["start", "end"]  # the hold is busy time of the simulated device
