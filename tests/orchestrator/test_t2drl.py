"""The T2DRL trainer on the simulator (shipped x86-cpu profiles) with tiny budgets, and ``edgetb train``."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import tomli_w
from typer.testing import CliRunner

from orchestrator.algos import d3pg, ddqn
from orchestrator.algos.ddqn import Config as DDQNConfig
from orchestrator.algos.ddqn import train as train_ddqn
from orchestrator.cli_train import app
from orchestrator.envs.t2drl import CachingEnv, SimBackend
from orchestrator.policies.drl import load_trained
from orchestrator.t2drl import BASELINES, T2DRLConfig, eval_seeds, evaluate, learned_policies, train, train_t2drl
from profiles.scenario import Scenario, load_scenario

TINY = {
    "requests": 400, "caching_requests": 200, "eval_episodes": 1, "eval_slots": 40,
    "allocation": {"learning_starts": 100, "batch_size": 32, "hidden": [16, 16], "critic_hidden": [16, 16]},
    "caching": {"learning_starts": 4, "batch_size": 8, "hidden": [16, 16]},
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def backend() -> SimBackend:
    return SimBackend.from_scenario("t2drl", "x86-cpu")


def test_train_t2drl_writes_results_curve_and_loadable_checkpoints(tmp_path) -> None:
    priors = {"band_prior": True, "rule_prior": True}
    result = train_t2drl("t2drl", tmp_path, seed=2, time_budget_s=120, overrides={**TINY, **priors})
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["policies"] == json.loads(json.dumps(result["policies"]))
    assert set(saved["policies"]) == {"t2drl", *BASELINES}
    assert saved["train_requests"] == 600 and saved["train_frames"] >= 20 and saved["backend"] == "sim"
    assert saved["profiles"] == {m: "measured" for m in ("digits-mlp-s", "digits-resmlp-l", "digits-ldm")}
    for summary in saved["policies"].values():
        assert summary["requests"] == saved["policies"]["lru+fixed-steps"]["requests"] > 0  # the same workloads
        assert -2 < summary["utility"] < 1 and 0 <= summary["hit_ratio"] <= 1
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000
    bound = saved["bound"]  # both bounds lie above every policy; keeping the cache size only lowers it
    assert max(s["utility"] for s in saved["policies"].values()) < bound["cached_utility"] < bound["utility"]
    actor = d3pg.D3PG.load(tmp_path / "allocation.pt")
    learner = ddqn.DDQN.load(tmp_path / "caching.pt")
    # the actor learns from the first 400 requests only (one update round per 2 after its 100 random ones);
    # the last 200 are the caching learner's
    assert actor.env_steps == 400 and actor.updates == (400 - 100) // 2
    assert learner.env_steps == saved["train_frames"]
    # the restored pair replays the held-out workload exactly as the trained one scored it
    cfg = T2DRLConfig(**{**TINY, "allocation": {}, "caching": {}, **priors})
    backend = SimBackend.from_scenario("t2drl", "x86-cpu")
    pair = learned_policies("t2drl", learner, actor, backend, cfg)
    again = evaluate(backend, {"t2drl": pair}, saved["eval_seeds"], 40)
    assert again["t2drl"]["utility"] == pytest.approx(saved["policies"]["t2drl"]["utility"])
    # asked for, with a radio: the actor corrects the square-root rule's band fraction (one more input) and the
    # fixed-steps rule's steps and server (a one-hot of its server), and the loaded policy keeps the rules
    assert saved["config"]["band_prior"] and saved["layout"]["band_prior"] and not T2DRLConfig().band_prior
    assert saved["layout"]["rule_steps"] == backend.policy.fixed_steps and not T2DRLConfig().rule_prior
    assert actor.obs_dim == backend.layout().allocation_obs_dim + 1 + len(backend.layout().servers)
    loaded = load_trained(tmp_path, None, "d3pg")[1]
    assert loaded.band is not None and loaded.layout.rule_steps == backend.policy.fixed_steps


def test_random_caching_variant_has_no_caching_learner(backend) -> None:
    cfg = T2DRLConfig(**{**TINY, "requests": 150})
    learner, actor, history = train("random+d3pg", backend, cfg, log_every_frames=5)
    assert learner is None and actor.env_steps == 150
    assert history[-1]["requests"] == 150 and all(r["epsilon"] is None for r in history)
    assert [r["frame"] for r in history[:-1]] == list(range(5, 5 * len(history) - 4, 5))


def test_ddqn_learns_to_cache_the_popular_models(backend) -> None:
    """DDQN on CachingEnv (inner fixed steps) beats random caching on held-out workloads after 300 frames.

    The tiny problem puts the cloud 1.5 s away, so a miss costs most of a request's utility: with the
    scenario's 200 ms the plans differ by a few percent of utility and 300 frames of noisy rewards train
    some seeds well and others not at all (hit ratio 0.26-0.74 over 12 seeds); here 10 of 10 seeds reach
    0.71-0.81 against random caching's 0.46.
    """
    far = dataclasses.replace(backend.settings, cloud_delay_ms=1500.0)
    backend = dataclasses.replace(backend, settings=far)
    env = CachingEnv(backend)
    cfg = DDQNConfig(
        seed=0, total_steps=300, learning_starts=30, batch_size=32, hidden=(32, 32), epsilon_decay_steps=200,
        gamma=0.5, target_update_every=50, lr=1e-3,
    )  # fmt: skip
    agent, _ = train_ddqn(cfg, env)
    pairs = learned_policies("t2drl", agent, _FixedActor(backend), backend, T2DRLConfig())
    scores = evaluate(backend, {"ddqn": pairs} | _random(backend), eval_seeds(0, 2), 60)
    assert scores["ddqn"]["hit_ratio"] > scores["random+fixed-steps"]["hit_ratio"] + 0.2
    assert scores["ddqn"]["utility"] > scores["random+fixed-steps"]["utility"] + 0.1


class _FixedActor:
    """An "actor" whose deterministic action is 8 steps on the first holder: FixedSteps in action form."""

    def __init__(self, backend: SimBackend) -> None:
        layout = backend.layout()
        self.action = np.full(layout.allocation_act_dim, 0.0, np.float32)
        self.action[0] = 2 * (np.log2(8) / np.log2(layout.max_steps)) - 1
        self.action[len(layout.servers)] = -1.0  # the cloud last
        if layout.radio:  # the band fraction the fixed policies take
            self.action[-1] = 2 * backend.policy.bandwidth_share - 1

    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        return self.action


def _random(backend: SimBackend) -> dict:
    from orchestrator.t2drl import baseline_policies

    return baseline_policies(backend, ("random+fixed-steps",))


def test_the_ddqn_reward_is_the_frames_utility_less_the_request_baselines(backend, monkeypatch) -> None:
    """Trained twice alike, once with a baseline of 0.25 per request: every caching transition's reward is the
    other's less 0.25 (the frame's mean of utility - baseline); the allocation rewards are untouched."""
    import orchestrator.t2drl as t2drl

    stored: dict[bool, dict[str, list[float]]] = {}

    class Recording(t2drl.ReplayBuffer):
        def add(self, obs, action, reward, next_obs, done, next_mask=None) -> None:
            stored[baseline]["caching" if self.next_masks is not None else "allocation"].append(float(reward))
            super().add(obs, action, reward, next_obs, done, next_mask)

    class Quarter:
        def baseline_of(self, req) -> float:
            return 0.25

    monkeypatch.setattr(t2drl, "ReplayBuffer", Recording)
    monkeypatch.setattr(t2drl, "reference_service", lambda backend, cfg: Quarter())
    for baseline in (False, True):
        stored[baseline] = {"caching": [], "allocation": []}
        train("t2drl", backend, T2DRLConfig(**{**TINY, "requests": 300, "caching_baseline": baseline}))
    plain, adjusted = stored[False], stored[True]
    assert len(plain["caching"]) >= 10 and len(adjusted["caching"]) == len(plain["caching"])
    assert adjusted["caching"] == pytest.approx([r - 0.25 for r in plain["caching"]])
    assert adjusted["allocation"] == plain["allocation"]


def test_sb3_actors_train_in_the_same_loop_and_run_as_policies(tmp_path, backend) -> None:
    pytest.importorskip("stable_baselines3")
    from orchestrator.algos import sb3
    from orchestrator.cli_train import T2DRL_ALGOS
    from orchestrator.config import PolicyConfig
    from orchestrator.policies.drl import load_trained
    from orchestrator.t2drl import ALGOS

    assert set(T2DRL_ALGOS) == set(ALGOS)  # the CLI's list (no torch import) is the trainer's
    tiny = {**TINY, "requests": 300, "caching_requests": 60}
    result = train_t2drl("ddqn+sac", tmp_path, seed=1, time_budget_s=120, overrides=tiny)
    assert result["allocation"] == "sac" and set(result["policies"]) == {"ddqn+sac", *BASELINES}
    # the trainer's actor settings under SB3's names: the actor's learning rate; TD3's noise is SAC's unused field
    actor_config = result["actor_config"]
    assert actor_config["algo"] == "sac" and actor_config["learning_rate"] == T2DRLConfig().allocation["actor_lr"]
    assert actor_config["hidden"] == (16, 16) and actor_config["gamma"] == T2DRLConfig().allocation["gamma"]
    actor = sb3.Actor.load(tmp_path / "allocation.pt")
    assert actor.env_steps == 300 and actor.updates == (300 - 100) // 2
    caching, allocation = load_trained(tmp_path, "ddqn", "sac")
    again = evaluate(backend, {"p": (caching, allocation)}, result["eval_seeds"], tiny["eval_slots"])
    assert again["p"]["utility"] == pytest.approx(result["policies"]["ddqn+sac"]["utility"])
    assert PolicyConfig(caching="ddqn", allocation="sac", checkpoint=str(tmp_path)).allocation == "sac"
    # fine-tuned live as the D3PG is: each reward becomes a transition, SB3 takes the owed gradient steps
    _, tuned = load_trained(tmp_path, None, "sac", fine_tune=True)
    episode = backend.episode(result["eval_seeds"][0], 20)
    for _ in range(40):
        _, view, info = episode.request_view()
        choice = tuned.allocate(view, info)
        tuned.learn(info.request_id, episode.allocate(choice).utility)
    tuned.tuning.close()
    assert tuned.tuning.rewards == 39 and tuned.tuning.learner.updates == actor.updates + 39 - 32 + 1
    with pytest.raises(ValueError, match="trained allocation 'sac', not 'td3'"):
        load_trained(tmp_path, None, "td3")
    # TD3 takes the trainer's exploration noise; a field neither has is named
    allocation = {**T2DRLConfig().allocation, **TINY["allocation"]}
    cfg = T2DRLConfig(**{**TINY, "requests": 150, "caching_requests": 0, "allocation": allocation})
    _, td3, _ = train("ddqn+td3", backend, cfg)
    assert td3.cfg.algo == "td3" and td3.cfg.action_noise == T2DRLConfig().allocation["exploration_noise"]
    with pytest.raises(ValueError, match="td3 has no field"):
        train("ddqn+td3", backend, T2DRLConfig(**{**TINY, "allocation": {"denoise_steps": 3}}))


def test_bad_algo_and_config_fields_are_named(tmp_path, backend) -> None:
    with pytest.raises(ValueError, match="algo"):
        train("ppo", backend, T2DRLConfig())
    with pytest.raises(ValueError, match="no field"):
        train_t2drl("t2drl", tmp_path, overrides={"nope": 1})
    with pytest.raises(ValueError, match="d3pg has no field"):
        train_t2drl("t2drl", tmp_path, overrides={"allocation": {"nope": 1}})


def test_cli_trains_t2drl_and_names_bad_options(tmp_path) -> None:
    runner = CliRunner()
    args = ["--algo", "ddqn+ddpg", "--seed", "1", "--out", str(tmp_path), "--steps", "200"]
    tiny = {**TINY, "allocation": {**TINY["allocation"], "hidden": [16, 16]}}
    ok = runner.invoke(app, [*args, "--config", json.dumps(tiny)])
    assert ok.exit_code == 0, ok.output
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["algo"] == "ddqn+ddpg" and "lru+fixed-steps" in ok.output
    assert saved["train_requests"] == 200 + TINY["caching_requests"]  # --steps: the actor's requests
    for bad, named in (("--backend", "--backend"), ("--agent-device", "--agent-device")):
        refused = runner.invoke(app, [*args, bad, "gpu-cluster"])
        assert refused.exit_code == 2 and named in refused.output
    missing = runner.invoke(app, [*args, "--scenario", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 1 and "nope.toml" in missing.output


def test_select_policy_ships_the_run_that_scores_best_on_the_validation_workloads(tmp_path) -> None:
    from orchestrator.cli import app as edgetb
    from orchestrator.policies.drl import load_trained
    from orchestrator.t2drl_select import score_runs, validation_seeds

    runs = [tmp_path / f"t2drl-s{seed}" for seed in (1, 2)]
    for seed, run in zip((1, 2), runs, strict=True):
        train_t2drl("t2drl", run, seed=seed, time_budget_s=120, overrides={**TINY, "requests": 300})
    scores = score_runs(runs, episodes=1, slots=30)
    backend = SimBackend.from_scenario("t2drl", "x86-cpu")
    for run in runs:  # each score is the run's pair replaying the validation workload, not its held-out ones
        replayed = evaluate(backend, {"p": load_trained(run, "ddqn", "d3pg")}, validation_seeds(1), 30)
        assert scores[str(run)] == pytest.approx(replayed["p"]["utility"])
    assert set(validation_seeds(5)).isdisjoint(eval_seeds(s, 5)[i] for s in range(5) for i in range(5))
    out = tmp_path / "shipped"
    ok = CliRunner().invoke(edgetb, ["select-policy", *map(str, runs), "--out", str(out), "--episodes", "1",
                                     "--slots", "30"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    best = max(runs, key=lambda run: scores[str(run)])
    selection = json.loads((out / "selection.json").read_text())
    assert selection["selected"] == str(best) and selection["scores"] == pytest.approx(scores)
    for file in ("result.json", "caching.pt", "allocation.pt"):
        assert (out / file).read_bytes() == (best / file).read_bytes()
    assert load_trained(out, "ddqn", "d3pg")[1] is not None  # the copy loads as a checkpoint
    # a run written before the priors (neither key in its layout) loads and plays without them
    saved = json.loads((out / "result.json").read_text())
    for key in ("band_prior", "rule_steps"):
        del saved["layout"][key]
    (out / "result.json").write_text(json.dumps(saved))
    older = load_trained(out, "ddqn", "d3pg")[1]
    assert older.band is None and older.layout.rule_steps is None
    # runs of another algo, or a folder that is no run, are refused by name
    other = tmp_path / "other"
    other.mkdir()
    saved = json.loads((best / "result.json").read_text())
    (other / "result.json").write_text(json.dumps({**saved, "algo": "ddqn+ddpg", "allocation": "ddpg"}))
    with pytest.raises(ValueError, match="algo 'ddqn\\+ddpg'"):
        score_runs([best, other], episodes=1, slots=30)
    refused = CliRunner().invoke(edgetb, ["select-policy", str(tmp_path / "nope"), "--out", str(out)])
    assert refused.exit_code == 1 and "nope" in refused.output


def test_runs_replay_on_the_scenario_they_recorded_not_on_a_file_of_that_name(tmp_path) -> None:
    from orchestrator.t2drl_select import score_runs, validation_seeds

    custom = load_scenario("t2drl").model_copy(update={"name": "t2drl-custom"})
    custom = custom.model_copy(update={"users": custom.users.model_copy(update={"count": 3})})
    scenario_file = tmp_path / "t2drl-custom.toml"  # a scenario file that is not shipped
    scenario_file.write_text(tomli_w.dumps(custom.model_dump(mode="json", exclude_none=True)))
    run = tmp_path / "run"
    train_t2drl(
        "t2drl", run, scenario=str(scenario_file), seed=1, time_budget_s=120, overrides={**TINY, "requests": 300}
    )
    scenario_file.unlink()  # selection needs no file: the run holds its scenario
    saved = json.loads((run / "result.json").read_text())
    assert saved["scenario"] == "t2drl-custom" and Scenario.build(**saved["scenario_spec"]) == custom
    replayed = evaluate(SimBackend.from_scenario(custom, "x86-cpu"), {"p": load_trained(run, "ddqn", "d3pg")},
                        validation_seeds(1), 30)  # fmt: skip
    shipped = evaluate(SimBackend.from_scenario("t2drl", "x86-cpu"), {"p": load_trained(run, "ddqn", "d3pg")},
                       validation_seeds(1), 30)  # fmt: skip
    score = score_runs([run], episodes=1, slots=30)[str(run)]
    assert score == pytest.approx(replayed["p"]["utility"]) and score != pytest.approx(shipped["p"]["utility"])
    # two runs of one name trained on different scenarios are not compared
    other = tmp_path / "other"
    shutil.copytree(run, other)
    spec = {**saved["scenario_spec"], "users": {**saved["scenario_spec"]["users"], "count": 4}}
    (other / "result.json").write_text(json.dumps({**saved, "scenario_spec": spec}))
    differs = r"other trained on another 't2drl-custom' than the first run \(scenario_spec: users\.count\)"
    with pytest.raises(ValueError, match=differs):
        score_runs([run, other], episodes=1, slots=30)
    # a run written before result.json held the scenario: its name must be a shipped scenario
    del saved["scenario_spec"]
    (other / "result.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"runs: .*other: it names scenario 't2drl-custom', which is not shipped"):
        score_runs([other], episodes=1, slots=30)


def test_slot_rewards_give_every_request_of_a_slot_the_slots_mean_utility() -> None:
    from orchestrator.algos.replay import ReplayBuffer
    from orchestrator.t2drl import _ActorTransitions

    def run(chained: bool, slot_reward: bool, slots=(0, 0, 1, 1, 1, 3), done=True) -> ReplayBuffer:
        buffer = ReplayBuffer(1, 1, 100)
        moves = _ActorTransitions(buffer, chained, slot_reward)
        for i, slot in enumerate(slots):  # request i: observation i, action -i, utility i
            moves.observe(slot, np.array([i], np.float32))
            moves.record(np.array([i], np.float32), np.array([-i], np.float32), float(i))
        moves.end(done)
        return buffer

    def rows(buffer: ReplayBuffer) -> list[tuple]:
        n = len(buffer)
        return list(zip(buffer.obs[:n, 0], buffer.rewards[:n], buffer.next_obs[:n, 0], buffer.dones[:n], strict=True))

    # own utility, chained: each request leads to the next one's observation, the last is terminal
    assert rows(run(True, False)) == [
        (0, 0, 1, 0),
        (1, 1, 2, 0),
        (2, 2, 3, 0),
        (3, 3, 4, 0),
        (4, 4, 5, 0),
        (5, 5, 5, 1),
    ]
    # slot rewards: slot 0 (requests 0, 1) gets 0.5, slot 1 (2, 3, 4) gets 3, slot 3 (5) gets 5
    assert rows(run(True, True)) == [
        (0, 0.5, 1, 0),
        (1, 0.5, 2, 0),
        (2, 3, 3, 0),
        (3, 3, 4, 0),
        (4, 3, 5, 0),
        (5, 5, 5, 1),
    ]
    assert rows(run(False, True)) == [
        (0, 0.5, 0, 1),
        (1, 0.5, 1, 1),
        (2, 3, 2, 1),
        (3, 3, 3, 1),
        (4, 3, 4, 1),
        (5, 5, 5, 1),
    ]
    # an episode cut short keeps only what is complete: the slot under way is dropped
    assert [r[0] for r in rows(run(True, True, done=False))] == [0, 1, 2, 3, 4]
    assert [r[0] for r in rows(run(True, False, done=False))] == [0, 1, 2, 3, 4]


def test_ddqn_with_the_band_rule_trains_the_caching_alone_and_replays_as_policies(tmp_path, backend) -> None:
    from orchestrator.config import PolicyConfig
    from orchestrator.policies import build_policies
    from orchestrator.policies.sqrt_band import SqrtBand
    from orchestrator.t2drl_select import score_runs, validation_seeds

    tiny = {**TINY, "requests": 300, "caching_requests": 300}
    result = train_t2drl("ddqn+sqrt-band", tmp_path, seed=1, time_budget_s=120, overrides=tiny)
    assert result["caching"] == "ddqn" and result["allocation"] == "sqrt-band" and result["actor_config"] is None
    assert result["checkpoints"] == {"caching": "caching.pt"} and not (tmp_path / "allocation.pt").exists()
    learner = ddqn.DDQN.load(tmp_path / "caching.pt")
    # the DDQN learns from the frames of all 600 requests, the rule allocating inside them
    assert result["train_requests"] == 600 and learner.env_steps == result["train_frames"] >= 20
    assert learner.updates == result["train_frames"] - TINY["caching"]["learning_starts"]
    # loaded as the daemon loads it (the rule from the [policy] table), it replays the trained pair's score
    config = PolicyConfig(caching="ddqn", allocation="sqrt-band", checkpoint=str(tmp_path))
    pair = build_policies(config.caching, config.allocation, checkpoint=config.checkpoint)
    assert isinstance(pair[1], SqrtBand)
    again = evaluate(backend, {"p": pair}, result["eval_seeds"], tiny["eval_slots"])
    assert again["p"]["utility"] == pytest.approx(result["policies"]["ddqn+sqrt-band"]["utility"])
    # select-policy scores such a run with its rule too
    fresh = build_policies("ddqn", "sqrt-band", checkpoint=str(tmp_path))
    expected = evaluate(backend, {"p": fresh}, validation_seeds(1), 40)["p"]["utility"]
    assert score_runs([tmp_path], episodes=1, slots=40)[str(tmp_path)] == pytest.approx(expected)


def test_both_replay_buffers_draw_their_batches_by_the_run_seed(backend, monkeypatch) -> None:
    import orchestrator.t2drl as trainer
    from orchestrator.algos.replay import ReplayBuffer

    made: list[tuple[ReplayBuffer, dict]] = []

    class Recorded(ReplayBuffer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append((self, self.rng.bit_generator.state))

    monkeypatch.setattr(trainer, "ReplayBuffer", Recorded)
    train("ddqn+ddpg", backend, T2DRLConfig(**{**TINY, "seed": 7, "requests": 120, "caching_requests": 0}))
    seeded = np.random.default_rng(7).bit_generator.state
    actor_buffer, caching_buffer = (b for b, _ in made)
    assert [state for _, state in made] == [seeded, seeded]
    assert actor_buffer.next_masks is None and caching_buffer.next_masks is not None  # no masks for the actor
