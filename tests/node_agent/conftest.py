"""Fixtures of the node-agent tests: synthetic model profiles for the simulated device's timing.

Fixtures:
    model_profile: ``model_profile.toml(model, points, device=..., method=...)`` writes the text of a
        ``profile-<device>.toml`` with the fields the agent reads; ``model_profile.point(steps,
        compute_s, std_s, batch=, energy_j=)`` builds one ``[[points]]`` entry.
"""

from __future__ import annotations

import types

import pytest


def profile_point(
    steps: int, compute_s: float, std_s: float = 0.0, batch: int = 1, energy_j: float | None = None
) -> dict[str, object]:
    """One ``[[points]]`` entry: compute time mean and std (s), energy (J) when given."""
    point: dict[str, object] = {"steps": steps, "batch": batch, "compute_s": compute_s, "compute_s_std": std_s}
    if energy_j is not None:
        point["energy_j"] = energy_j
    return point


def profile_toml(model: str, points: list[dict[str, object]], device: str = "testdev", method: str = "measured") -> str:
    """A ``profile-<device>.toml`` (see profiles/profile.py) with end-to-end fields the agent does not use."""
    lines = [f'schema = 1\nmodel = "{model}"\ndevice = "{device}"\n', f'[provenance]\nmethod = "{method}"\n']
    for point in points:
        lines += ["[[points]]", *(f"{k} = {v!r}" for k, v in point.items()), "latency_s = 1.0\nvalid = true\n"]
    return "\n".join(lines)


@pytest.fixture(scope="session")
def model_profile() -> types.SimpleNamespace:
    return types.SimpleNamespace(toml=profile_toml, point=profile_point)
