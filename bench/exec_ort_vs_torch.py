"""ONNX Runtime vs PyTorch eager on the same denoiser, same sampling loop, same thread count.

For every shipped model the agent's own :class:`DiffusionPipeline` generates the same batch twice per
round: once with ONNX Runtime sessions and once with the identical network in PyTorch eager (rebuilt
from the ONNX file's weights by ``scripts/digits_models.load_torch_denoiser``) behind the same
``session.run`` call. Rounds alternate the two so that machine noise hits both alike. It prints
median times, the ORT speed-up (goal >= 1.3x) and the scheduler/loop overhead as a share of the
denoiser's time (goal <= 5%).

Run: ``python bench/exec_ort_vs_torch.py [--threads 1] [--steps 50] [--batch 10] [--rounds 15]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from node_agent.runtime.pipeline import DiffusionPipeline  # noqa: E402
from node_agent.runtime.repository import ModelRepository  # noqa: E402
from node_agent.runtime.session import create_session  # noqa: E402
from scripts.digits_models import load_torch_decoder, load_torch_denoiser  # noqa: E402


class TorchSession:
    """A PyTorch module behind ONNX Runtime's ``session.run([output], feeds)`` call."""

    def __init__(self, module: torch.nn.Module, input_names: tuple[str, ...]) -> None:
        self.module = module.eval()
        self.input_names = input_names

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            out = self.module(*(torch.from_numpy(feeds[name]) for name in self.input_names))
        return [out.numpy()]


def measure(pipe: DiffusionPipeline, labels: np.ndarray, steps: int) -> tuple[float, float, float]:
    """One generation: (wall time, denoiser time, loop overhead) in seconds."""
    started = time.perf_counter()
    out = pipe.generate(labels, steps=steps, seed=0, guidance=2.0, scheduler="ddim")
    wall_s = time.perf_counter() - started
    return wall_s, out.denoise_time_s - out.scheduler_overhead_s, out.scheduler_overhead_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO / "profiles/models")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for both runtimes")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    labels = np.arange(args.batch, dtype=np.int64) % 10
    repo = ModelRepository(args.models)
    print(f"threads={args.threads} steps={args.steps} batch={args.batch} (CFG: 2x batch per step) rounds={args.rounds}")
    print(f"{'model':<18}{'ORT ms':>10}{'torch ms':>10}{'speed-up':>10}{'loop/denoiser':>15}")
    worst_ratio, worst_overhead = float("inf"), 0.0
    for name in repo.names():
        spec = repo.get(name)
        providers = ["CPUExecutionProvider"]
        ort_sessions = {role: create_session(spec, role, providers, args.threads) for role in spec.files}
        torch_sessions = {"denoiser": TorchSession(load_torch_denoiser(spec.dir), ("x", "t", "y"))}
        if spec.kind == "latent":
            torch_sessions["decoder"] = TorchSession(load_torch_decoder(spec.dir), ("z",))
        ort_pipe = DiffusionPipeline(spec, {k: v for k, v in ort_sessions.items() if k != "encoder"})
        torch_pipe = DiffusionPipeline(spec, torch_sessions)
        assert np.allclose(  # same network: the two must agree before their speed means anything
            ort_pipe.generate(labels, 4, 0, 2.0, "ddim").images,
            torch_pipe.generate(labels, 4, 0, 2.0, "ddim").images,
            atol=1e-4,
        ), f"{name}: ORT and torch outputs differ"
        measure(ort_pipe, labels, args.steps)
        measure(torch_pipe, labels, args.steps)
        ort_runs, torch_runs = [], []
        for _ in range(args.rounds):
            ort_runs.append(measure(ort_pipe, labels, args.steps))
            torch_runs.append(measure(torch_pipe, labels, args.steps))
        ort_s = statistics.median(r[0] for r in ort_runs)
        torch_s = statistics.median(r[0] for r in torch_runs)
        overhead = statistics.median(r[2] / r[1] for r in ort_runs)
        worst_ratio, worst_overhead = min(worst_ratio, torch_s / ort_s), max(worst_overhead, overhead)
        print(f"{name:<18}{ort_s * 1e3:>10.2f}{torch_s * 1e3:>10.2f}{torch_s / ort_s:>9.2f}x{overhead:>14.1%}")
    print(f"worst ORT speed-up {worst_ratio:.2f}x (goal >= 1.3x): {'met' if worst_ratio >= 1.3 else 'NOT met'}")
    print(
        f"worst loop overhead {worst_overhead:.1%} of denoiser time (goal <= 5%): "
        f"{'met' if worst_overhead <= 0.05 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
