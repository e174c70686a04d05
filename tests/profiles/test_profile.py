"""Model profile schema: fits computed from points, round trip through TOML, errors naming file and field."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from profiles.profile import ModelProfile, ProfileError, load_profile, profile_path, scale_profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

A_S, B_S = 0.002, 0.0005  # the synthetic profile's latency = A + B * steps (tests/conftest.py)


@pytest.fixture(name="make_profile")
def make_profile_fixture(synthetic_profile):
    def make(energy_w: float | None = None, batches: tuple[int, ...] = (1,)) -> ModelProfile:
        return synthetic_profile("m", "dev", energy_w=energy_w, batches=batches)

    return make


def test_from_points_fits_known_lines_and_quality(make_profile) -> None:
    profile = make_profile(energy_w=10.0, batches=(1, 4))
    lat = profile.latency_fit(1)
    assert lat.a == pytest.approx(A_S, rel=1e-6) and lat.b == pytest.approx(B_S, rel=1e-6) and lat.r2 > 0.999
    assert profile.latency_fit(4).b == pytest.approx(4 * B_S, rel=1e-6)
    energy = profile.energy_fit(1)
    assert energy is not None and energy.b == pytest.approx(10.0 * B_S, rel=1e-6)
    for metric in ("accuracy", "class_prob", "fd"):
        fit = profile.quality_fit(metric)
        assert max(fit.r2_exp, fit.r2_saturating) >= 0.9
        assert fit.chosen == ("exp" if fit.r2_exp >= fit.r2_saturating else "saturating")
    assert profile.quality_fit("class_prob").predict(32.0) == pytest.approx(0.95, abs=0.02)
    with pytest.raises(KeyError, match="batch 2"):
        profile.latency_fit(2)


def test_no_energy_means_no_energy_fit(make_profile) -> None:
    profile = make_profile()
    assert profile.energy_fit(1) is None
    assert all(p.energy_j is None for p in profile.points)


def test_toml_round_trip(tmp_path: Path, make_profile) -> None:
    profile = make_profile(energy_w=5.0)
    path = profile_path("m", "dev", tmp_path)
    profile.write(path, header="a header line\nsecond")
    text = path.read_text()
    assert text.startswith("# a header line\n# second\n")
    assert load_profile("m", "dev", tmp_path) == profile
    assert "energy_j" not in tomllib.loads(make_profile().to_toml())["points"][0]  # None is left out


def _write(tmp_path: Path, mutate, profile: ModelProfile) -> Path:
    doc = tomllib.loads(profile.to_toml())
    mutate(doc)
    import tomli_w

    path = tmp_path / "profile-dev.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(extra_key=1), "extra_key: unknown field"),
        (lambda d: d["load"].pop("load_time_s"), "load.load_time_s: missing"),
        (lambda d: d["points"][0].update(latency_s="fast"), "points.0.latency_s"),
        (lambda d: d["points"][1].update(latency_s=-1.0), "points.1.latency_s: must be > 0"),
        (lambda d: d["points"][0].update(accuracy=1.5), "points.0.accuracy"),
        (lambda d: d["points"][2].pop("fd"), "give all or none"),
        (lambda d: d["fits"]["quality"]["fd"].update(chosen="exp", r2_exp=0.1), "chosen: must be the form"),
        (lambda d: d["fits"]["quality"].update(psnr=d["fits"]["quality"]["fd"]), "unknown metric 'psnr'"),
        (lambda d: d["points"].append(dict(d["points"][0])), "appears more than once"),
        (lambda d: d["provenance"].update(method="guessed"), "provenance.method"),
        (lambda d: d["fits"]["latency"][0].update(batch=3), "fits.latency: batch 3 has no points"),
    ],
)
def test_bad_profile_names_file_and_field(tmp_path: Path, mutate, field: str, make_profile) -> None:
    path = _write(tmp_path, mutate, make_profile())
    with pytest.raises(ProfileError) as info:
        ModelProfile.load_file(path)
    assert str(path) in str(info.value)
    assert field in str(info.value)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "profile-x.toml"
    bad.write_text("model = [unclosed")
    with pytest.raises(ProfileError, match=r"profile-x\.toml"):
        ModelProfile.load_file(bad)
    with pytest.raises(ProfileError, match="run `edgetb profile`"):
        load_profile("m", "nowhere", tmp_path)
    with pytest.raises(ProfileError, match=r"model: '\.\./x'"):
        profile_path("../x", "dev")


def test_scale_profile_is_a_labelled_estimate(make_profile) -> None:
    profile = make_profile(batches=(1, 2))
    fast = scale_profile(profile, 4.0, "faster", power_w=20.0)
    assert fast.is_estimate and fast.provenance.scaled_from == "dev" and fast.device == "faster"
    lat, src = fast.latency_fit(1), profile.latency_fit(1)
    assert lat.a == pytest.approx(src.a) and lat.b == pytest.approx(src.b / 4.0)
    for p, q in zip(profile.points, fast.points, strict=True):
        assert q.compute_s == pytest.approx(p.compute_s / 4.0)
        assert q.latency_s == pytest.approx(p.latency_s - 0.75 * p.compute_s)
        assert q.energy_j == pytest.approx(20.0 * q.compute_s) and q.energy_source == "modeled"
        assert q.class_prob == p.class_prob
    assert fast.energy_fit(1) is not None
    assert scale_profile(profile, 2.0, "other").energy_fit(1) is None
    with pytest.raises(ValueError, match="ratio"):
        scale_profile(profile, math.nan, "x")
