"""Tests of orchestrator/report_figures.py: profile figures, the fits table, the fidelity figure, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from orchestrator import report_figures
from orchestrator.report_figures import draw_report, read_fidelity
from profiles.fit import fit_affine, fit_quality
from profiles.profile import QUALITY_METRICS, LinearFitTable, ModelProfile, QualityFitTable

STEPS = (1, 2, 4, 8, 16, 32, 64)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROFILE_FIGURES = ("quality_vs_steps.png", "latency_vs_steps.png", "energy_vs_steps.png")


def _profile(model: str, device: str, *, method: str, energy: bool, batches=(1,), rate: float = 1.0) -> ModelProfile:
    """A synthetic profile: latency affine in steps (+ noise), quality saturating, energy 20 W x compute."""
    rng = np.random.default_rng(len(model) + len(device))
    points = []
    for batch in batches:
        for s in STEPS:
            lat = (0.01 + 0.002 * batch * s / rate) * (1 + 0.02 * rng.standard_normal())
            point = {
                "steps": s, "batch": batch, "requests": 30, "valid": s != 64, "reason": "" if s != 64 else "cap hit",
                "latency_s": lat, "latency_s_std": 0.05 * lat, "latency_s_p50": lat, "latency_s_p99": 1.2 * lat,
                "compute_s": 0.8 * lat, "energy_j": 20.0 * 0.8 * lat if energy else None,
                "energy_j_std": 0.5 * lat if energy else None, "energy_source": "nvml" if energy else "unavailable",
            }  # fmt: skip
            if batch == 1:
                acc = min(0.97, 0.2 + 0.15 * s) - 0.01 * rng.random()
                point.update(
                    quality_images=100, accuracy=acc, class_prob=0.9 * acc, class_prob_std=0.1,
                    fd=30.0 * np.exp(-0.4 * s) + 1.0 + 0.1 * rng.random(),
                )  # fmt: skip
            points.append(point)
    latency, energy_fits = [], []
    for batch in batches:
        at = [p for p in points if p["batch"] == batch]
        f = fit_affine([p["steps"] for p in at], [p["latency_s"] for p in at])
        latency.append(LinearFitTable(batch=batch, a=f.a, b=f.b, r2=f.r2, residual_std=f.residual_std, n=f.n))
        if energy:
            f = fit_affine([p["steps"] for p in at], [p["energy_j"] for p in at])
            energy_fits.append(LinearFitTable(batch=batch, a=f.a, b=f.b, r2=f.r2, residual_std=f.residual_std, n=f.n))
    scored = [p for p in points if p["batch"] == 1]
    quality = {
        m: QualityFitTable.of(
            fit_quality([p["steps"] for p in scored], [p[m] for p in scored], m, higher_is_better=h, ceiling=1.0)
        )
        for m, h in QUALITY_METRICS.items()
    }
    return ModelProfile.build(
        schema=1, model=model, device=device,
        provenance={"method": method, "scaled_from": "jetson-orin" if method != "measured" else "",
                    "date": "2025-01-01T00:00:00+00:00", "seed": 0, "device_kind": "gpu", "device_name": device},
        load={"load_time_s": 0.1, "mem_bytes": 1000}, points=points,
        fits={"latency": [t.model_dump() for t in latency], "energy": [t.model_dump() for t in energy_fits],
              "quality": {k: v.model_dump() for k, v in quality.items()}},
    )  # fmt: skip


def _spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, Figure]:
    """File name -> the Figure saved under it (the real save still runs)."""
    seen: dict[str, Figure] = {}
    save = report_figures._save

    def spy(fig: Figure, path: Path) -> Path:
        seen[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(report_figures, "_save", spy)
    return seen


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, Figure]:
    return _spy(monkeypatch)


def _texts(fig: Figure) -> list[str]:
    """Every text of the figure: suptitle, titles, annotations, legend labels."""
    out = [fig.get_suptitle()] + [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [ax.get_title()] + [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return out


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    """Two profiles (measured with energy at batch 1 and 4; estimate without energy), drawn once.

    Returns (folder, measured profile, estimate profile, files written, file name -> Figure).
    """
    root = tmp_path_factory.mktemp("profiles")
    measured = _profile("mlp-s", "jetson-orin", method="measured", energy=True, batches=(1, 4))
    estimate = _profile("resmlp-l", "rpi5", method="scaled-estimate", energy=False, rate=0.25)
    measured.write(root / "mlp-s" / "profile-jetson-orin.toml")
    estimate.write(root / "resmlp-l" / "profile-rpi5.toml")
    with pytest.MonkeyPatch.context() as mp:
        figures = _spy(mp)
        written = draw_report(root, None)
    return root, measured, estimate, written, figures


def test_profile_figures_and_fits_table(report) -> None:
    root, measured, estimate, written, figures = report
    out = root / "figures"
    assert {p.name for p in written} == {*PROFILE_FIGURES, "fits.md"}
    for name in PROFILE_FIGURES:
        assert _is_png(out / name), name
    table = (out / "fits.md").read_text()
    for p in (measured, estimate):
        for t in p.fits.latency:
            assert f"{t.r2:.4f}" in table
        for q in p.fits.quality.values():
            assert f"exp R² {q.r2_exp:.4f}" in table and f"saturating R² {q.r2_saturating:.4f}" in table
    assert f"{measured.energy_fit(1).r2:.4f}" in table
    assert "scaled-estimate (from jetson-orin)" in table
    row = next(line for line in table.splitlines() if line.startswith("| resmlp-l | rpi5 | scaled-estimate"))
    assert "unavailable" in row
    # Latency: one panel per batch size, R² in the legend.
    lat = _texts(figures["latency_vs_steps.png"])
    assert any("batch 4" in t for t in lat) and any("batch 1" in t for t in lat)
    assert any(f"R²={measured.latency_fit(4).r2:.4f}" in t for t in lat)


def test_estimate_is_labelled_and_dashed(report) -> None:
    figures = report[-1]
    fig = figures["latency_vs_steps.png"]
    ax = fig.axes[0]  # batch 1: both profiles
    labels = [t for t in _texts(fig) if "resmlp-l @ rpi5" in t]
    assert labels and all("(estimate" in t for t in labels)
    styles = {line.get_color(): line.get_linestyle() for line in ax.get_lines() if len(line.get_xdata()) == 200}
    assert sorted(styles.values()) == ["-", "--"]
    quality = _texts(figures["quality_vs_steps.png"])
    assert sum("(chosen)" in t for t in quality) == 2 * len(QUALITY_METRICS)  # one chosen curve per profile/metric
    assert any(t.strip().startswith("saturating fit, R²=") for t in quality)
    assert any(t.strip().startswith("exp decay fit, R²=") for t in quality)


def test_energy_unavailable_is_said_not_drawn(tmp_path: Path, figures: dict[str, Figure]) -> None:
    _profile("resmlp-l", "rpi5", method="measured", energy=False).write(tmp_path / "profile-rpi5.toml")
    draw_report(tmp_path, None)
    assert _is_png(tmp_path / "figures" / "energy_vs_steps.png")
    fig = figures["energy_vs_steps.png"]
    assert "energy unavailable on rpi5 (no power source)" in _texts(fig)
    assert all(not ax.get_lines() and not ax.collections for ax in fig.axes)  # no zeros plotted


def test_energy_mixed_plots_only_measured(report) -> None:
    figures = report[-1]
    fig = figures["energy_vs_steps.png"]
    texts = _texts(fig)
    assert any("energy unavailable on rpi5" in t for t in texts)
    assert not any("resmlp-l" in t for t in texts)
    assert any("[nvml]" in t for t in texts)
    ys = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for ax in fig.axes for line in ax.get_lines()])
    assert np.all(ys[np.isfinite(ys)] > 0)


def test_empty_dir_names_the_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        draw_report(tmp_path, None)
    assert not (tmp_path / "figures").exists()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing"))):
        draw_report(tmp_path / "missing", None)


def test_invalid_profile_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "profile-bad.toml").write_text("model = 'x'\n")
    with pytest.raises(ValueError, match=r"profile-bad\.toml"):
        draw_report(tmp_path, None)


FIDELITY = {
    "policies": {
        "greedy": {
            "live": {"mean_latency_s": 0.50, "energy_j_per_request": None, "mean_quality": 0.80},
            "sim": {"mean_latency_s": 0.53, "energy_j_per_request": 4.0, "mean_quality": 0.78},
            "gap": {"mean_latency_s": 0.06, "energy_j_per_request": None, "mean_quality": -0.025},
        },
        "d3pg": {
            "live": {"mean_latency_s": 0.40, "energy_j_per_request": 5.0, "mean_quality": 0.90},
            "sim": {"mean_latency_s": 0.60, "energy_j_per_request": 5.2, "mean_quality": 0.88},
        },
    }
}


def test_fidelity_figure(tmp_path: Path, figures: dict[str, Figure]) -> None:
    (tmp_path / "fidelity.json").write_text(json.dumps(FIDELITY))
    written = draw_report(tmp_path, tmp_path / "figs")
    assert [p.name for p in written] == ["fidelity.png"]  # no profiles: no profile figures
    assert _is_png(tmp_path / "figs" / "fidelity.png")
    texts = _texts(figures["fidelity.png"])
    assert "unavailable" in texts and "gap unavailable" in texts  # live energy of greedy is null
    assert "gap +50.0%" in texts  # d3pg latency: computed from live and sim
    assert any("10%" in t for t in texts)
    heights = [b.get_height() for ax in figures["fidelity.png"].axes for b in ax.patches]
    assert 0.0 not in heights  # the missing value is not a zero bar


def test_read_fidelity_defensive(tmp_path: Path) -> None:
    path = tmp_path / "fidelity.json"
    entry = {"name": "fixed", "live": {"mean_latency_s": 2.0}, "sim": {"latency_s_mean": 2.5, "mean_quality": "n/a"}}
    path.write_text(json.dumps({"goal": 0.05, "policies": [entry]}))
    table, goal = read_fidelity(path)
    assert goal == 0.05
    assert table["fixed"]["mean_latency_s"] == (2.0, 2.5, pytest.approx(0.25))
    assert table["fixed"]["mean_quality"] == (None, None, None)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"fidelity\.json"):
        read_fidelity(path)
    path.write_text(json.dumps({"policies": {}}))
    with pytest.raises(ValueError, match="no policy"):
        read_fidelity(path)


def test_cli_report(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app

    (tmp_path / "fidelity.json").write_text(json.dumps(FIDELITY))
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "cli")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "fidelity.png" in result.output and _is_png(tmp_path / "cli" / "fidelity.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["report", str(empty)], terminal_width=200)
    assert result.exit_code == 2 and "nothing to draw" in result.output
