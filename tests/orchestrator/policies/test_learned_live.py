"""Policies trained in the simulator run unchanged in the live daemon: ``caching = "ddqn"``, ``allocation = "d3pg"``.

A tiny T2DRL run (seconds) writes a checkpoint; a daemon with in-process simulated agents named like
the simulator's (``edge-1``, ``edge-2``, ``cloud``) loads it, plans frames with the DDQN and places
requests with the D3PG actor.
"""

from __future__ import annotations

import json
import shutil

import grpc
import pytest
import torch

from orchestrator.config import PolicyConfig
from orchestrator.policies import build_policies
from orchestrator.policies.drl import ChainedTuning, LearnedAllocation, LearnedCaching
from orchestrator.t2drl import train_t2drl
from profiles.scenario import load_scenario

HEARTBEAT_S = 0.5  # down after 3 silent intervals: generous, the full suite loads the 2 cores
MODELS = ("digits-mlp-s", "digits-resmlp-l", "digits-ldm")
TINY = {
    "requests": 300, "caching_requests": 100, "eval_episodes": 1, "eval_slots": 20, "max_steps": 16,
    "allocation": {"learning_starts": 100, "batch_size": 32, "hidden": [16, 16], "critic_hidden": [16, 16]},
    "caching": {"learning_starts": 4, "batch_size": 8, "hidden": [16, 16]},
}  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folder = tmp_path_factory.mktemp("t2drl")
        train_t2drl("t2drl", folder, seed=4, time_budget_s=120, overrides=TINY)
        return folder
    finally:
        torch.set_num_threads(threads)


def test_learned_policies_load_by_name_and_refuse_mismatches(checkpoint) -> None:
    caching, allocation = build_policies("ddqn", "d3pg", checkpoint=str(checkpoint))
    assert isinstance(caching, LearnedCaching) and isinstance(allocation, LearnedAllocation)
    assert allocation.layout.max_steps == 16 and allocation.layout.edges == ("edge-1", "edge-2")
    with pytest.raises(ValueError, match="trained allocation 'd3pg', not 'ddpg'"):
        build_policies("most-popular", "ddpg", checkpoint=str(checkpoint))
    with pytest.raises(ValueError, match=r"checkpoint: .* is not an `edgetb train"):
        build_policies("ddqn", "fixed-steps", checkpoint=str(checkpoint / "nope"))
    with pytest.raises(ValueError, match="checkpoint: the learned policies ddqn need"):
        PolicyConfig(caching="ddqn", allocation="fixed-steps")
    # the daemon's settings refuse a wrong or missing run before anything starts (no torch needed)
    with pytest.raises(ValueError, match="trained allocation 'd3pg', not 'ddpg'"):
        PolicyConfig(caching="most-popular", allocation="ddpg", checkpoint=str(checkpoint))
    with pytest.raises(ValueError, match="is not an `edgetb train --env t2drl` run folder"):
        PolicyConfig(caching="ddqn", allocation="d3pg", checkpoint=str(checkpoint / "nope"))


def test_a_checkpoint_trained_on_other_features_is_refused_by_name(checkpoint, tmp_path) -> None:
    from orchestrator.algos.d3pg import D3PG
    from orchestrator.algos.ddqn import DDQN

    result = json.loads((checkpoint / "result.json").read_text())
    stale = tmp_path / "stale"
    shutil.copytree(checkpoint, stale)
    actor = D3PG.load(checkpoint / "allocation.pt")
    D3PG(actor.obs_dim - 1, actor.act_dim, actor.cfg).save(stale / "allocation.pt")  # one feature fewer
    with pytest.raises(ValueError, match=r"allocation\.pt takes .* observations .* retrain it"):
        build_policies("random", "d3pg", checkpoint=str(stale))
    learner = DDQN.load(checkpoint / "caching.pt")
    DDQN(learner.obs_dim + 1, learner.n_actions, learner.cfg).save(stale / "caching.pt")
    with pytest.raises(ValueError, match=r"caching\.pt takes .* observations .* retrain it"):
        build_policies("ddqn", "fixed-steps", checkpoint=str(stale))
    assert result["checkpoints"] == {"allocation": "allocation.pt", "caching": "caching.pt"}


def test_the_caching_policy_carries_the_reward_baseline_its_learner_trained_with(checkpoint, tmp_path) -> None:
    from orchestrator.caching_reward import ReferenceService

    result = json.loads((checkpoint / "result.json").read_text())
    assert result["caching_reward"] == {"baseline": None}  # the trainer's default: the frame's mean utility
    assert build_policies("ddqn", "fixed-steps", checkpoint=str(checkpoint))[0].reward_baseline is None
    reference = ReferenceService.for_scenario(load_scenario("t2drl"), "x86-cpu", 16)
    other = tmp_path / "other"  # as a run trained with `caching_baseline = true` writes it
    shutil.copytree(checkpoint, other)
    written = {**result, "caching_reward": {"baseline": "reference", "reference": reference.to_json()}}
    (other / "result.json").write_text(json.dumps(written))
    caching, _ = build_policies("ddqn", "fixed-steps", checkpoint=str(other))
    for args in (("digits-ldm", 0.5, 0.01, 10.0, 3.0), ("digits-mlp-s", 1.0, 0.0, -5.0, 2.0)):
        assert caching.reward_baseline(*args) == reference.baseline(*args)
    older = tmp_path / "older"  # a run from before the baseline: its learner trained on the frame's mean utility
    shutil.copytree(checkpoint, older)
    (older / "result.json").write_text(json.dumps({k: v for k, v in result.items() if k != "caching_reward"}))
    assert build_policies("ddqn", "fixed-steps", checkpoint=str(older))[0].reward_baseline is None
    (older / "result.json").write_text(json.dumps({**result, "caching_reward": {"baseline": "median"}}))
    with pytest.raises(ValueError, match=r"caching_reward\.baseline 'median' is unknown"):
        build_policies("ddqn", "fixed-steps", checkpoint=str(older))


def learned_cluster(policy_cluster, run_dir, checkpoint, **policy):
    """The daemon with the trained pair of ``checkpoint`` and agents named as the simulator's."""
    policy = {"caching": "ddqn", "allocation": "d3pg", "checkpoint": str(checkpoint), "slot_s": 0.2,
              "frame_slots": 3, "cache_models": 1, "cloud_agent": "cloud", **policy}  # fmt: skip
    return policy_cluster(run_dir, policy, ("edge-1", "edge-2"), HEARTBEAT_S)


@pytest.fixture
def cluster(tmp_path, policy_cluster, checkpoint, wait_for):
    with learned_cluster(policy_cluster, tmp_path, checkpoint) as running:
        yield running


def _loaded(client) -> dict[str, set[str]]:
    return {a.name: set(a.loaded_models) for a in client.status().agents}


def test_the_daemon_runs_the_trained_pair(cluster, wait_for) -> None:
    client = cluster.client
    assert client.status().policies == ("caching:ddqn", "allocation:d3pg")
    # every frame the DDQN plans one model per edge agent
    wait_for(lambda: all(len(_loaded(client)[e]) == 1 for e in ("edge-1", "edge-2")), what="a DDQN plan applied")
    loads_on_edges = 0
    for i, model in enumerate(MODELS * 2):
        routed = client.submit(model, label=i % 10, seed=i, request_id=f"learned-{i}")
        assert routed.agent in {"edge-1", "edge-2", "cloud"}
        assert 1 <= routed.steps <= 16 and routed.steps_source == "policy"
        assert routed.image.shape[-2:] == (8, 8)
        # the actor sends a request to an edge only where the model is loaded (the cloud loads each model on
        # its first request); a load on an edge can only come from a frame plan racing the request
        loads_on_edges += routed.loaded_model and routed.agent != "cloud"
    assert loads_on_edges <= 1


def test_fine_tuning_learns_from_live_rewards_and_writes_the_tuned_policies(
    tmp_path, policy_cluster, checkpoint, wait_for
):
    from orchestrator.algos.d3pg import D3PG

    before = D3PG.load(checkpoint / "allocation.pt")
    with learned_cluster(policy_cluster, tmp_path, checkpoint, fine_tune=True) as running:
        loop = running.daemon.policy_loop
        assert loop.allocation.tuning is not None and loop.caching.tuning is not None
        wait_for(lambda: all(len(_loaded(running.client)[e]) == 1 for e in ("edge-1", "edge-2")), what="a plan")
        served = 0
        for i in range(60):
            try:
                running.client.submit(MODELS[i % 3], label=i % 10, seed=i, request_id=f"tune-{i}")
                served += 1
            except grpc.RpcError as exc:  # an agent marked down on a loaded box: that request has no reward
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
        assert served >= 40
        tuning = loop.allocation.tuning
        assert isinstance(tuning, ChainedTuning)  # the actor trained with gamma 0.8: transitions chain
        # every request brings a reward, a failed one too (zero quality after the time it took); the last
        # request's transition waits for a next decision
        stored = 60 - 1
        wait_for(lambda: tuning.rewards == stored, what="every reward handed to the actor")
        updates = stored - 32 + 1  # one update per reward once a batch (32) is stored
        assert tuning._worker is not None and tuning._worker.name == "fine-tuning"  # steps off the event loop
        wait_for(lambda: tuning.learner.updates == before.updates + updates, what="the owed updates")
        assert tuning.skipped == 0
        store = running.daemon.store.path
    tuned = store.with_name(f"{store.stem}-tuned")
    after = D3PG.load(tuned / "allocation.pt")
    assert after.env_steps == before.env_steps + stored and after.updates == before.updates + updates
    weights = zip(after.actor.state_dict().values(), before.actor.state_dict().values(), strict=True)
    assert any(not torch.equal(a, b) for a, b in weights)
    result = json.loads((tuned / "result.json").read_text())
    assert result["fine_tuned"]["allocation"]["rewards"] == stored and (tuned / "caching.pt").exists()
    caching, allocation = build_policies("ddqn", "d3pg", checkpoint=str(tuned))  # the tuned run loads again
    assert isinstance(caching, LearnedCaching) and isinstance(allocation, LearnedAllocation)


def test_the_daemon_warns_when_its_scenario_is_not_the_one_the_checkpoint_trained_on(checkpoint, tmp_path, caplog):
    import tomli_w

    from orchestrator.config import Limits
    from orchestrator.metrics import Metrics
    from orchestrator.policy_loop import PolicyLoop
    from orchestrator.registry import Registry

    def start(**policy: object) -> list[str]:
        caplog.clear()
        config = PolicyConfig(caching="ddqn", allocation="d3pg", checkpoint=str(checkpoint), **policy)
        with caplog.at_level("WARNING", logger="orchestrator.policy_loop"):
            PolicyLoop(config, Registry(heartbeat_s=1.0, max_agents=8), lambda e: None, None, Metrics(), Limits())  # type: ignore[arg-type]
        return [r.getMessage() for r in caplog.records if r.name == "orchestrator.policy_loop"]

    assert start(scenario="t2drl") == []  # the scenario it trained on
    assert start() == []  # no scenario named: nothing to compare
    assert start(scenario="t2drl", slot_s=0.25) == [
        f"checkpoint {checkpoint} trained on a scenario that differs from 't2drl' in timing.slot_s: "
        "its learners run as trained"
    ]
    spec = load_scenario("t2drl").model_dump(mode="json", exclude_none=True)
    spec["utility"]["w_latency"] *= 2
    (tmp_path / "heavy.toml").write_text(tomli_w.dumps({**spec, "name": "heavy"}))
    warned = start(scenario=str(tmp_path / "heavy.toml"))
    assert len(warned) == 1 and "differs from 'heavy' in utility.w_latency:" in warned[0]
