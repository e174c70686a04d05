"""``edgetb report DIR``: figures of measured model profiles (and of a simulator fidelity check), as PNG.

Inputs, found under ``DIR``:

* every ``profile-<device>.toml`` below it (recursively; schema: :mod:`profiles.profile`);
* ``DIR/fidelity.json``, when there, written by the simulator fidelity check (see :func:`read_fidelity`).

Outputs (default folder ``DIR/figures``), all PNG (matplotlib, Agg canvas, no pyplot state):

* ``quality_vs_steps.png``: accuracy, class probability, Fréchet distance (log y) against steps;
  measured points and both fitted curves (chosen solid, the other dotted), R² of each in the legend;
* ``latency_vs_steps.png``: mean end-to-end latency (error bars: std) and the affine fit, one panel
  per batch size;
* ``energy_vs_steps.png``: the same for energy; devices without an energy source are named in a
  note ("energy unavailable on ..."), never plotted as zeros;
* ``fits.md``: the fitted parameters and R² of every profile;
* ``fidelity.png``: live vs simulated mean latency, energy per request and mean quality per policy,
  with the relative gap and the 10 % goal.

Colour is the model, the marker the device; a ``scaled-estimate`` profile is drawn with hollow
markers and dashed lines and says "(estimate)" in the legend.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from profiles.profile import QUALITY_METRICS, ModelProfile

#: Quality metric -> (panel title, y-axis label, log y).
_QUALITY_AXES: dict[str, tuple[str, str, bool]] = {
    "accuracy": ("evaluator accuracy", "accuracy (fraction, 0-1)", False),
    "class_prob": ("class probability (error bars: std over images)", "class probability (0-1)", False),
    "fd": ("Fréchet distance (lower is better)", "Fréchet distance (evaluator feature units)", True),
}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_DPI = 110
#: The simulator fidelity goal: |sim - live| / live within this share.
FIDELITY_GOAL = 0.10


# --- finding and styling the profiles --------------------------------------------------------------


def find_profiles(directory: Path) -> list[ModelProfile]:
    """Every ``profile-*.toml`` under ``directory`` (recursively), loaded, sorted by (model, device).

    Raises:
        profiles.profile.ProfileError: a file is invalid (the message names the file and the field).
    """
    paths = sorted(Path(directory).rglob("profile-*.toml"))
    return sorted((ModelProfile.load_file(p) for p in paths), key=lambda p: (p.model, p.device, p.is_estimate))


class _Style:
    """Colour per model, marker per device, hollow and dashed for estimates."""

    def __init__(self, profiles: Sequence[ModelProfile]) -> None:
        from matplotlib import colormaps

        cmap = colormaps["tab10"]
        self.colour = {m: cmap(i % 10) for i, m in enumerate(sorted({p.model for p in profiles}))}
        self.marker = {d: _MARKERS[i % len(_MARKERS)] for i, d in enumerate(sorted({p.device for p in profiles}))}

    def label(self, p: ModelProfile) -> str:
        if p.is_estimate:
            return f"{p.model} @ {p.device} (estimate from {p.provenance.scaled_from or '?'})"
        return f"{p.model} @ {p.device} (measured)"

    def points(self, p: ModelProfile) -> dict[str, Any]:
        colour = self.colour[p.model]
        return {
            "color": colour, "marker": self.marker[p.device], "linestyle": "none", "markersize": 5,
            "markerfacecolor": "none" if p.is_estimate else colour, "capsize": 2, "elinewidth": 0.8,
        }  # fmt: skip

    def line(self, p: ModelProfile, chosen: bool = True) -> dict[str, Any]:
        style = ("--" if p.is_estimate else "-") if chosen else ":"
        return {"color": self.colour[p.model], "linestyle": style, "linewidth": 1.3 if chosen else 1.0}


def _log2_steps(ax: Axes) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("denoising steps (log2)")
    ax.grid(alpha=0.3, which="both")


def _log_y(ax: Axes) -> None:
    """Log y axis with plain numbers (0.2, not 2x10^-1); minor ticks 2 and 5 labelled over <= 2 decades.

    Call it once the y limits are final.
    """
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    few = 0 < lo < hi and hi / lo <= 100

    def minor(v: float, _: object) -> str:
        lead = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        return f"{v:g}" if few and lead in (2, 5) else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _legend(ax: Axes, entries: list[tuple[Any, str]]) -> None:
    """Legend under the axes in drawing order (each profile's points, then its fits); never hides data."""
    if entries:
        handles, labels = zip(*entries, strict=True)
        ax.legend(handles, labels, fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)


def _ylim_to(ax: Axes, values: list[float], log: bool) -> None:
    """Y range set by the measured values (padded), so that an extrapolated curve cannot squash them."""
    finite = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
    if not finite:
        return
    lo, hi = min(finite), max(finite)
    if log:
        ax.set_ylim(lo / 1.6, hi * 1.6)
    else:
        pad = 0.08 * (hi - lo) or 0.05 * abs(hi) or 0.05
        ax.set_ylim(lo - pad, hi + pad)


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)


def _positive(y: np.ndarray) -> np.ndarray:
    """``y`` with non-positive values masked (NaN), for log axes."""
    return np.where(y > 0, y, np.nan)


def _grid(steps: Sequence[int]) -> np.ndarray:
    lo, hi = (min(steps), max(steps)) if steps else (1, 128)
    return np.geomspace(lo, max(hi, lo + 1), 200)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path


# --- the figures -----------------------------------------------------------------------------------


def quality_figure(profiles: Sequence[ModelProfile], path: Path) -> Path:
    """Quality against steps, one panel per metric: measured points, both fits (chosen solid, other dotted)."""
    style = _Style(profiles)
    fig = Figure(figsize=(6.0 * len(QUALITY_METRICS), 6.5))
    for ax, metric in zip(fig.subplots(1, len(QUALITY_METRICS), squeeze=False)[0], QUALITY_METRICS, strict=True):
        title, ylabel, log_y = _QUALITY_AXES[metric]
        entries: list[tuple[Any, str]] = []
        measured: list[float] = []
        for p in profiles:
            pts = [q for q in p.points_at(1) if getattr(q, metric) is not None]
            fit = p.quality_fit(metric) if metric in p.fits.quality else None
            if not pts and fit is None:
                continue
            if pts:
                y = np.array([getattr(q, metric) for q in pts])
                yerr = np.array([q.class_prob_std for q in pts]) if metric == "class_prob" else None
                handle = ax.errorbar([q.steps for q in pts], y, yerr=yerr, **style.points(p))
                entries.append((handle, style.label(p)))
                measured += list(y) if yerr is None else list(np.clip(y - yerr, 0, None)) + list(y + yerr)
            else:
                entries.append((ax.plot([], [], **style.points(p))[0], style.label(p) + ", no points"))
            if fit is not None:
                s = _grid([q.steps for q in pts])
                r2 = {"exp": fit.r2_exp, "saturating": fit.r2_saturating}
                for form in sorted(r2, key=lambda f: f != fit.chosen):  # the chosen one first
                    y_fit = np.asarray(fit.predict_with(form, s), dtype=float)
                    name = "exp decay" if form == "exp" else "saturating"
                    tag = " (chosen)" if form == fit.chosen else ""
                    (line,) = ax.plot(s, _positive(y_fit) if log_y else y_fit, **style.line(p, form == fit.chosen))
                    entries.append((line, f"   {name} fit, R²={r2[form]:.3f}{tag}"))
        _log2_steps(ax)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        _ylim_to(ax, measured, log_y)
        if log_y and entries:
            _log_y(ax)
        if not entries:
            _note(ax, f"no {metric} measured in these profiles")
        _legend(ax, entries)
    fig.suptitle("quality vs denoising steps (batch 1): measured points and fitted curves", fontsize=11)
    return _save(fig, path)


def _batches(profiles: Sequence[ModelProfile], energy: bool) -> list[int]:
    batches = set()
    for p in profiles:
        batches |= {q.batch for q in p.points if not energy or q.energy_j is not None}
        batches |= {t.batch for t in (p.fits.energy if energy else p.fits.latency)}
    return sorted(batches)


def _has_energy(p: ModelProfile) -> bool:
    return bool(p.fits.energy) or any(q.energy_j is not None for q in p.points)


def _unavailable_note(profiles: Sequence[ModelProfile]) -> str:
    """ "energy unavailable on <devices> (no power source)" for the profiles without energy ("" if none)."""
    parts = []
    for estimate, why in ((False, "no power source"), (True, "scaled estimate without a power figure")):
        devices = sorted({p.device for p in profiles if p.is_estimate == estimate and not _has_energy(p)})
        if devices:
            parts.append(f"{', '.join(devices)} ({why})")
    return f"energy unavailable on {'; '.join(parts)}" if parts else ""


def _cost_figure(profiles: Sequence[ModelProfile], path: Path, energy: bool) -> Path:
    """Latency (``energy=False``) or energy against steps, one panel per batch size."""
    style = _Style(profiles)
    what, unit, field = ("energy", "J", "energy_j") if energy else ("latency", "s", "latency_s")
    with_data = [p for p in profiles if not energy or _has_energy(p)]
    note = _unavailable_note(profiles) if energy else ""
    batches = _batches(with_data, energy)
    fig = Figure(figsize=(6.5 * max(1, len(batches)), 6.5))
    if not batches:  # no profile has energy: say so, plot nothing
        ax = fig.subplots()
        ax.set_axis_off()
        _note(ax, note)
        fig.suptitle(f"{what} vs denoising steps", fontsize=11)
        return _save(fig, path)
    for ax, batch in zip(fig.subplots(1, len(batches), squeeze=False)[0], batches, strict=True):
        entries: list[tuple[Any, str]] = []
        for p in with_data:
            pts = [q for q in p.points_at(batch) if getattr(q, field) is not None]
            if pts:
                source = ", ".join(sorted({q.energy_source for q in pts})) if energy else ""
                label = style.label(p) + (f" [{source}]" if source else "")
                y = np.array([getattr(q, field) for q in pts])
                yerr = np.array([getattr(q, f"{field}_std") or 0.0 for q in pts])
                entries.append((ax.errorbar([q.steps for q in pts], y, yerr=yerr, **style.points(p)), label))
                bad = [q for q in pts if not q.valid]
                if bad:
                    x_bad, y_bad = [q.steps for q in bad], [getattr(q, field) for q in bad]
                    (cross,) = ax.plot(x_bad, y_bad, "x", color="black", markersize=7)
                    entries.append((cross, "   not valid (cap hit before stable)"))
            fit = p.energy_fit(batch) if energy else next((t.fit() for t in p.fits.latency if t.batch == batch), None)
            if fit is not None:
                s = _grid([q.steps for q in pts])
                (line,) = ax.plot(s, _positive(np.asarray(fit.predict(s), dtype=float)), **style.line(p))
                entries.append((line, f"   fit {fit.a:.3g} {unit} + {fit.b:.3g} {unit}/step × s, R²={fit.r2:.4f}"))
        _log2_steps(ax)
        _log_y(ax)
        ax.set_ylabel(f"{'energy per request' if energy else 'mean end-to-end latency'} ({unit}, log)")
        ax.set_title(f"batch {batch} (error bars: std over requests)", fontsize=10)
        _legend(ax, entries)
    fig.suptitle(
        f"{what} vs denoising steps: measured mean and affine fit" + (f"\n{note}" if note else ""), fontsize=11
    )
    return _save(fig, path)


def latency_figure(profiles: Sequence[ModelProfile], path: Path) -> Path:
    """Mean latency against steps (error bars: std) and the affine fit, one panel per batch size."""
    return _cost_figure(profiles, path, energy=False)


def energy_figure(profiles: Sequence[ModelProfile], path: Path) -> Path:
    """Energy per request against steps and its fit; devices without energy are named, never drawn as 0."""
    return _cost_figure(profiles, path, energy=True)


def fits_table(profiles: Sequence[ModelProfile], path: Path) -> Path:
    """``fits.md``: latency/energy fits per batch size and quality fits per metric of every profile."""
    lines = [
        "# Profile fits",
        "",
        "Latency and energy: `y(s) = a + b * s` per batch size (s: denoising steps). Method `scaled-estimate`:",
        "an estimate scaled from another device's measurement, not a measurement (its R² values are those of",
        "the measurement it was scaled from).",
        "",
        "| model | device | method | batch | latency a (s) | latency b (s/step) | latency R² "
        "| energy a (J) | energy b (J/step) | energy R² |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    methods = {
        id(p): p.provenance.method + (f" (from {p.provenance.scaled_from})" if p.is_estimate else "") for p in profiles
    }
    for p in profiles:
        method = methods[id(p)]
        for t in p.fits.latency:
            e = p.energy_fit(t.batch)
            cells = f"{e.a:.6g} | {e.b:.6g} | {e.r2:.4f}" if e else "unavailable | unavailable | unavailable"
            lines.append(
                f"| {p.model} | {p.device} | {method} | {t.batch} | {t.a:.6g} | {t.b:.6g} | {t.r2:.4f} | {cells} |"
            )
    lines += [
        "",
        "Quality (batch 1): `exp` is `eps(s) = eps0 * exp(-c1 * s)` on the error (1 - value when higher is",
        "better), `saturating` is `y_sat + slope * min(s - s_sat, 0)`; R² on the metric values; chosen in bold.",
        "",
        "| model | device | method | " + " | ".join(QUALITY_METRICS) + " |",
        "|---|---|---|" + "---|" * len(QUALITY_METRICS),
    ]
    for p in profiles:
        cells = []
        for metric in QUALITY_METRICS:
            if metric not in p.fits.quality:
                cells.append("not measured")
                continue
            q = p.fits.quality[metric]
            exp, sat = f"exp R² {q.r2_exp:.4f}", f"saturating R² {q.r2_saturating:.4f}"
            cells.append(f"**{exp}**, {sat}" if q.chosen == "exp" else f"{exp}, **{sat}**")
        lines.append(f"| {p.model} | {p.device} | {methods[id(p)]} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")
    return path


# --- fidelity --------------------------------------------------------------------------------------

#: Fidelity metric -> (keys accepted in the summaries and the gap, axis label).
_FIDELITY_METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "mean_latency_s": (("mean_latency_s", "latency_s_mean", "latency_s"), "mean latency (s)"),
    "energy_j_per_request": (
        ("energy_j_per_request", "energy_per_request_j", "mean_energy_j", "energy_j"),
        "energy per request (J)",
    ),
    "mean_quality": (("mean_quality", "quality_mean", "quality"), "mean quality"),
}


def _number(table: Any, keys: Sequence[str]) -> float | None:
    """The first finite number under one of ``keys`` of ``table``; None when absent, null or not a number."""
    if not isinstance(table, dict):
        return None
    for key in keys:
        value = table.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def read_fidelity(path: Path) -> tuple[dict[str, dict[str, tuple[float | None, float | None, float | None]]], float]:
    """Read ``fidelity.json`` defensively.

    Read: ``policies`` (a mapping name -> entry, or a list of entries with ``name``/``policy``; without
    it, the top-level entries that have ``live`` or ``sim``); per entry the ``live`` and ``sim``
    summaries and the ``gap`` table, each keyed by the names in ``_FIDELITY_METRICS`` (aliases
    accepted). ``gap`` values are relative (0.1 = 10 %), signed or not; a missing gap is computed as
    ``(sim - live) / |live|`` when both are numbers. A top-level ``goal`` (or ``tolerance``) number
    overrides the 10 % goal. Anything null, absent or not a number is None ("unavailable").

    Returns:
        policy -> metric -> (live, sim, relative gap), and the goal (relative).

    Raises:
        ValueError: the file is not JSON, or holds no policy.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not readable as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'policies'")
    entries = data.get("policies")
    if isinstance(entries, list):
        entries = {str(e.get("name", e.get("policy", i))): e for i, e in enumerate(entries) if isinstance(e, dict)}
    if not isinstance(entries, dict):
        entries = {k: v for k, v in data.items() if isinstance(v, dict) and ("live" in v or "sim" in v)}
    out: dict[str, dict[str, tuple[float | None, float | None, float | None]]] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            continue
        row = {}
        for metric, (keys, _) in _FIDELITY_METRICS.items():
            live, sim = _number(entry.get("live"), keys), _number(entry.get("sim"), keys)
            gap = _number(entry.get("gap"), keys)
            if gap is None and live is not None and sim is not None and live != 0:
                gap = (sim - live) / abs(live)
            row[metric] = (live, sim, gap)
        out[str(name)] = row
    if not out:
        raise ValueError(f"{path}: no policy with 'live'/'sim' summaries found")
    goal = _number(data, ("goal", "tolerance"))
    return out, goal if goal is not None and goal > 0 else FIDELITY_GOAL


def fidelity_figure(source: Path, path: Path) -> Path:
    """Grouped bars, live vs sim, per policy for each metric; the relative gap above, the goal marked.

    The live bar carries a ±goal whisker (where the sim bar should end); the last panel shows |gap|
    per policy and metric against the goal line. Missing values are written "unavailable", not drawn.
    """
    table, goal = read_fidelity(source)
    names = list(table)
    x = np.arange(len(names))
    width = 0.38
    fig = Figure(figsize=(4.2 * (len(_FIDELITY_METRICS) + 1) + 0.3 * len(names), 5.5), layout="constrained")
    labelled: set[str] = set()

    def once(key: str, label: str) -> str | None:
        """``label`` the first time ``key`` is asked for (one legend entry each), else None."""
        if key in labelled:
            return None
        labelled.add(key)
        return label

    axes = fig.subplots(1, len(_FIDELITY_METRICS) + 1, squeeze=False)[0]
    for ax, (metric, (_, ylabel)) in zip(axes, _FIDELITY_METRICS.items(), strict=False):
        top = max((v for row in table.values() for v in row[metric][:2] if v is not None), default=1.0) or 1.0
        for i, name in enumerate(names):
            live, sim, gap = table[name][metric]
            bars = ((live, -width / 2, "tab:blue", "live"), (sim, width / 2, "tab:orange", "sim"))
            for value, dx, colour, label in bars:
                if value is None:
                    ax.text(i + dx, 0.02 * top, "unavailable", rotation=90, ha="center", va="bottom", fontsize=7)
                    continue
                ax.bar(i + dx, value, width, color=colour, label=once(f"{metric}:{label}", label))
            if live is not None:
                ax.errorbar(
                    i - width / 2, live, yerr=goal * abs(live), color="black", capsize=3, linewidth=0.8,
                    label=once(f"{metric}:goal", f"live ±{goal:.0%} (goal)"),
                )  # fmt: skip
            text = "gap unavailable" if gap is None else f"gap {gap:+.1%}"
            colour = "black" if gap is None or abs(gap) <= goal else "firebrick"
            ax.text(i, 1.12 * top, text, ha="center", va="bottom", fontsize=7, color=colour)
        ax.set_ylim(0, 1.3 * top)
        ax.set_xlim(-0.8, len(names) - 0.2)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel, fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.25), frameon=False)
    ax = axes[-1]
    span = width * 2 / len(_FIDELITY_METRICS)
    for k, (metric, (_, ylabel)) in enumerate(_FIDELITY_METRICS.items()):
        for i, name in enumerate(names):
            gap = table[name][metric][2]
            pos = i - width + (k + 0.5) * span
            if gap is None:
                ax.text(pos, 0.005, "unavailable", rotation=90, ha="center", va="bottom", fontsize=6)
            else:
                ax.bar(pos, abs(gap), span, color=f"C{k + 2}", label=once(f"gap:{metric}", ylabel))
    ax.axhline(goal, color="firebrick", linestyle="--", linewidth=1, label=f"goal {goal:.0%}")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_ylabel("|sim - live| / live")
    ax.set_title("relative gap", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.25), frameon=False)
    fig.suptitle(f"simulator fidelity: live vs sim per policy (goal: within {goal:.0%})", fontsize=11)
    return _save(fig, path)


# --- entry point -----------------------------------------------------------------------------------


def draw_report(directory: Path, out: Path | None = None) -> list[Path]:
    """Draw the figures of the profiles under ``directory`` (and of its ``fidelity.json``, and of T2DRL runs).

    Args:
        directory: a profiles folder (``profile-*.toml`` anywhere below it) or a run folder.
        out: where the files go; default ``directory / "figures"``.

    Returns:
        The files written.

    Raises:
        FileNotFoundError: ``directory`` does not exist.
        ValueError: nothing to draw under it, or an invalid profile / fidelity file (message names it).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    from orchestrator.report_t2drl import draw_t2drl_report, find_runs

    profiles = find_profiles(directory)
    fidelity = directory / "fidelity.json"
    if not profiles and not fidelity.is_file() and not find_runs(directory):
        raise ValueError(
            f"{directory}: nothing to draw (no profile-*.toml under it, no fidelity.json in it, "
            "no edgetb train --env t2drl result.json under it)"
        )
    out = Path(out) if out is not None else directory / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written = draw_t2drl_report(directory, out)
    if profiles:
        written += [
            quality_figure(profiles, out / "quality_vs_steps.png"),
            latency_figure(profiles, out / "latency_vs_steps.png"),
            energy_figure(profiles, out / "energy_vs_steps.png"),
            fits_table(profiles, out / "fits.md"),
        ]
    if fidelity.is_file():
        written.append(fidelity_figure(fidelity, out / "fidelity.png"))
    return written
