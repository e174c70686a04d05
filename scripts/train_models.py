"""Train the shipped 8x8-digit diffusion models and the evaluator, and write them as a model repository.

Everything trains on the train split of ``sklearn.datasets.load_digits`` (80/20 stratified, seed 0);
the held-out 20 % becomes the evaluator's reference set. Denoisers are DDPM epsilon predictors
(T = 1000, linear betas 1e-4..0.02) with classifier-free-guidance label dropout and an EMA of weights.

Usage::

    python scripts/train_models.py --out profiles            # full run, ~7 min on one CPU core
    python scripts/train_models.py --out /tmp/p --quick      # smoke test, a few hundred steps in all

Writes ``<out>/models/<name>/{model.toml,*.onnx}`` and ``<out>/evaluator/digits/{evaluator.onnx,
reference.npz,evaluator.toml}``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from digits_models import Decoder, Encoder, build_denoiser, linear_alphas_cumprod, param_count
from model_export import export_onnx, model_toml
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from train_evaluator import train_classifier, write_evaluator
from training_loop import fit

SEED = 0
NUM_CLASSES = 10
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
}
DATASET = "sklearn.datasets.load_digits (train split: 80/20 stratified, random_state=0)"


@dataclass(frozen=True)
class Recipe:
    """How one shipped denoiser is built and trained.

    Attributes:
        name: Model (and folder) name.
        description: One line for humans.
        arch: Denoiser architecture (a key of ``digits_models.DENOISERS``).
        hparams: The architecture's hyper-parameters.
        steps: Optimizer steps.
        lr: Peak AdamW learning rate.
        guidance: Default classifier-free guidance scale (measured with ``quality_curve.py``).
        clip_sample: Clip the x0 estimate to [-1, 1] while sampling. Off for all: with these models,
            clipping x0 while re-using the predicted eps makes DDIM drift as steps grow (measured with
            ``quality_curve.py --clip-sample on``: accuracy falls to ~0.15 at 32 steps).
        latent: Train in the latent space of an autoencoder trained first.
        batch_size: Images per optimizer step.
        ema_decay: Decay of the exponential moving average of weights that is exported.
        p_uncond: Probability that a training label is replaced by the null label.
    """

    name: str
    description: str
    arch: str
    hparams: dict[str, int]
    steps: int
    lr: float
    guidance: float
    clip_sample: bool
    latent: bool = False
    batch_size: int = 256
    ema_decay: float = 0.999
    p_uncond: float = 0.1


RECIPES = (
    Recipe(
        name="digits-mlp-s",
        description="Small pixel-space MLP denoiser for 8x8 digits (class-conditional, CFG).",
        arch="mlp",
        hparams={"width": 128, "depth": 3, "time_dim": 64},
        steps=12_000,
        lr=2e-3,
        guidance=2.0,
        clip_sample=False,
    ),
    Recipe(
        name="digits-resmlp-l",
        description="Larger pixel-space residual-MLP denoiser for 8x8 digits (class-conditional, CFG).",
        arch="resmlp",
        hparams={"width": 256, "blocks": 3, "time_dim": 64},
        steps=8_000,
        lr=1e-3,
        guidance=1.5,
        clip_sample=False,
    ),
    Recipe(
        name="digits-ldm",
        description="Latent diffusion for 8x8 digits: MLP denoiser on a 4x2x2 latent + conv decoder.",
        arch="mlp",
        hparams={"width": 256, "depth": 3, "time_dim": 64},
        steps=8_000,
        lr=1e-3,
        guidance=1.5,
        clip_sample=False,
        latent=True,
    ),
)
AE = {"ae_width": 32, "latent_channels": 4, "ae_steps": 4_000, "ae_lr": 2e-3, "ae_noise": 0.1, "ae_l2": 1e-2}
EVALUATOR_STEPS = 3_000
QUICK_FRACTION = 0.02


def load_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed split: (x_train, y_train, x_test, y_test); images float32 [N, 1, 8, 8] in [-1, 1]."""
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 8.0 - 1.0)[:, None]
    y = digits.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte)


def alphas_cumprod() -> torch.Tensor:
    """Cumulative products of (1 - beta_t) of the training schedule, float32 [T]."""
    return linear_alphas_cumprod(SCHEDULE["num_train_timesteps"], SCHEDULE["beta_start"], SCHEDULE["beta_end"])


def train_denoiser(recipe: Recipe, data: torch.Tensor, labels: torch.Tensor, steps: int) -> nn.Module:
    """Train one DDPM epsilon predictor on ``data`` [N, C, H, W] (images or scaled latents)."""
    torch.manual_seed(SEED)
    model = build_denoiser(recipe.arch, tuple(data.shape[1:]), NUM_CLASSES, recipe.hparams)
    abar = alphas_cumprod()

    def loss_fn(m: nn.Module, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, len(data), (recipe.batch_size,), generator=gen)
        x0, y = data[idx], labels[idx].clone()
        y[torch.rand(len(y), generator=gen) < recipe.p_uncond] = NUM_CLASSES
        t = torch.randint(0, len(abar), (len(y),), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = abar[t].view(-1, 1, 1, 1)
        return nn.functional.mse_loss(m(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, y), noise)

    return fit(model, loss_fn, steps, recipe.lr, recipe.ema_decay, SEED, recipe.name)


def train_autoencoder(x: torch.Tensor, steps: int) -> tuple[Encoder, Decoder]:
    """Train the 1x8x8 <-> 4x2x2 autoencoder (latent noise injection + L2 keep the decoder smooth)."""
    torch.manual_seed(SEED)
    width, channels = AE["ae_width"], AE["latent_channels"]
    ae = nn.ModuleDict({"enc": Encoder(width, channels), "dec": Decoder(width, channels)})

    def loss_fn(m: nn.Module, gen: torch.Generator) -> torch.Tensor:
        batch = x[torch.randint(0, len(x), (128,), generator=gen)]
        z = m["enc"](batch)
        recon = m["dec"](z + AE["ae_noise"] * torch.randn(z.shape, generator=gen))
        return nn.functional.mse_loss(recon, batch) + AE["ae_l2"] * z.pow(2).mean()

    ema = fit(ae, loss_fn, steps, AE["ae_lr"], 0.999, SEED, "autoencoder")
    return ema["enc"], ema["dec"]


def ship_denoiser(
    out: Path,
    n_train: int,
    recipe: Recipe,
    model: nn.Module,
    steps: int,
    seconds: float,
    extra: dict[str, Any],
    latent_scale: float | None = None,
) -> Path:
    """Export ``model`` to ``<out>/models/<name>/denoiser.onnx`` and write its ``model.toml``.

    Args:
        out: The profiles folder.
        n_train: Number of training images (for the epoch count).
        recipe: The model's recipe.
        model: The trained (EMA) denoiser.
        steps: Optimizer steps it was trained for.
        seconds: Wall-clock training time, in seconds.
        extra: More ``[training]`` keys (autoencoder settings of a latent model).
        latent_scale: ``[latent] scale`` of a latent model (latents are multiplied by it before diffusion).
    """
    folder = out / "models" / recipe.name
    shape = (4, 2, 2) if recipe.latent else (1, 8, 8)
    example = (torch.randn(3, *shape), torch.tensor([0, 500, 999]), torch.tensor([1, 7, NUM_CLASSES]))
    export_onnx(model, example, folder / "denoiser.onnx", ("x", "t", "y"), ("eps",))
    files = {"denoiser": "denoiser.onnx"}
    if recipe.latent:
        files |= {"decoder": "decoder.onnx", "encoder": "encoder.onnx"}
    training = {
        "arch": recipe.arch,
        **recipe.hparams,
        "params": param_count(model),
        "dataset": DATASET,
        "seed": SEED,
        "optimizer_steps": steps,
        "batch_size": recipe.batch_size,
        "epochs": round(steps * recipe.batch_size / n_train),
        "lr": recipe.lr,
        "ema_decay": recipe.ema_decay,
        "label_dropout": recipe.p_uncond,
        "train_time_s": round(seconds, 1),
        "torch": torch.__version__,
        **extra,
    }
    schedule = {**SCHEDULE, "clip_sample": recipe.clip_sample, "clip_sample_range": 1.0}
    defaults = {"steps": 50, "scheduler": "ddim", "guidance": recipe.guidance, "max_batch": 64}
    latent = None
    if recipe.latent:
        latent = {"channels": 4, "height": 2, "width": 2, "scale": latent_scale}
    model_toml(folder / "model.toml", recipe.name, recipe.description, schedule, defaults, files, training, latent)
    return folder


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: train everything and write the repository under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="profiles folder to write into")
    parser.add_argument("--quick", action="store_true", help="a few hundred steps in all (smoke test)")
    parser.add_argument("--only", nargs="*", help="train only these models (and/or 'evaluator')")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    frac = QUICK_FRACTION if args.quick else 1.0

    def n_steps(full: int) -> int:
        return max(20, int(full * frac))

    def want(name: str) -> bool:
        return not args.only or name in args.only

    xtr, ytr, xte, yte = load_split()
    print(f"digits: {len(xtr)} train, {len(xte)} held-out images")

    if want("evaluator"):
        t0 = time.perf_counter()
        steps = n_steps(EVALUATOR_STEPS)
        clf = train_classifier(xtr, ytr, steps, SEED)
        write_evaluator(args.out / "evaluator" / "digits", clf, xte, yte, steps, time.perf_counter() - t0, DATASET)

    for recipe in RECIPES:
        if not want(recipe.name):
            continue
        t0, extra, data, scale = time.perf_counter(), {}, xtr, None
        if recipe.latent:
            enc, dec = train_autoencoder(xtr, n_steps(AE["ae_steps"]))
            with torch.no_grad():
                z = enc(xtr)
                scale = round(float(1.0 / z.std()), 6)
                recon_mse = float(nn.functional.mse_loss(dec(enc(xte)), xte))
            data = z * scale
            folder = args.out / "models" / recipe.name
            export_onnx(enc, (xte[:3],), folder / "encoder.onnx", ("image",), ("z",))
            export_onnx(dec, (z[:3],), folder / "decoder.onnx", ("z",), ("image",))
            print(f"  autoencoder: held-out recon MSE {recon_mse:.4f}, latent scale {scale:.4f}")
            extra = {
                **AE,
                "ae_steps": n_steps(AE["ae_steps"]),
                "ae_params": param_count(enc) + param_count(dec),
                "ae_heldout_mse": round(recon_mse, 5),
            }
        steps = n_steps(recipe.steps)
        model = train_denoiser(recipe, data, ytr, steps)
        folder = ship_denoiser(args.out, len(xtr), recipe, model, steps, time.perf_counter() - t0, extra, scale)
        print(f"{recipe.name}: {param_count(model)} params, {time.perf_counter() - t0:.0f} s -> {folder}")


if __name__ == "__main__":
    main()
