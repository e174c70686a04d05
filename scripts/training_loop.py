"""The one training loop of the shipped models: AdamW, warm-up + cosine learning rate, EMA of weights."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def cosine_lr(step: int, steps: int, warmup: int = 200) -> float:
    """Learning-rate multiplier: linear warm-up (at most a tenth of ``steps``), then cosine decay to 0.05."""
    warmup = min(warmup, max(1, steps // 10))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * progress))


def fit(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Generator], torch.Tensor],
    steps: int,
    lr: float,
    ema_decay: float,
    seed: int,
    label: str,
) -> nn.Module:
    """Train ``model`` with AdamW and return an EMA copy of its weights (eval mode).

    Args:
        model: Module to train.
        loss_fn: Draws a batch with the given generator and returns the scalar loss.
        steps: Optimizer steps.
        lr: Peak learning rate.
        ema_decay: EMA decay per step (0 disables the average).
        seed: Seed of the batch generator.
        label: Name used in progress lines.
    """
    gen = torch.Generator().manual_seed(seed)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(s, steps))
    start, running = time.perf_counter(), 0.0
    for step in range(steps):
        loss = loss_fn(model, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        decay = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(p, 1.0 - decay)
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if (step + 1) % max(1, steps // 4) == 0:
            print(f"  {label}: step {step + 1}/{steps} loss {running:.4f} ({time.perf_counter() - start:.0f} s)")
    return ema.eval()
