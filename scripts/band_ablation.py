"""Where a band-prior run's actor loses against the square-root rule: its pair replayed three ways.

For each ``edgetb train --env t2drl --config '{"band_prior": true}'`` run folder, on the run's held-out workloads
(as ``result.json`` recorded them): the learned pair as trained; the same with the actor's band entry forced to 0
(the rule's band fraction, the actor's steps and server); and the run's DDQN with ``sqrt-band`` itself (the rule's
band, fixed steps on the best holder). Also the actor's band entries over the replay (mean, sd, p10, p90), and
(D3PG / DDPG actors) what the run's own critic thinks of them: over the replay's requests, Q(s, a) - Q(s, a')
for a' the action with its band entry at 0 and, with the rule prior (``features.Layout.rule_steps``: an action of
0 plays ``sqrt-band``), for a' = 0: the mean and the share of requests where the critic prefers the learned action.

    python scripts/band_ablation.py results/t2drl-band-prior/t2drl-s{0..4} --out ablation.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from orchestrator.algos import d3pg, ddpg
from orchestrator.envs.t2drl import SimBackend
from orchestrator.policies import build_policies
from orchestrator.policies.drl import LearnedAllocation, load_trained
from orchestrator.run_folder import read_run, run_scenario
from orchestrator.t2drl import evaluate


def ablate(run: Path, checkpoint: Path) -> dict:
    """The three replays of one run (``run``: its result.json; ``checkpoint``: the folder with its .pt files)."""
    try:
        result = read_run(run, "run", ("layout", "scenario", "device", "allocation"))
        scenario = run_scenario(result, "run", run)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    if not result["layout"].get("band_prior"):
        raise SystemExit(f"{run}: trained without the band prior (its band entry is not a correction)")
    backend = SimBackend.from_scenario(scenario, result["device"])
    caching, learned = load_trained(checkpoint, "ddqn", result["allocation"])
    assert learned is not None
    observed: list[np.ndarray] = []
    acted: list[np.ndarray] = []

    def logged(obs: np.ndarray) -> np.ndarray:
        action = np.asarray(learned.act(obs), np.float32)
        observed.append(np.asarray(obs, np.float32))
        acted.append(action)
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
    band = np.asarray([a[-1] for a in acted])
    return {
        "algo": result["algo"], "seed": result["seed"], "eval_seeds": result["eval_seeds"],
        **{name: {"utility": s["utility"], "hit_ratio": s["hit_ratio"]} for name, s in summaries.items()},
        "band_entry": {"mean": band.mean(), "sd": band.std(), "p10": np.percentile(band, 10),
                       "p90": np.percentile(band, 90)},
        "critic": critic_view(checkpoint, result["allocation"], np.stack(observed), np.stack(acted),
                              zero=learned.layout.rule_steps is not None),
    }  # fmt: skip


def critic_view(checkpoint: Path, allocation: str, obs: np.ndarray, actions: np.ndarray, zero: bool) -> dict | None:
    """The run's critic on the replayed ``obs`` / ``actions``: Q(s, a) - Q(s, a') for a' with the band entry at 0 and
    (``zero``) a' = 0; None for an actor whose critic this does not read (SB3's)."""
    if allocation not in ("d3pg", "ddpg"):
        return None
    agent = (d3pg.D3PG if allocation == "d3pg" else ddpg.DDPG).load(checkpoint / "allocation.pt")

    def q(a: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            value = agent.critic(torch.as_tensor(obs), torch.as_tensor(a))
        return torch.min(*value) if isinstance(value, tuple) else value  # D3PG: its twins' minimum

    learned = q(actions)
    band_zero = actions.copy()
    band_zero[:, -1] = 0.0
    others = {"band_entry_0": band_zero, **({"zero": np.zeros_like(actions)} if zero else {})}
    view: dict[str, object] = {"q_mean": float(learned.mean())}
    for name, other in others.items():
        gap = learned - q(other)
        view[name] = {"q_gain_mean": float(gap.mean()), "prefers_learned": float((gap > 0).float().mean())}
    return view


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
