"""Figures of a run, as PNG (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def sample_grid(rows: Mapping[str, np.ndarray], path: Path, value_range: tuple[float, float] = (-1.0, 1.0)) -> Path:
    """One row of images per entry (e.g. "digits-mlp-s, 8 steps"), one column per image.

    Args:
        rows: row label -> float images [N, 1, H, W] in ``value_range``.
        path: the PNG to write.
        value_range: pixel range mapped to black..white.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = max(images.shape[0] for images in rows.values())
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(0.6 * n_cols + 2.2, 0.62 * len(rows) + 0.3), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < images.shape[0]:
                ax.imshow(images[c, 0], cmap="gray_r", vmin=value_range[0], vmax=value_range[1])
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.tight_layout(pad=0.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def latency_cdf(latencies: Mapping[str, Sequence[float]], path: Path) -> Path:
    """Empirical CDF of served requests' latency, one curve per policy.

    Args:
        latencies: policy name -> latencies of its served requests, s.
        path: the PNG to write.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, values in latencies.items():
        x = np.sort(np.asarray(values, dtype=np.float64))
        if x.size:
            ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=f"{name} (n={x.size})")
    ax.set_xlabel("latency, s")
    ax.set_ylabel("share of served requests")
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("latency CDF per policy")
    return _save(fig, path)


def utility_per_slot(utilities: Mapping[str, Sequence[tuple[int, float]]], slots: int, path: Path) -> Path:
    """Mean utility of the requests arriving in each slot, one line per policy (slots without requests: gaps).

    Args:
        utilities: policy name -> (slot, utility) per request.
        slots: number of slots of the run.
        path: the PNG to write.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, pairs in utilities.items():
        total = np.zeros(slots)
        count = np.zeros(slots)
        for slot, value in pairs:
            if 0 <= slot < slots:
                total[slot] += value
                count[slot] += 1
        mean = np.full(slots, np.nan)
        np.divide(total, count, out=mean, where=count > 0)
        ax.plot(np.arange(slots), mean, marker=".", label=name)
    ax.set_xlabel("slot")
    ax.set_ylabel("mean utility per request")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("utility per slot")
    return _save(fig, path)


def power_timeline(store: Path, path: Path) -> Path:
    """Power per agent over time, one panel per policy run, from a merged store's ``telemetry`` table.

    Args:
        store: SQLite file with ``telemetry`` rows tagged by ``run_policy``.
        path: the PNG to write. When no agent measured power, the title says so (no zeros plotted).
    """
    import sqlite3

    db = sqlite3.connect(store)
    try:
        rows = db.execute(
            "SELECT run_policy, agent, t_unix_s, power_w, power_source FROM telemetry ORDER BY t_unix_s"
        ).fetchall()
    finally:
        db.close()
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {}
    sources: set[str] = set()
    for policy, agent, t_s, power_w, source in rows:
        series = runs.setdefault(policy, {})
        sources.add(str(source))
        if power_w is not None and t_s is not None:
            series.setdefault(agent, []).append((t_s, power_w))
    plt = _pyplot()
    n = max(1, len(runs))
    fig, axes = plt.subplots(n, 1, figsize=(6.4, 1.8 * n + 0.8), squeeze=False, sharex=False)
    measured = any(series for series in runs.values())
    for ax, (policy, series) in zip(axes[:, 0], runs.items(), strict=False):
        t0 = min((pts[0][0] for pts in series.values()), default=0.0)
        for agent, pts in sorted(series.items()):
            arr = np.asarray(pts)
            ax.plot(arr[:, 0] - t0, arr[:, 1], label=agent, lw=0.8)
        ax.set_ylabel("W")
        ax.set_title(policy, fontsize=8)
        if series:
            ax.legend(fontsize=6)
        else:
            ax.text(0.5, 0.5, "no power samples", ha="center", va="center", transform=ax.transAxes)
    axes[-1][0].set_xlabel("time since first sample, s")
    title = (
        "power per agent" if measured else f"power unavailable (power source: {', '.join(sorted(sources)) or 'none'})"
    )
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
