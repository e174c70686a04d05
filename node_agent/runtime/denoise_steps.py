"""The work of the denoising loop outside the denoiser call.

:meth:`DiffusionPipeline.denoise_latent <node_agent.runtime.pipeline.DiffusionPipeline.denoise_latent>`
runs the loop and times it; the object from :meth:`StepPlanner.start` gives the denoiser's first inputs
(``start()``), turns the output of step ``i`` into the inputs of step ``i + 1`` (``step(i, output)``)
and hands back the final sample (``finish()``). Two kinds, equal up to float32 rounding:

* :class:`AffineSteps` when the scheduler step is affine (DDIM with ``eta = 0`` and no clipping):
  classifier-free guidance, ``eps = uncond + g * (cond - uncond)``, and the step,
  ``x_prev = a_i * x + b_i * eps``, fold into float32 weights on (x, cond, uncond), computed once
  per (schedule, steps, guidance, batch) and cached. A step is then two numpy calls on preallocated
  buffers: copy the output next to x, and one matrix product that writes the new x into both
  halves of the next input.
* :class:`SchedulerSteps` otherwise: guidance in float32, then ``scheduler.step`` (float64).
"""

from __future__ import annotations

import functools

import numpy as np

from node_agent.runtime.errors import InferenceError
from node_agent.runtime.repository import ScheduleSpec
from node_agent.runtime.schedulers import DDIMScheduler, DDPMScheduler, make_scheduler

Feeds = dict[str, np.ndarray]

# What a model's pipeline keeps between runs: a plan is the per-step weights and timestep inputs
# (a few kB to ~1 MB for 1000 steps at batch 64); a spare is one finished run's buffers.
PLANS = 32  # affine plans cached per model (step counts, guidance scales, batch sizes in use)
SPARES = 1  # spare buffers per plan: one worker thread per model runs one request at a time
SPARE_MAX_BYTES = 1 << 18  # larger runs allocate their buffers; their models dwarf that cost


class AffinePlan:
    """The constants of affine steps, and spare buffers to run them in.

    The weights and timestep inputs depend only on the arguments, so one plan serves any number of
    runs (:class:`StepPlanner` caches plans); they are shared and must only be read. A finished run
    hands its :class:`AffineSteps` back for the next run (at most :data:`SPARES` of them, each at
    most :data:`SPARE_MAX_BYTES`), so small models do not pay for allocating buffers every run.

    Args:
        coefficients: float64 [num_steps, 2], ``x_prev = a * x + b * model_output`` per step.
        timesteps: int64 [num_steps], the training timestep of each step.
        sample_shape: (B, C, H, W) of the samples.
        guidance: Classifier-free guidance scale; other than 0.0 and 1.0, the denoiser gets 2B rows.
        null_label: The unconditional label.

    Attributes:
        copies: Copies of x in one denoiser input: 1, or 2 with guidance.
        weights: Per step, float32 [copies, copies + 1]: each row gives one copy of the next x from
            (x, cond[, uncond]). The rows are equal, so one matrix product writes the same x into
            both halves of the next input (each output row is its own weight row times the same
            operands).
        t_in: Per step, the denoiser's ``t`` input, int64 [copies * B].
        y_in: The denoiser's ``y`` input with the null labels in place, int64 [copies * B].
    """

    def __init__(
        self,
        coefficients: np.ndarray,
        timesteps: np.ndarray,
        sample_shape: tuple[int, ...],
        guidance: float,
        null_label: int,
    ) -> None:
        batch = sample_shape[0]
        self.sample_shape = sample_shape
        self.guidance = guidance
        self.copies = 1 if guidance in (0.0, 1.0) else 2
        if self.copies == 2:  # a * x + b * (uncond + g * (cond - uncond))
            a, b = coefficients[:, 0], coefficients[:, 1]
            coefficients = np.stack([a, b * guidance, b * (1.0 - guidance)], axis=1)
        weights = coefficients.astype(np.float32)[:, None, :]
        self.weights = list(np.repeat(weights, self.copies, axis=1))
        self.t_in = list(np.repeat(timesteps.astype(np.int64)[:, None], self.copies * batch, axis=1))
        self.y_in = np.full(self.copies * batch, null_label, dtype=np.int64)
        self._spares: list[AffineSteps] = []

    def start(self, x: np.ndarray, labels: np.ndarray) -> AffineSteps:
        """Steps for a run from sample ``x`` [B, C, H, W] with class ``labels`` [B]."""
        try:
            steps = self._spares.pop()
        except IndexError:
            steps = AffineSteps(self)
        steps.reset(x, labels)
        return steps

    def give_back(self, steps: AffineSteps) -> None:
        """Keep a finished run's buffers for the next run, if small and not too many already."""
        if steps.nbytes <= SPARE_MAX_BYTES and len(self._spares) < SPARES:
            self._spares.append(steps)


class AffineSteps:
    """Buffers and per-step operations of affine steps; one run at a time (see :meth:`AffinePlan.start`).

    Two ping-pong buffers: buffer ``k`` holds, one row each (a row is a whole batch, flattened), the
    ``copies`` rows of x that form the denoiser's input, then the ``copies`` rows of its output
    (cond, uncond). Step ``i`` copies the output into buffer ``i % 2`` and writes the next x, one
    matrix product, into both halves of the input in the other buffer; no step allocates.

    Args:
        plan: The weights and timestep inputs.

    Attributes:
        input_shape: Shape of the denoiser's ``x`` input and of its output.
        ops: Step ``i`` as data, for a loop to inline (:meth:`step` is exactly this, plus the
            shape check): ``(output_rows, weighted_sum, operands, next_x, next_feeds) = ops[i]``,
            then ``output_rows[...] = output``, ``weighted_sum(operands, next_x)``, and
            ``next_feeds`` are the inputs of step ``i + 1``.
    """

    def __init__(self, plan: AffinePlan) -> None:
        copies, shape = plan.copies, plan.sample_shape
        size = int(np.prod(shape))
        self._plan = plan
        self.input_shape = (copies * shape[0], *shape[1:])
        self._buffers = buffers = np.empty((2, 2 * copies, size), dtype=np.float32)
        self.nbytes = buffers.nbytes
        self._y_in = plan.y_in.copy()
        self._first_x = buffers[0, :copies].reshape(copies, *shape)
        self._labels_in = None if plan.guidance == 0.0 else self._y_in[: shape[0]]  # the rest: null labels
        x_in = [buf[:copies].reshape(self.input_shape) for buf in buffers]
        outputs = [buf[copies:].reshape(self.input_shape) for buf in buffers]
        operands = [buf[copies - 1 :] for buf in buffers]  # x, then the output rows
        next_x = [buffers[1, :copies], buffers[0, :copies]]
        n = len(plan.t_in)
        self._feeds = [{"x": x_in[i & 1], "t": t_in, "y": self._y_in} for i, t_in in enumerate(plan.t_in)]
        self._feeds.append({})  # after the last step
        self.ops = [
            (outputs[i & 1], plan.weights[i].dot, operands[i & 1], next_x[i & 1], self._feeds[i + 1]) for i in range(n)
        ]
        self._result = buffers[n & 1, 0].reshape(shape)
        self.num_steps = n

    def reset(self, x: np.ndarray, labels: np.ndarray) -> None:
        """Start a run from sample ``x`` [B, C, H, W] with class ``labels`` [B]."""
        self._first_x[...] = x  # broadcast into each copy
        if self._labels_in is not None:
            self._labels_in[...] = labels

    def start(self) -> Feeds:
        """The denoiser's inputs for step 0."""
        return self._feeds[0]

    def step(self, i: int, output: np.ndarray) -> Feeds:
        """Apply step ``i`` to the denoiser's ``output``; returns the inputs of step ``i + 1``.

        Raises:
            InferenceError: The output's shape is not the input's.
        """
        try:
            wrong_shape = output.shape != self.input_shape
        except AttributeError:  # not an array
            wrong_shape = True
        if wrong_shape:
            raise InferenceError(f"denoiser returned eps {np.shape(output)}, expected {self.input_shape}")
        output_rows, weighted_sum, operands, next_x, next_feeds = self.ops[i]
        output_rows[...] = output
        weighted_sum(operands, next_x)  # ndarray.dot: the next x into both halves of the next input
        return next_feeds

    def finish(self) -> np.ndarray:
        """The final sample, float32 [B, C, H, W] (a copy); hands the buffers back to the plan."""
        samples = self._result.copy()
        self._plan.give_back(self)
        return samples


class SchedulerSteps:
    """General steps: guidance in float32, then the scheduler's own (float64) ``step``.

    Args:
        scheduler: A scheduler after ``set_timesteps``.
        x: Initial sample, float32 [B, C, H, W].
        y: Class labels fed to the denoiser, int64 [B] or, with guidance, [2B] (conditional half first).
        guidance: Classifier-free guidance scale (used only when ``y`` has 2B labels).
        rng: Source of any sampler noise.
    """

    def __init__(
        self,
        scheduler: DDIMScheduler | DDPMScheduler,
        x: np.ndarray,
        y: np.ndarray,
        guidance: float,
        rng: np.random.Generator,
    ) -> None:
        self._scheduler, self._x, self._y, self._rng = scheduler, x, y, rng
        self._guidance = np.float32(guidance)
        self._batch = x.shape[0]
        self._x_in = np.empty((y.shape[0], *x.shape[1:]), dtype=np.float32)
        self._timesteps = [int(t) for t in scheduler.timesteps]
        self.num_steps = len(self._timesteps)
        self.ops = None  # no step as data: call step()
        self.input_shape = self._x_in.shape

    def start(self) -> Feeds:
        """The denoiser's inputs for step 0."""
        return self._inputs(0)

    def step(self, i: int, output: np.ndarray) -> Feeds:
        """Combine the guided halves of ``output``, apply the scheduler's step ``i``; returns the
        inputs of step ``i + 1``.

        Raises:
            InferenceError: The output's shape is not the input's.
        """
        pred = np.asarray(output, dtype=np.float32)
        if pred.shape != self._x_in.shape:
            raise InferenceError(f"denoiser returned eps {pred.shape}, expected {self._x_in.shape}")
        if pred.shape[0] != self._batch:
            cond, uncond = pred[: self._batch], pred[self._batch :]
            pred = uncond + self._guidance * (cond - uncond)
        self._x = self._scheduler.step(pred, self._timesteps[i], self._x, self._rng)
        return self._inputs(i + 1)

    def finish(self) -> np.ndarray:
        """The final sample, float32 [B, C, H, W]."""
        return self._x

    def _inputs(self, i: int) -> Feeds:
        """x (twice with guidance), the timestep, the labels; none after the last step."""
        if i == self.num_steps:
            return {}
        for start in range(0, self._y.shape[0], self._batch):
            self._x_in[start : start + self._batch] = self._x
        t_in = np.full(self._y.shape[0], self._timesteps[i], dtype=np.int64)
        return {"x": self._x_in, "t": t_in, "y": self._y}


class StepPlanner:
    """Makes the steps of each run of one model, and caches the plans of affine runs.

    The cache (:data:`PLANS` plans, least recently used first out) belongs to the model's pipeline
    and goes with it.

    Args:
        schedule: The model's training schedule.
        null_label: The model's unconditional label.
    """

    def __init__(self, schedule: ScheduleSpec, null_label: int) -> None:
        self.schedule = schedule
        self.null_label = null_label
        self.affine_plan = functools.lru_cache(maxsize=PLANS, typed=True)(self._affine_plan)

    def start(
        self,
        scheduler: str,
        eta: float,
        steps: int,
        x: np.ndarray,
        labels: np.ndarray,
        guidance: float,
        rng: np.random.Generator,
    ) -> AffineSteps | SchedulerSteps:
        """The steps of one run: :class:`AffineSteps` where the scheduler allows, else :class:`SchedulerSteps`.

        Guidance 1.0 feeds the conditional batch only, 0.0 the unconditional (null label) batch
        only, anything else both as one batch of 2B (conditional half first).

        Args:
            scheduler: ``ddim`` or ``ddpm``.
            eta: DDIM noise weight in [0, 1].
            steps: Denoising steps, 1..T.
            x: Initial sample, float32 [B, C, H, W].
            labels: int64 [B].
            guidance: Classifier-free guidance scale, >= 0.
            rng: Source of any sampler noise.

        Raises:
            ValueError: Unknown scheduler, ``eta`` or ``steps`` out of range.
        """
        plan = self.affine_plan(scheduler, eta, steps, guidance, x.shape)
        if plan is not None:
            return plan.start(x, labels)
        null = np.full(labels.shape[0], self.null_label, dtype=np.int64)
        y = labels if guidance == 1.0 else null if guidance == 0.0 else np.concatenate([labels, null])
        sampler = make_scheduler(scheduler, self.schedule, eta=eta)
        sampler.set_timesteps(steps)
        return SchedulerSteps(sampler, x, y, guidance, rng)

    def _affine_plan(
        self, scheduler: str, eta: float, steps: int, guidance: float, sample_shape: tuple[int, ...]
    ) -> AffinePlan | None:
        """The :class:`AffinePlan` of a run, or None when its scheduler steps are not affine."""
        sampler = make_scheduler(scheduler, self.schedule, eta=eta)
        sampler.set_timesteps(steps)
        coefficients = sampler.affine_coefficients()
        if coefficients is None:
            return None
        return AffinePlan(coefficients, sampler.timesteps, sample_shape, guidance, self.null_label)
