"""Where a band-prior run's actor loses against the square-root rule: its pair replayed three ways.

For each ``edgetb train --env t2drl --config '{"band_prior": true}'`` run folder, on the run's held-out workloads
(as ``result.json`` recorded them): the learned pair as trained; the same with the actor's band entry forced to 0
(the rule's band fraction, the actor's steps and server); and the run's DDQN with ``sqrt-band`` itself (the rule's
band, fixed steps on the best holder). Also the actor's band entries over the replay (mean, sd, p10, p90).

    python scripts/band_ablation.py results/t2drl-band-prior/t2drl-s{0..4} --out ablation.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from orchestrator.envs.t2drl import SimBackend
from orchestrator.policies import build_policies
from orchestrator.policies.drl import LearnedAllocation, load_trained
from orchestrator.t2drl import evaluate


def ablate(run: Path, checkpoint: Path) -> dict:
    """The three replays of one run (``run``: its result.json; ``checkpoint``: the folder with its .pt files)."""
    result = json.loads((run / "result.json").read_text())
    if not result["layout"].get("band_prior"):
        raise SystemExit(f"{run}: trained without the band prior (its band entry is not a correction)")
    backend = SimBackend.from_scenario(result["scenario"], result["device"])
    caching, learned = load_trained(checkpoint, "ddqn", result["allocation"])
    assert learned is not None
    entries: list[float] = []

    def logged(obs: np.ndarray) -> np.ndarray:
        action = np.asarray(learned.act(obs), np.float32)
        entries.append(float(action[-1]))
        return action

    def band_zero(obs: np.ndarray) -> np.ndarray:
        action = np.array(learned.act(obs), np.float32)
        action[-1] = 0.0
        return action

    pairs = {
        "learned": (caching, LearnedAllocation(logged, learned.layout)),
        "band_entry_0": (caching, LearnedAllocation(band_zero, learned.layout)),
        "ddqn+sqrt-band": (caching, build_policies("none", "sqrt-band", fixed_steps=backend.policy.fixed_steps)[1]),
    }
    summaries = evaluate(backend, pairs, result["eval_seeds"], result["eval_slots"])
    recorded = result["policies"][result["algo"]]["utility"]
    if abs(summaries["learned"]["utility"] - recorded) > 1e-9:
        raise SystemExit(f"{run}: the learned pair replays {summaries['learned']['utility']}, recorded {recorded}")
    band = np.asarray(entries)
    return {
        "algo": result["algo"], "seed": result["seed"], "eval_seeds": result["eval_seeds"],
        **{name: {"utility": s["utility"], "hit_ratio": s["hit_ratio"]} for name, s in summaries.items()},
        "band_entry": {"mean": band.mean(), "sd": band.std(), "p10": np.percentile(band, 10),
                       "p90": np.percentile(band, 90)},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="band-prior run folders (result.json)")
    parser.add_argument("--checkpoints", type=Path, help="folder holding the runs' folders with their .pt files")
    parser.add_argument("--out", type=Path, required=True, help="JSON file of the figures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for run in args.runs:
        row = ablate(run, args.checkpoints / run.name if args.checkpoints else run)
        rows.append(row)
        print(
            f"{run}: "
            + ", ".join(f"{k} {row[k]['utility']:.4f}" for k in ("learned", "band_entry_0", "ddqn+sqrt-band"))
        )
    args.out.write_text(json.dumps(rows, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
