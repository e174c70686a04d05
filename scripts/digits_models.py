"""Torch architectures of the shipped 8x8-digit models, and rebuilding them from their ONNX files.

Every denoiser takes ``x`` float32 [B, C, H, W] (noisy image or scaled latent), ``t`` int64 [B]
(training timestep 0..T-1) and ``y`` int64 [B] (label, or the null label ``num_classes`` for the
unconditional half of classifier-free guidance) and returns the predicted noise ``eps`` [B, C, H, W],
as the model repository contract (``profiles/models/README.md``) requires.

The ONNX files are the only shipped weights: :func:`load_torch_denoiser` rebuilds a module from the
``[training]`` table of ``model.toml`` (architecture name + hyper-parameters) and copies the weights
from the ONNX initializers, which the exporter names after the torch parameters. A benchmark can thus
run the identical network in PyTorch eager and in ONNX Runtime.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of integer timesteps.

    Args:
        dim: Embedding size (even).
        max_period: Longest wavelength, in timesteps.
    """

    def __init__(self, dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Embed timesteps ``t`` int64 [B] as float32 [B, dim]."""
        angles = t.to(torch.float32)[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class Conditioning(nn.Module):
    """Timestep + class conditioning vector; label ``num_classes`` is the null (no-class) label.

    Args:
        width: Output size.
        num_classes: Number of real classes (one more embedding row is kept for the null label).
        time_dim: Size of the sinusoidal timestep embedding.
    """

    def __init__(self, width: int, num_classes: int, time_dim: int) -> None:
        super().__init__()
        self.time = SinusoidalEmbedding(time_dim)
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.label = nn.Embedding(num_classes + 1, width)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the conditioning vector float32 [B, width]."""
        return self.time_mlp(self.time(t)) + self.label(y)


def linear_alphas_cumprod(steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s) of a linear beta schedule, float32 [steps]."""
    betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, 0).float()


class MLPDenoiser(nn.Module):
    """Plain MLP on the flattened input; the conditioning vector is added to every hidden layer.

    Args:
        shape: Input shape (C, H, W) without the batch axis.
        num_classes: Number of real classes.
        width: Hidden size.
        depth: Number of hidden layers.
        time_dim: Size of the sinusoidal timestep embedding.
    """

    HPARAMS: ClassVar[tuple[str, ...]] = ("width", "depth", "time_dim")

    def __init__(self, shape: tuple[int, int, int], num_classes: int, width: int, depth: int, time_dim: int):
        super().__init__()
        dim = math.prod(shape)
        self.cond = Conditioning(width, num_classes, time_dim)
        self.inp = nn.Linear(dim, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.out = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Predict the noise ``eps`` [B, C, H, W] in ``x``."""
        c = self.cond(t, y)
        h = nn.functional.silu(self.inp(x.flatten(1)) + c)
        for layer in self.hidden:
            h = nn.functional.silu(layer(h) + c)
        return self.out(h).view_as(x)


class ResBlock(nn.Module):
    """Pre-norm residual MLP block with an additive conditioning shift.

    Args:
        width: Residual-stream size.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.cond = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Return ``h`` plus the block's update, both float32 [B, width]."""
        u = nn.functional.silu(self.fc1(nn.functional.silu(self.norm(h))) + self.cond(c))
        return h + self.fc2(u)


class ResMLPDenoiser(nn.Module):
    """Residual MLP on the flattened input (the larger, higher-quality pixel denoiser).

    Args:
        shape: Input shape (C, H, W) without the batch axis.
        num_classes: Number of real classes.
        width: Residual-stream size.
        blocks: Number of residual blocks.
        time_dim: Size of the sinusoidal timestep embedding.
    """

    HPARAMS: ClassVar[tuple[str, ...]] = ("width", "blocks", "time_dim")

    def __init__(self, shape: tuple[int, int, int], num_classes: int, width: int, blocks: int, time_dim: int):
        super().__init__()
        dim = math.prod(shape)
        self.cond = Conditioning(width, num_classes, time_dim)
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(ResBlock(width) for _ in range(blocks))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Predict the noise ``eps`` [B, C, H, W] in ``x``."""
        c = nn.functional.silu(self.cond(t, y))
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, c)
        return self.out(nn.functional.silu(self.norm(h))).view_as(x)


class Encoder(nn.Module):
    """Conv encoder: image [B, 1, 8, 8] in [-1, 1] -> latent [B, latent_channels, 2, 2] (unscaled).

    Args:
        width: Channels of the first conv layer (the others use twice as many).
        latent_channels: Latent channels.
    """

    def __init__(self, width: int, latent_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),  # 4x4
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),  # 2x2
            nn.Conv2d(2 * width, latent_channels, 1),
        )  # fmt: skip

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Encode ``image`` float32 [B, 1, 8, 8] to ``z`` float32 [B, Cl, 2, 2]."""
        return self.net(image)


class Decoder(nn.Module):
    """Conv decoder, the mirror of :class:`Encoder`: latent [B, Cl, 2, 2] -> image [B, 1, 8, 8].

    Args:
        width: Channels of the last hidden conv layer (the others use twice as many).
        latent_channels: Latent channels.
    """

    def __init__(self, width: int, latent_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(latent_channels, 2 * width, 1), nn.SiLU(),
            nn.ConvTranspose2d(2 * width, 2 * width, 4, stride=2, padding=1), nn.SiLU(),  # 4x4
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.SiLU(),  # 8x8
            nn.Conv2d(width, 1, 3, padding=1),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decode ``z`` float32 [B, Cl, 2, 2] (unscaled latent) to an image float32 [B, 1, 8, 8]."""
        return self.net(z)


class DigitClassifier(nn.Module):
    """The evaluator: a small conv classifier whose penultimate layer gives the Fréchet features.

    Args:
        features: Size F of the feature layer.
        num_classes: Number of classes.
    """

    def __init__(self, features: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4x4
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 2x2
            nn.Flatten(), nn.Linear(256, features), nn.ReLU(),
        )  # fmt: skip
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(features, num_classes)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (``logits`` [B, classes], ``features`` [B, F]) for ``image`` float32 [B, 1, 8, 8]."""
        feats = self.body(image)
        return self.head(self.dropout(feats)), feats


DENOISERS: dict[str, type[nn.Module]] = {"mlp": MLPDenoiser, "resmlp": ResMLPDenoiser}


def build_denoiser(arch: str, shape: tuple[int, int, int], num_classes: int, hparams: dict[str, Any]) -> nn.Module:
    """Build an untrained denoiser from its architecture name and hyper-parameters.

    Args:
        arch: A key of :data:`DENOISERS`.
        shape: Denoised shape (C, H, W): the image for pixel models, the latent for latent models.
        num_classes: Number of real classes.
        hparams: Mapping holding at least the architecture's ``HPARAMS`` keys (extra keys are ignored).
    """
    if arch not in DENOISERS:
        raise ValueError(f"unknown denoiser arch {arch!r}; known: {', '.join(DENOISERS)}")
    cls = DENOISERS[arch]
    missing = [k for k in cls.HPARAMS if k not in hparams]
    if missing:
        raise ValueError(f"arch {arch!r} needs hyper-parameters {missing}")
    return cls(shape, num_classes, **{k: int(hparams[k]) for k in cls.HPARAMS})


def param_count(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters())


def load_onnx_weights(module: nn.Module, onnx_path: Path) -> nn.Module:
    """Copy weights from an ONNX file's initializers into ``module`` (matched by parameter name).

    Args:
        module: Module with the architecture the file was exported from.
        onnx_path: ONNX file written by ``torch.onnx.export`` from such a module.

    Returns:
        ``module``, in eval mode.

    Raises:
        ValueError: An entry of the module's state dict has no initializer of that name and shape.
    """
    inits = {i.name: i for i in onnx.load(str(onnx_path), load_external_data=False).graph.initializer}
    state = {}
    for name, ref in module.state_dict().items():
        if name not in inits:
            raise ValueError(f"{onnx_path}: no initializer named {name!r}")
        value = numpy_helper.to_array(inits[name])
        if tuple(value.shape) != tuple(ref.shape):
            raise ValueError(f"{onnx_path}: {name!r} has shape {value.shape}, expected {tuple(ref.shape)}")
        state[name] = torch.from_numpy(np.array(value, dtype=np.float32))
    module.load_state_dict(state)
    return module.eval()


def _read_spec(model_dir: Path) -> dict[str, Any]:
    with open(Path(model_dir) / "model.toml", "rb") as f:
        return tomllib.load(f)


def load_torch_denoiser(model_dir: Path) -> nn.Module:
    """Rebuild a shipped model's denoiser in PyTorch, with the weights of its ``denoiser.onnx``.

    Args:
        model_dir: Model folder holding ``model.toml`` and the ONNX files.

    Returns:
        The denoiser in eval mode; same inputs/outputs as the ONNX file, as torch tensors.
    """
    spec = _read_spec(model_dir)
    section = spec["latent"] if spec["kind"] == "latent" else spec["image"]
    shape = (section["channels"], section["height"], section["width"])
    module = build_denoiser(spec["training"]["arch"], shape, spec["classes"]["count"], spec["training"])
    return load_onnx_weights(module, Path(model_dir) / spec["files"]["denoiser"])


def load_torch_decoder(model_dir: Path) -> nn.Module:
    """Rebuild a latent model's decoder (input: latent already divided by ``[latent] scale``).

    Args:
        model_dir: Folder of a ``kind = "latent"`` model.
    """
    spec = _read_spec(model_dir)
    module = Decoder(spec["training"]["ae_width"], spec["latent"]["channels"])
    return load_onnx_weights(module, Path(model_dir) / spec["files"]["decoder"])
