"""Estimates for devices we have no measurements of: a measured profile scaled by relative throughput.

The rule (:func:`profiles.profile.scale_profile`): the per-step compute scales by the ratio of the
devices' peak dense FP32 throughput (``profiles/devices/*.toml``), the fixed per-request overhead
and the model's quality are kept, and energy is the target's ``[sim] max_power_w`` (else its
``power.max_w``) times the scaled compute. Small models are overhead- and launch-bound on GPUs, so
the estimate is optimistic for them; it is labelled ``scaled-estimate`` wherever it goes.
"""

from __future__ import annotations

from pathlib import Path

from profiles.devices import DeviceProfile, load_device, throughput_ratio
from profiles.profile import MODELS_DIR, ModelProfile, load_profile, scale_profile


def power_under_load_w(device: DeviceProfile) -> float:
    """The device's power under load, W: its ``[sim] max_power_w``, else its ``power.max_w``."""
    return device.sim.max_power_w if device.sim is not None else device.power.max_w


def estimate_profile(model: str, source: str, target: str, models_dir: Path = MODELS_DIR) -> tuple[ModelProfile, float]:
    """``model``'s measured profile on ``source`` scaled to ``target``; returns (estimate, throughput ratio)."""
    measured = load_profile(model, source, models_dir)
    if measured.is_estimate:
        raise ValueError(f"{model} on {source} is itself an estimate; scale a measured profile")
    src, dst = load_device(source), load_device(target)
    ratio = throughput_ratio(src, dst)
    return scale_profile(measured, ratio, target, power_under_load_w(dst)), ratio
