"""Quality vs. denoising steps of the shipped digit models, measured without the agent runtime.

Samples with the ONNX files (ONNX Runtime), diffusers' ``DDIMScheduler`` (eta = 0) and classifier-free
guidance (conditional and unconditional halves as one batch of 2B: ``eps = eps_u + g (eps_c - eps_u)``),
then scores the images with ``profiles/quality.py``. Usage::

    python scripts/quality_curve.py                          # every model, steps 1..128, 50 per class
    python scripts/quality_curve.py --models digits-mlp-s --guidance 1 1.5 2 3 --steps 32
    python scripts/quality_curve.py --spacing leading         # the timesteps the agent's DDIM uses
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from diffusers import DDIMScheduler

from profiles.quality import Evaluator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class OnnxModel:
    """A shipped model opened for sampling.

    Attributes:
        spec: The parsed ``model.toml``.
        denoiser: Session of ``denoiser.onnx``.
        decoder: Session of ``decoder.onnx`` (latent models), else None.
    """

    spec: dict[str, Any]
    denoiser: ort.InferenceSession
    decoder: ort.InferenceSession | None

    @classmethod
    def open(cls, model_dir: Path, threads: int = 1) -> OnnxModel:
        """Open the model in ``model_dir`` with ``threads`` ONNX Runtime intra-op threads."""
        with open(model_dir / "model.toml", "rb") as f:
            spec = tomllib.load(f)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads

        def session(role: str) -> ort.InferenceSession:
            path = model_dir / spec["files"][role]
            return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

        return cls(spec, session("denoiser"), session("decoder") if "decoder" in spec["files"] else None)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) the denoiser works on."""
        s = self.spec["latent"] if self.spec["kind"] == "latent" else self.spec["image"]
        return s["channels"], s["height"], s["width"]


def train_alphas_cumprod(schedule: dict[str, Any]) -> np.ndarray:
    """alpha_bar_t [T] (float64) of a ``[schedule]`` table (linear or scaled_linear betas)."""
    n, b0, b1 = schedule["num_train_timesteps"], schedule["beta_start"], schedule["beta_end"]
    if schedule["beta_schedule"] == "linear":
        betas = np.linspace(b0, b1, n)
    elif schedule["beta_schedule"] == "scaled_linear":
        betas = np.linspace(b0**0.5, b1**0.5, n) ** 2
    else:
        raise ValueError(f"beta_schedule {schedule['beta_schedule']!r} not supported here")
    return np.cumprod(1.0 - betas)


def ddim_timesteps(steps: int, num_train_timesteps: int, spacing: str = "trailing") -> np.ndarray:
    """DDIM timesteps, int64 [steps], in sampling order (diffusers' ``timestep_spacing`` names).

    ``trailing``: ``round(T - i T / steps) - 1``, so every step count starts from pure noise at T-1.
    ``leading`` (diffusers' default, and the agent's scheduler): ``[(steps-1) k, ..., k, 0]`` with
    ``k = T // steps``; one step then starts at t = 0, i.e. treats pure noise as a clean image.
    """
    if spacing == "trailing":
        return np.round(np.arange(num_train_timesteps, 0, -num_train_timesteps / steps)).astype(np.int64) - 1
    if spacing == "leading":
        return np.arange(steps - 1, -1, -1, dtype=np.int64) * (num_train_timesteps // steps)
    raise ValueError(f"unknown timestep spacing {spacing!r}")


def ddim_step(x: np.ndarray, eps: np.ndarray, abar_t: float, abar_prev: float, clip: float | None) -> np.ndarray:
    """One deterministic DDIM update (eta = 0) from noise level ``abar_t`` to ``abar_prev``."""
    x0 = (x - np.sqrt(1.0 - abar_t) * eps) / np.sqrt(abar_t)
    if clip is not None:
        x0 = np.clip(x0, -clip, clip)
    return (np.sqrt(abar_prev) * x0 + np.sqrt(1.0 - abar_prev) * eps).astype(np.float32)


def sample(
    model: OnnxModel,
    labels: np.ndarray,
    steps: int,
    guidance: float,
    seed: int,
    clip_sample: bool | None = None,
    sampler: str = "numpy",
    spacing: str = "trailing",
) -> np.ndarray:
    """Generate one image per label with DDIM (eta = 0) and classifier-free guidance.

    Args:
        model: The opened model.
        labels: Class labels int64 [B].
        steps: Number of denoising steps (1..T).
        guidance: Guidance scale g (1.0 = conditional only).
        seed: Seed of the initial noise.
        clip_sample: Override the model's ``clip_sample`` (None: as in ``model.toml``).
        sampler: ``numpy``: each step goes to the noise level of the next timestep of the list.
            ``diffusers``: ``DDIMScheduler``, whose step goes to ``t - T // steps``; when ``steps``
            does not divide T that differs from the next timestep, and the leftover noise piles up
            with many steps (kept to show the effect).
        spacing: Timestep spacing, see :func:`ddim_timesteps`.

    Returns:
        Images float32 [B, C, H, W], clipped to the model's value range.
    """
    sch, cls = model.spec["schedule"], model.spec["classes"]
    clip = sch["clip_sample"] if clip_sample is None else clip_sample
    abar = train_alphas_cumprod(sch)
    timesteps = ddim_timesteps(steps, sch["num_train_timesteps"], spacing)
    scheduler = None
    if sampler == "diffusers":
        scheduler = DDIMScheduler(
            num_train_timesteps=sch["num_train_timesteps"],
            beta_start=sch["beta_start"],
            beta_end=sch["beta_end"],
            beta_schedule=sch["beta_schedule"],
            clip_sample=clip,
            clip_sample_range=sch["clip_sample_range"],
            timestep_spacing=spacing,
        )
        scheduler.set_timesteps(steps)
        timesteps = scheduler.timesteps.numpy()
    b = len(labels)
    x = np.random.default_rng(seed).standard_normal((b, *model.shape)).astype(np.float32)
    y = np.concatenate([labels, np.full(b, cls["null_label"])]).astype(np.int64)
    for i, t in enumerate(timesteps):
        tt = np.full(2 * b, int(t), dtype=np.int64)
        (eps,) = model.denoiser.run(["eps"], {"x": np.concatenate([x, x]), "t": tt, "y": y})
        eps = eps[b:] + guidance * (eps[:b] - eps[b:])
        if scheduler is not None:
            x = scheduler.step(torch.from_numpy(eps), int(t), torch.from_numpy(x)).prev_sample.numpy()
        else:
            abar_prev = abar[timesteps[i + 1]] if i + 1 < len(timesteps) else 1.0
            x = ddim_step(x, eps, abar[t], abar_prev, sch["clip_sample_range"] if clip else None)
    if model.decoder is not None:
        (x,) = model.decoder.run(["image"], {"z": (x / model.spec["latent"]["scale"]).astype(np.float32)})
    img = model.spec["image"]
    return np.clip(x, img["value_min"], img["value_max"]).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    """Print accuracy and Fréchet distance per model, step count and guidance scale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "profiles" / "models")
    parser.add_argument("--evaluator", type=Path, default=ROOT / "profiles" / "evaluator" / "digits")
    parser.add_argument("--models", nargs="*", help="model names (default: all in --models-dir)")
    parser.add_argument("--steps", type=int, nargs="*", default=[1, 2, 4, 8, 16, 32, 64, 128])
    parser.add_argument("--guidance", type=float, nargs="*", help="scales (default: the model's)")
    parser.add_argument("--per-class", type=int, default=50, help="images per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", default="numpy", choices=["numpy", "diffusers"])
    parser.add_argument("--spacing", default="trailing", choices=["trailing", "leading"])
    parser.add_argument("--clip-sample", choices=["model", "on", "off"], default="model")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    evaluator = Evaluator.from_dir(args.evaluator, threads=args.threads)
    floor = evaluator.real_floor()
    print(f"real held-out half vs half (n={floor.n}): accuracy {floor.accuracy:.3f}, FD {floor.frechet_distance:.3f}")
    names = args.models or sorted(p.parent.name for p in args.models_dir.glob("*/model.toml"))
    labels = np.repeat(np.arange(10), args.per_class)
    clip = {"model": None, "on": True, "off": False}[args.clip_sample]
    print(f"{'model':<16} {'g':>4} {'steps':>5} {'accuracy':>8} {'FD':>8} {'time_s':>7}")
    for name in names:
        model = OnnxModel.open(args.models_dir / name, args.threads)
        for g in args.guidance or [model.spec["defaults"]["guidance"]]:
            for steps in args.steps:
                start = time.perf_counter()
                images = sample(model, labels, steps, g, args.seed, clip, args.sampler, args.spacing)
                took = time.perf_counter() - start
                s = evaluator.score(images, labels)
                print(f"{name:<16} {g:>4.1f} {steps:>5} {s.accuracy:>8.3f} {s.frechet_distance:>8.3f} {took:>7.2f}")


if __name__ == "__main__":
    main()
