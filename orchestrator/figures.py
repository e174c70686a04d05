"""Figures of a run, as PNG (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Mapping
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
