"""A hindsight allocation for the simulator: how much of the bound's room an allocation can take that knows the
slot's coming requests. Not a policy a daemon can run (it reads the workload ahead); a measurement of the room.

:mod:`orchestrator.t2drl_bound` splits each slot's band knowing every request of the slot and its SNR. This
allocation does the same in the real simulator, request by request: at each arrival it solves the bound's slot
problem (:func:`~orchestrator.t2drl_bound.slot_bound`'s greedy optimum) over this request and the slot's later
ones, on the band still free, each valued at its best expected utility where it would run now (an edge that
holds its model, else the cloud with its WAN delay), and gives this request its part of the free band
(``sqrt(w t)`` over the sum of the served set's). A request the optimum leaves to fail takes the least share.
It runs on the holder with the shortest queue (else the cloud) at its best expected steps. What it still loses
against the bound is what the bound waives (queues, loads, the cloud's delay where the cache plan leaves a
model off the edges, the quality and compute draws); what the online policies lose against it is the
knowledge of the slot's future.

``python -m orchestrator.t2drl_oracle RUN... --out FILE``: each run's DDQN (and popular-spread) with this
allocation on the run's held-out workloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.envs.t2drl import SimBackend
from orchestrator.live_demo import summarize
from orchestrator.policies.base import Allocation, ClusterView, NoAgent, RequestInfo
from orchestrator.radio import Downlink
from orchestrator.run_folder import read_run, run_scenario
from orchestrator.sim.cluster import run_episode
from orchestrator.sim.sampler import ModelSampler
from orchestrator.t2drl_bound import air_times_s, best_steps_table, missed_utilities, served_set
from orchestrator.workload import Workload, WorkloadRequest


class HindsightAllocation:
    """The slot's band split knowing the slot's later requests (see the module docstring); simulator only.

    Args:
        requests: the workload the simulator replays (request ids ``sim-<id>``).
        samplers: model -> sampler (as the simulator's).
        downlink: the simulated downlink.
        hops: gRPC round trips per request (``SimSettings.hops``).
        cloud_delay_s: the cloud's mean WAN delay, s.
        max_steps: the most denoising steps.
    """

    name = "hindsight-band"

    def __init__(
        self,
        requests: Sequence[WorkloadRequest],
        samplers: Mapping[str, ModelSampler],
        downlink: Downlink,
        hops: float,
        cloud_delay_s: float,
        max_steps: int = 32,
    ) -> None:
        self.requests = {f"sim-{r.id}": r for r in requests}
        self.later: dict[str, list[WorkloadRequest]] = {}
        by_slot: dict[int, list[WorkloadRequest]] = {}
        for r in sorted(requests, key=lambda r: (r.arrival_s, r.id)):
            by_slot.setdefault(r.slot, []).append(r)
        for reqs in by_slot.values():
            for i, r in enumerate(reqs):
                self.later[f"sim-{r.id}"] = reqs[i + 1 :]
        self.downlink = downlink
        self._edge = best_steps_table(samplers, hops, max_steps)
        self._cloud = best_steps_table(samplers, hops, max_steps, cloud_delay_s)

    def _best(self, r: WorkloadRequest, on_edge: bool) -> tuple[int, float]:
        return self._edge(r) if on_edge else self._cloud(r)

    def allocate(self, view: ClusterView, request: RequestInfo) -> Allocation:
        req = self.requests.get(request.request_id)
        if req is None:
            raise ValueError(f"request_id: {request.request_id!r} is not in the workload this allocation was given")
        held = {m for a in view.edges() for m in a.loaded}
        holders = [a for a in view.edges() if req.model in a.loaded]
        cloud = view.cloud()
        if holders:
            agent = min(holders, key=lambda a: (a.queue_depth, a.inflight, a.name)).name
        elif cloud is not None:
            agent = cloud.name
        else:
            raise NoAgent(f"model: '{req.model}' is loaded on no up edge agent and no cloud agent is up")
        steps = self._best(req, bool(holders))[0]
        slot = [req, *self.later[request.request_id]]
        served = [self._best(r, r.model in held)[1] for r in slot]
        weights = [r.w_latency for r in slot]
        costs = served_set(served, weights, air_times_s(slot, self.downlink), missed_utilities(slot))
        if costs[0] <= 0:  # left to fail (or no latency weight): the least share, the band stays for the others
            return Allocation(agent, steps, "hindsight: the least share", 0.0)
        share = costs[0] / sum(costs)
        return Allocation(agent, steps, f"hindsight: {share:.2f} of the free band", share)


def evaluate_hindsight(backend: SimBackend, caching, seeds: Sequence[int], slots: int, max_steps: int = 32) -> dict:
    """The summary (:func:`orchestrator.live_demo.summarize`) of ``caching`` with :class:`HindsightAllocation` on the
    workloads of ``seeds`` (``slots`` slots each), as :func:`orchestrator.t2drl.evaluate` replays them."""
    if backend.settings.downlink is None:
        raise ValueError("backend: the hindsight allocation splits a radio band; the scenario has no [radio]")
    settings = backend.settings
    results = []
    for seed in seeds:
        requests = Workload.from_scenario(backend.scenario, seed).requests(slots)
        allocation = HindsightAllocation(
            requests, backend.samplers, settings.downlink, settings.hops, settings.cloud_delay_ms / 1e3, max_steps
        )
        results.extend(run_episode(backend.episode(seed, slots), caching, allocation))
    return summarize(results)


app = typer.Typer(add_completion=False)
RUN_KEYS = ("scenario", "device", "seed", "eval_episodes", "eval_slots", "config", "policies", "algo")


@app.command()
def main(
    runs: Annotated[list[Path], typer.Argument(help="`edgetb train --env t2drl` run folders with a DDQN (caching.pt)")],
    out: Annotated[Path, typer.Option(help="JSON file of the figures")] = Path("hindsight_allocation.json"),
) -> None:
    """Each run's DDQN, and popular-spread, with the hindsight allocation on the run's held-out workloads."""
    from orchestrator.policies import build_policies
    from orchestrator.policies.drl import load_trained
    from orchestrator.t2drl import eval_seeds

    rows = {}
    for run in runs:
        try:
            result = read_run(run, "runs", RUN_KEYS)
            scenario = run_scenario(result, "runs", run)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        backend = SimBackend.from_scenario(scenario, result["device"])
        seeds, slots = eval_seeds(int(result["seed"]), result["eval_episodes"]), result["eval_slots"]
        steps = result["config"]["max_steps"]
        ddqn, _ = load_trained(run, "ddqn", None)
        spread, _ = build_policies("popular-spread", "none")
        row = {
            "seed": result["seed"], "eval_seeds": seeds, "eval_slots": slots,
            "ddqn+hindsight": evaluate_hindsight(backend, ddqn, seeds, slots, steps),
            "popular-spread+hindsight": evaluate_hindsight(backend, spread, seeds, slots, steps),
            "trained": result["policies"][result["algo"]]["utility"], "bound": result.get("bound"),
        }  # fmt: skip
        rows[str(run)] = row
        typer.echo(
            f"{run}: ddqn+hindsight {row['ddqn+hindsight']['utility']:.4f}, popular-spread+hindsight "
            f"{row['popular-spread+hindsight']['utility']:.4f}, {result['algo']} {row['trained']:.4f}"
        )
    out.write_text(json.dumps(rows, indent=2, default=str) + "\n")
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    app()
