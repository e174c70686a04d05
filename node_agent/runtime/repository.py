"""Model repository: one folder per model, each with a ``model.toml`` and the ONNX files it names.

The format is the contract in ``profiles/models/README.md``. Parsing is strict: every error names the
file and the field (``InvalidModelSpec(".../model.toml: schedule.beta_end: must be > beta_start")``),
unknown keys are refused (a typo must not silently fall back to a default), and no path may leave the
repository (model names are checked against a strict pattern, files are resolved inside their folder,
symlinks that point out are refused).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from node_agent.runtime._toml_fields import Table
from node_agent.runtime.errors import InvalidModelSpec, ModelNotFound

__all__ = [
    "InvalidModelSpec",
    "LatentSpec",
    "ModelNotFound",
    "ModelRepository",
    "ModelSpec",
    "RepositoryEntry",
    "ScheduleSpec",
    "parse_model_spec",
]

MODEL_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
SPEC_FILE = "model.toml"
MAX_SPEC_BYTES = 256 * 1024
KINDS = ("pixel", "latent")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
SCHEDULERS = ("ddim", "ddpm")
FILE_ROLES = ("denoiser", "decoder", "encoder")
MAX_TRAIN_TIMESTEPS = 100_000
MAX_DIM = 4096
MAX_BATCH_LIMIT = 4096


@dataclass(frozen=True)
class ScheduleSpec:
    """The training noise schedule (diffusers ``DDPMScheduler`` names).

    Attributes:
        num_train_timesteps: T, the number of training timesteps; requests may ask for 1..T steps.
        beta_schedule: ``linear``, ``scaled_linear`` or ``squaredcos_cap_v2``.
        beta_start: First beta (linear schedules; unused by ``squaredcos_cap_v2``).
        beta_end: Last beta (linear schedules; unused by ``squaredcos_cap_v2``).
        prediction_type: What the denoiser predicts: ``epsilon``, ``v_prediction`` or ``sample``.
        clip_sample: Whether to clip the x0 estimate to ``[-clip_sample_range, clip_sample_range]``.
        clip_sample_range: Clip bound (same units as the image or latent values).
    """

    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 0.0001
    beta_end: float = 0.02
    prediction_type: str = "epsilon"
    clip_sample: bool = False
    clip_sample_range: float = 1.0


@dataclass(frozen=True)
class LatentSpec:
    """Latent space of a ``kind = "latent"`` model.

    Attributes:
        shape: Latent shape (channels, height, width), without the batch axis.
        scale: Latents are divided by this before decoding (dimensionless).
    """

    shape: tuple[int, int, int]
    scale: float


@dataclass(frozen=True)
class ModelSpec:
    """A validated ``model.toml``.

    Attributes:
        name: Model name, equal to its folder name.
        kind: ``pixel`` (denoises images) or ``latent`` (denoises latents, then decodes).
        dir: Resolved model folder.
        files: Role (``denoiser``, ``decoder``, ``encoder``) -> resolved ONNX path inside ``dir``.
        image_shape: Generated image shape (channels, height, width).
        value_range: (min, max) of generated pixel values; outputs are clipped to it.
        num_classes: Labels are 0..num_classes-1.
        class_names: One name per label.
        null_label: The "no class" label used for classifier-free guidance.
        schedule: Training noise schedule.
        default_steps: Default number of denoising steps.
        default_scheduler: ``ddim`` or ``ddpm``.
        default_guidance: Default classifier-free guidance scale (1.0 = conditional only).
        max_batch: Most images per request.
        latent: Latent space, for ``kind = "latent"`` only.
        description: One line for humans.
        training: The raw ``[training]`` provenance table.
        spec_path: The ``model.toml`` this was read from.
    """

    name: str
    kind: str
    dir: Path
    files: dict[str, Path] = field(hash=False)
    image_shape: tuple[int, int, int]
    value_range: tuple[float, float]
    num_classes: int
    class_names: tuple[str, ...]
    null_label: int
    schedule: ScheduleSpec
    default_steps: int
    default_scheduler: str
    default_guidance: float
    max_batch: int
    latent: LatentSpec | None
    description: str
    training: dict[str, Any] = field(hash=False)
    spec_path: Path

    @property
    def denoise_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) the denoiser works on: the latent shape for latent models, else the image."""
        return self.latent.shape if self.latent is not None else self.image_shape


@dataclass(frozen=True)
class RepositoryEntry:
    """One folder of the repository: its spec, or why it could not be read."""

    name: str
    spec: ModelSpec | None
    error: str | None


def _chw(table: Table) -> tuple[int, int, int]:
    channels, height, width = (table.int(key, 1, MAX_DIM) for key in ("channels", "height", "width"))
    return channels, height, width


def _resolve_file(spec_path: Path, model_dir: Path, role: str, rel: str) -> Path:
    where = f"{spec_path}: files.{role}"
    pure = Path(rel)
    if not rel or pure.is_absolute() or rel.startswith(("/", "\\")) or ".." in pure.parts:
        raise InvalidModelSpec(f"{where}: must be a relative path inside the model folder, got {rel!r}")
    resolved = (model_dir / pure).resolve()
    if not resolved.is_relative_to(model_dir):
        raise InvalidModelSpec(f"{where}: {rel!r} resolves outside the model folder")
    if not resolved.is_file():
        raise InvalidModelSpec(f"{where}: file {rel!r} not found")
    return resolved


def parse_model_spec(spec_path: Path, model_dir: Path | None = None, folder_name: str | None = None) -> ModelSpec:
    """Read and validate one ``model.toml``.

    Args:
        spec_path: Path of the ``model.toml``.
        model_dir: Resolved model folder (default: the file's parent, resolved).
        folder_name: The name the model was asked for, which ``name`` must equal (default: the
            resolved folder's name).

    Returns:
        The validated spec.

    Raises:
        InvalidModelSpec: The file is missing, too large, not TOML, or breaks the contract; the
            message names the file and the field.
    """
    model_dir = (model_dir or spec_path.parent).resolve()
    try:
        size_bytes = spec_path.stat().st_size
        if size_bytes > MAX_SPEC_BYTES:
            raise InvalidModelSpec(f"{spec_path}: file is {size_bytes} bytes, limit {MAX_SPEC_BYTES}")
        data = tomllib.loads(spec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidModelSpec(f"{spec_path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidModelSpec(f"{spec_path}: not valid TOML: {exc}") from exc

    top = Table(data, str(spec_path), "", InvalidModelSpec)
    name = top.string("name")
    folder_name = folder_name or model_dir.name
    if name != folder_name:
        raise InvalidModelSpec(f"{spec_path}: name: {name!r} must equal the folder name {folder_name!r}")
    kind = top.choice("kind", KINDS)
    description = top.string("description", default="")

    image = top.table("image")
    image_shape = _chw(image)
    value_min, value_max = image.float("value_min"), image.float("value_max")
    if not value_max > value_min:
        raise InvalidModelSpec(f"{spec_path}: image.value_max: must be > value_min")
    image.finish()

    classes = top.table("classes")
    num_classes = classes.int("count", 1, 1_000_000)
    names = classes.str_list("names", default=[str(i) for i in range(num_classes)])
    if len(names) != num_classes:
        raise InvalidModelSpec(f"{spec_path}: classes.names: has {len(names)} names, count is {num_classes}")
    null_label = classes.int("null_label", num_classes, 2**31 - 1, hint=">= classes.count")
    classes.finish()

    sched = top.table("schedule")
    num_train_timesteps = sched.int("num_train_timesteps", 1, MAX_TRAIN_TIMESTEPS)
    beta_schedule = sched.choice("beta_schedule", BETA_SCHEDULES)
    beta_start = sched.float("beta_start", default=0.0001)
    beta_end = sched.float("beta_end", default=0.02)
    if not 0.0 < beta_start < 1.0:
        raise InvalidModelSpec(f"{spec_path}: schedule.beta_start: must be in (0, 1)")
    if not beta_start < beta_end < 1.0:
        raise InvalidModelSpec(f"{spec_path}: schedule.beta_end: must be > beta_start and < 1")
    schedule = ScheduleSpec(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=beta_schedule,
        beta_start=beta_start,
        beta_end=beta_end,
        prediction_type=sched.choice("prediction_type", PREDICTION_TYPES, default="epsilon"),
        clip_sample=sched.bool("clip_sample", default=False),
        clip_sample_range=sched.float("clip_sample_range", default=1.0, positive=True),
    )
    sched.finish()

    defaults = top.table("defaults")
    default_steps = defaults.int("steps", 1, num_train_timesteps, hint="in 1..schedule.num_train_timesteps")
    default_scheduler = defaults.choice("scheduler", SCHEDULERS)
    default_guidance = defaults.float("guidance")
    if default_guidance < 0.0:
        raise InvalidModelSpec(f"{spec_path}: defaults.guidance: must be >= 0")
    max_batch = defaults.int("max_batch", 1, MAX_BATCH_LIMIT)
    defaults.finish()

    files_table = top.table("files")
    files = {}
    for role in FILE_ROLES:
        rel = files_table.string(role, default=None)
        if rel is not None:
            files[role] = _resolve_file(spec_path, model_dir, role, rel)
    files_table.finish()
    if "denoiser" not in files:
        raise InvalidModelSpec(f"{spec_path}: files.denoiser: missing")

    latent = None
    if kind == "latent":
        lat = top.table("latent")
        latent = LatentSpec(shape=_chw(lat), scale=lat.float("scale", positive=True))
        lat.finish()
        if "decoder" not in files:
            raise InvalidModelSpec(f"{spec_path}: files.decoder: required for kind = 'latent'")
    elif "latent" in data:
        raise InvalidModelSpec(f"{spec_path}: latent: only allowed for kind = 'latent'")
    elif "decoder" in files or "encoder" in files:
        raise InvalidModelSpec(f"{spec_path}: files: decoder/encoder only allowed for kind = 'latent'")

    training = top.raw_table("training")
    top.finish()
    return ModelSpec(
        name=name,
        kind=kind,
        dir=model_dir,
        files=files,
        image_shape=image_shape,
        value_range=(value_min, value_max),
        num_classes=num_classes,
        class_names=tuple(names),
        null_label=null_label,
        schedule=schedule,
        default_steps=default_steps,
        default_scheduler=default_scheduler,
        default_guidance=default_guidance,
        max_batch=max_batch,
        latent=latent,
        description=description,
        training=training,
        spec_path=spec_path,
    )


class ModelRepository:
    """The models of one folder; only models inside it are ever read.

    Args:
        root: Repository folder (one sub-folder per model).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _model_dir(self, name: str) -> Path:
        if not isinstance(name, str) or not MODEL_NAME_RE.fullmatch(name):
            raise ModelNotFound(f"invalid model name {name!r}: must match {MODEL_NAME_RE.pattern}")
        model_dir = (self.root / name).resolve()
        if not model_dir.is_relative_to(self.root) or model_dir == self.root:
            raise ModelNotFound(f"model {name!r}: folder resolves outside the repository {self.root}")
        if not (model_dir / SPEC_FILE).is_file():
            raise ModelNotFound(f"model {name!r} not found in {self.root}")
        return model_dir

    def names(self) -> list[str]:
        """Sorted names of the sub-folders that look like models (valid name, holding a model.toml).

        Broken models are included; use :meth:`list` to see which parse.
        """
        if not self.root.is_dir():
            return []
        found = (p.name for p in self.root.iterdir() if MODEL_NAME_RE.fullmatch(p.name))
        return sorted(name for name in found if (self.root / name / SPEC_FILE).is_file())

    def get(self, name: str) -> ModelSpec:
        """Parse and validate one model's spec (read afresh on every call).

        Raises:
            ModelNotFound: Invalid name, folder outside the repository, or no model.toml.
            InvalidModelSpec: The model.toml breaks the contract.
        """
        model_dir = self._model_dir(name)
        spec_path = model_dir / SPEC_FILE
        if not spec_path.resolve().is_relative_to(model_dir):
            raise InvalidModelSpec(f"{spec_path}: resolves outside the model folder")
        return parse_model_spec(spec_path, model_dir, folder_name=name)

    def list(self) -> list[RepositoryEntry]:
        """Every model folder with its spec, or the error text of a broken one (never raises for one)."""
        entries = []
        for name in self.names():
            try:
                entries.append(RepositoryEntry(name=name, spec=self.get(name), error=None))
            except (InvalidModelSpec, ModelNotFound) as exc:
                entries.append(RepositoryEntry(name=name, spec=None, error=str(exc)))
        return entries
