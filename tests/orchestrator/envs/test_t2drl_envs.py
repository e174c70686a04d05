"""The T2DRL envs on the sim backend (shipped x86-cpu profiles): API checks, signal, seeding, feasibility."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from orchestrator.envs.features import (
    BAND_PRIOR_LOGIT,
    ENERGY_CAP_J,
    POWER_CAP_W,
    PRIOR_CLIP,
    REMAINING_SCALE,
    RULE_SERVER_BONUS,
    SE_SCALE,
    W_ENERGY_SCALE,
    W_LATENCY_SCALE,
    Layout,
    allocation_observation,
    cache_configs,
    caching_observation,
    corrected_share,
    decode_allocation,
    hopeless,
    steps_of,
)
from orchestrator.envs.t2drl import AllocationEnv, CachingEnv, SimBackend
from orchestrator.policies.base import AgentState, ClusterView, Measured, NoAgent, RequestInfo
from orchestrator.policies.drl import LearnedAllocation, LearnedCaching
from orchestrator.policies.fixed_steps import FixedSteps
from orchestrator.policies.sqrt_band import COMING_SCALE, SqrtBand
from orchestrator.radio import Downlink
from orchestrator.sim.cluster import simulate
from orchestrator.workload import Workload
from profiles.scenario import Scenario, load_scenario


@pytest.fixture(scope="module")
def backend() -> SimBackend:
    return SimBackend.from_scenario("t2drl", "x86-cpu", episode_slots=30)


def test_both_envs_pass_gymnasium_and_sb3_checkers(backend) -> None:
    for env in (CachingEnv(backend), AllocationEnv(backend)):
        check_env(env, skip_render_check=True)
        sb3_env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
        sb3_env_checker.check_env(env, warn=True)


def test_caching_the_popular_models_pays_more_than_caching_the_rare_one(backend) -> None:
    env = CachingEnv(backend)
    configs = env.configs
    popular = next(i for i, c in enumerate(configs) if c == {"edge-1": {"digits-resmlp-l"}, "edge-2": {"digits-mlp-s"}})
    rare = next(i for i, c in enumerate(configs) if c == {"edge-1": {"digits-ldm"}, "edge-2": {"digits-ldm"}})

    def mean_reward(action: int) -> tuple[float, float]:
        rewards, hits, requests = [], 0, 0
        for seed in range(4):
            env.reset(seed=seed)
            _, reward, _, _, info = env.step(action)  # frame 0: the popularity order is the scenario's rank
            rewards.append(reward)
            hits, requests = hits + info["hits"], requests + info["requests"]
        return float(np.mean(rewards)), hits / requests

    (good, good_hits), (bad, bad_hits) = mean_reward(popular), mean_reward(rare)
    assert good > bad and good_hits > 0.6 > 0.3 > bad_hits


def test_caching_episode_is_seeded_and_ends_after_its_frames(backend) -> None:
    env = CachingEnv(backend)
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=11)
        trace, done = [obs], False
        while not done:
            obs, reward, done, truncated, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
            trace += [obs, reward]
            assert not truncated
        runs.append(trace)
    assert len(runs[0]) == 1 + 2 * 3  # 30 slots = 3 frames of 10
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))
    assert env.observation_space.contains(runs[0][-2])


def test_allocation_rewards_follow_steps_and_server(backend) -> None:
    env = AllocationEnv(backend, caching=LearnedCaching(lambda o, m: 0, backend.layout(), name="first"))
    servers = env.layout.servers

    def mean_reward(a0: float, server: str) -> float:
        action = np.full(env.layout.allocation_act_dim, -1.0, np.float32)
        action[0] = a0
        action[1 + servers.index(server)] = 1.0
        env.reset(seed=5)
        rewards, done = [], False
        while not done:
            _, reward, done, _, info = env.step(action)
            rewards.append(reward)
            assert info["agent"] == server or info["agent"] == "cloud"  # the best feasible server
        return float(np.mean(rewards))

    eight_steps = 2 * (np.log2(8) / np.log2(32)) - 1
    edge = mean_reward(eight_steps, "edge-1")
    assert edge > mean_reward(eight_steps, "cloud")  # the WAN delay costs utility
    assert edge > mean_reward(-1.0, "edge-1")  # 1 step: the evaluator barely recognises the digit


def test_steps_map_and_decode_only_picks_servers_holding_the_model() -> None:
    layout = Layout(("a", "b"), ("edge-1", "edge-2"), max_steps=32)
    assert (steps_of(-1, layout), steps_of(1, layout), steps_of(0, layout)) == (1, 32, 6)
    agents = (
        AgentState("edge-1", True, False, frozenset({"a"}), frozenset({"a", "b"})),
        AgentState("edge-2", True, False, frozenset({"b"}), frozenset({"a", "b"})),
        AgentState("cloud", True, True, frozenset(), frozenset({"a", "b"})),
    )
    view = ClusterView(0.0, 0, 0, agents)
    prefers_edge2 = np.array([0.0, 0.5, 1.0, -1.0])  # edge-2, then edge-1, then the cloud
    assert decode_allocation(prefers_edge2, view, RequestInfo("r", "a", 1), layout)[0] == "edge-1"  # edge-2 lacks a
    assert decode_allocation(prefers_edge2, view, RequestInfo("r", "b", 1), layout)[0] == "edge-2"
    down = ClusterView(0.0, 0, 0, (agents[0], dataclasses.replace(agents[2], up=False)))
    with pytest.raises(NoAgent, match="model"):
        decode_allocation(prefers_edge2, down, RequestInfo("r", "b", 1), layout)
    with pytest.raises(ValueError, match="action"):
        decode_allocation(np.zeros(2), view, RequestInfo("r", "a", 1), layout)
    assert len(cache_configs(layout)) == 4 and len(cache_configs(dataclasses.replace(layout, cache_models=2))) == 1


def test_a_request_no_band_share_can_save_gets_the_least_share() -> None:
    layout = Layout(("a",), ("edge-1",), radio=True)
    agents = (AgentState("edge-1", True, False, frozenset({"a"}), frozenset({"a"})),)
    link = Downlink(1e6, 100_000, 0.05)  # 0.8 Mbit: 0.8 s on the whole band at 0 dB (1 bit/s/Hz)
    measured = {("edge-1", "a", 6): Measured(latency_s=0.3, count=2), ("edge-1", "a", 16): Measured(1.5, count=2)}
    view = ClusterView(0.0, 0, 0, agents, measured=measured, band_free=0.5, downlink=link)  # 1.6 s on the free band
    action = np.array([0.0, 1.0, -1.0, 0.5])  # 6 steps, edge-1, 75 % of the free band

    def request(deadline_s: float | None, snr_db: float | None = 0.0) -> RequestInfo:
        return RequestInfo("r", "a", 1, snr_db=snr_db, deadline_s=deadline_s)

    assert decode_allocation(action, view, request(2.0), layout) == ("edge-1", 6, 0.75)  # 1.6 + 0.3 s fits in 2 s
    assert decode_allocation(action, view, request(1.8), layout) == ("edge-1", 6, 0.0)  # hopeless: least share
    assert decode_allocation(action, view, request(1.8, snr_db=10.0), layout)[2] == 0.75  # a better channel fits
    assert decode_allocation(action, replace_view(view, band_free=1.0), request(1.8), layout)[2] == 0.75
    # not known: the deadline, the SNR or the downlink -> the actor's share stands
    assert decode_allocation(action, view, request(None), layout)[2] == 0.75
    assert decode_allocation(action, view, request(1.8, snr_db=None), layout)[2] == 0.75
    assert decode_allocation(action, replace_view(view, downlink=None), request(1.8), layout)[2] == 0.75
    # the latency measured at the chosen steps, else the mean over step counts, else none
    assert not hopeless(view, request(2.0), "edge-1", 6) and hopeless(view, request(2.0), "edge-1", 16)  # 1.9, 3.1 s
    assert hopeless(view, request(2.45), "edge-1", 3) and not hopeless(view, request(2.55), "edge-1", 3)  # 1.6 + 0.9
    nothing = replace_view(view, measured={})
    assert not hopeless(nothing, request(1.65), "edge-1", 6) and hopeless(nothing, request(1.55), "edge-1", 6)


def replace_view(view: ClusterView, **changes: object) -> ClusterView:
    return dataclasses.replace(view, **changes)


def test_observations_carry_memory_power_and_energy_as_the_telemetry_reports_them() -> None:
    layout = Layout(("a", "b"), ("edge-1", "edge-2"))
    gib = 2**30
    agents = (
        AgentState("edge-1", True, False, frozenset({"a"}), frozenset({"a", "b"}), 3 * gib, 4 * gib, power_w=12.0),
        AgentState("edge-2", True, False, frozenset({"b"}), frozenset({"a", "b"})),  # reports neither
        AgentState("cloud", True, True, frozenset(), frozenset({"a", "b"}), power_w=250.0),
    )
    measured = {
        ("edge-1", "a", 4): Measured(latency_s=0.2, energy_j=1.0, count=1),
        ("edge-1", "a", 16): Measured(latency_s=0.5, energy_j=4.0, count=3),  # mean 3.25 J
        ("edge-2", "a", 4): Measured(latency_s=0.2, count=2),  # no power measured there: no energy
    }
    view = ClusterView(0.0, 0, 0, agents, measured=measured)
    # caching: the models' shares (2 + 2), loaded (2 x 2), room per (edge agent, model) (2 x 2), the phase
    sizes = {"a": 1 * gib, "b": 4 * gib}
    obs = caching_observation(view, layout, sizes)
    assert obs.shape == (layout.caching_obs_dim,) == (13,)
    assert obs[4:8].tolist() == [1.0, 0.0, 0.0, 1.0]
    # edge-1 holds a; b (4 GiB) fits in its 3 GiB free plus a's 1 GiB; edge-2 holds b, its free memory unknown
    assert obs[8:12].tolist() == [1.0, 1.0, -1.0, 1.0]
    assert caching_observation(view, layout, {**sizes, "b": 4 * gib + 1})[8:10].tolist() == [1.0, 0.0]
    assert caching_observation(view, layout, {"a": gib})[8:10].tolist() == [1.0, -1.0]  # b's size unknown
    down = replace_view(view, agents=(dataclasses.replace(agents[0], up=False), *agents[1:]))
    assert caching_observation(down, layout, sizes)[8:10].tolist() == [-1.0, -1.0]
    # free memory the models do not need comes and goes: the observation stays the same
    roomy = replace_view(view, agents=(dataclasses.replace(agents[0], mem_free_bytes=gib * 7 // 2), *agents[1:]))
    assert caching_observation(roomy, layout, sizes).tolist() == obs.tolist()
    # allocation: one-hot (2), floor, the user's two weights, then per server 5 entries
    request = RequestInfo("r", "a", 1, w_latency=0.5, w_energy=0.02)
    obs = allocation_observation(view, request, layout)
    assert obs.shape == (layout.allocation_obs_dim,) == (20,)
    assert obs[3:5] == pytest.approx([0.5 / W_LATENCY_SCALE, 0.02 / W_ENERGY_SCALE])
    edge1, edge2, cloud = obs[5:10], obs[10:15], obs[15:20]
    assert edge1 == pytest.approx([1.0, 0.0, 0.425, 3.25 / ENERGY_CAP_J, 12.0 / POWER_CAP_W])
    assert edge2 == pytest.approx([0.0, 0.0, 0.2, -1.0, -1.0])
    assert cloud == pytest.approx([1.0, 0.0, -1.0, -1.0, 1.0])  # 250 W is clipped at the cap
    unknown = allocation_observation(view, RequestInfo("r", "a", 1), layout)
    assert unknown[3:5].tolist() == [-1.0, -1.0]


def test_the_simulator_reports_power_and_energy_only_for_a_device_that_measures_them() -> None:
    def telemetry(device: str) -> tuple[set[float], set[float], set[float], float | None]:
        """Power and energy entries of edge-1's allocation observations and its free memory over one
        episode; the power the cloud agent reports while it serves a request."""
        backend = SimBackend.from_scenario("t2drl", device, episode_slots=20)
        layout = backend.layout()
        server = 3 + len(layout.models)  # after the one-hot, the floor and the two weights
        env = AllocationEnv(backend)
        obs, _ = env.reset(seed=2)
        power, energy, mem, done = set(), set(), set(), False
        while not done:
            power.add(round(float(obs[server + 4]), 6))
            energy.add(round(float(obs[server + 3]), 6))
            mem.add(_mem_free_fraction(env._request[1], "edge-1"))
            obs, _, done, _, _ = env.step(np.ones(env.action_space.shape, np.float32))  # 32 steps, edge-1 first
        episode = backend.episode(3)
        episode.end_frame(None)
        req, _, _ = episode.request_view()
        episode.serve("cloud", 32)
        return power, energy, mem, episode.cluster.view(req.arrival_s, 0, 0).agent("cloud").power_w

    power, energy, mem, busy = telemetry("x86-cpu")  # no RAPL: the live agent reports power unavailable
    assert power == energy == {-1.0} and busy is None
    # the episode's other use is drawn once; what changes is the loaded models (small beside 24 GiB)
    assert len(mem) > 1 and min(mem) > 0.5 and max(mem) - min(mem) < 1e-3
    power, energy, _, busy = telemetry("jetson-orin-nano")  # INA3221: power measured
    assert power == {round(4.824 / POWER_CAP_W, 6)}  # the profile's power at rest between requests
    assert busy == 15.0  # a busy agent reports the profile's power under load
    assert -1.0 in energy and max(energy) > 0  # none before the first served request, measured after
    seeds = {_mem_free_fraction(SimBackend.from_scenario("t2drl", "x86-cpu").episode(s).frame_view(), "edge-1")
             for s in range(6)}  # fmt: skip
    assert len(seeds) == 6 and all(0.5 <= m <= 1.0 for m in seeds)


def test_the_caching_observation_says_which_models_fit_a_small_simulated_device(backend) -> None:
    """A 10 MB edge with half its memory in other use has room for the 1.4 MB and 4.3 MB models, not the
    7.2 MB one; the same edge with all of it free has room for all three."""
    layout = backend.layout()
    assert backend.mem_bytes()["digits-resmlp-l"] > 5_000_000 > backend.mem_bytes()["digits-mlp-s"]
    room_at = 2 * len(layout.models) + len(layout.edges) * len(layout.models)

    def room(other_used: float) -> list[float]:
        settings = dataclasses.replace(backend.settings, mem_total_bytes=10_000_000, mem_other_used=(other_used,) * 2)
        obs, _ = CachingEnv(dataclasses.replace(backend, settings=settings)).reset(seed=0)
        return obs[room_at : room_at + len(layout.models)].tolist()  # edge-1, nothing loaded yet

    fits = [1.0 if backend.mem_bytes()[m] <= 5_000_000 else 0.0 for m in layout.models]
    assert room(0.5) == fits and 0.0 in fits
    assert room(0.0) == [1.0] * len(layout.models)


def _mem_free_fraction(view: ClusterView, name: str) -> float:
    agent = view.agent(name)
    assert agent is not None and agent.mem_total_bytes is not None and agent.mem_free_bytes is not None
    return agent.mem_free_bytes / agent.mem_total_bytes


def test_learned_policies_run_unchanged_in_the_simulator(backend) -> None:
    """An actor that always says "8 steps, edge first" is FixedSteps(8) on a one-edge cluster."""
    one_edge = dataclasses.replace(backend, settings=dataclasses.replace(backend.settings, edge_agents=1))
    layout = one_edge.layout()
    a0 = 2 * (np.log2(8) / np.log2(32)) - 1
    # a [radio] scenario: the band fraction FixedSteps gets by default (the policy's bandwidth_share)
    band = [2 * one_edge.policy.bandwidth_share - 1] if layout.radio else []
    actor = LearnedAllocation(lambda obs: np.array([a0, 1.0, -1.0, *band]), layout)
    caching = LearnedCaching(lambda obs, mask: 0, layout)  # always the first plan: edge-1 keeps the first model
    requests = Workload.from_scenario(one_edge.scenario, 3).requests(40)
    ours = simulate(requests, one_edge.samplers, one_edge.policy, one_edge.settings, policies=(caching, actor))

    class FirstModel:
        name = "first"

        def plan(self, view):
            return {"edge-1": frozenset({layout.models[0]})}

    heuristic = simulate(
        requests, one_edge.samplers, one_edge.policy, one_edge.settings, policies=(FirstModel(), FixedSteps(8))
    )
    assert ours == heuristic
    served = [r for r in ours if r.outcome == "ok"]  # a slow downlink may miss the deadline (no agent reported)
    assert len(served) > len(ours) / 2
    assert {r.agent for r in served} == {"edge-1", "cloud"} and {r.steps for r in served} == {8}


# --- the radio downlink ---------------------------------------------------------------------------------------------

#: A fast downlink with a known, fixed SNR (no fading): every image's transmission time follows from its share alone.
RADIO = {"bandwidth_hz": 1e7, "image_bytes": 10_000, "snr_db": 20.0, "fading": "none", "min_share": 0.05}


def t2drl_with_radio(radio: dict | None) -> Scenario:
    """The shipped t2drl scenario with ``radio`` as its [radio] table (None: no radio)."""
    data = load_scenario("t2drl").model_dump()
    data.pop("radio", None)
    return Scenario.build(**data, **({"radio": radio} if radio is not None else {}))


@pytest.fixture(scope="module")
def plain_backend() -> SimBackend:
    return SimBackend.from_scenario(t2drl_with_radio(None), "x86-cpu", episode_slots=30)


@pytest.fixture(scope="module")
def radio_backend() -> SimBackend:
    return SimBackend.from_scenario(t2drl_with_radio(RADIO), "x86-cpu", episode_slots=30)


def test_radio_grows_the_allocation_spaces(plain_backend, radio_backend) -> None:
    assert plain_backend.settings.downlink is None and not plain_backend.layout().radio
    link = radio_backend.settings.downlink
    assert link == Downlink(RADIO["bandwidth_hz"], RADIO["image_bytes"], RADIO["min_share"])
    assert radio_backend.layout().radio
    plain, radio = AllocationEnv(plain_backend), AllocationEnv(radio_backend)
    assert radio.observation_space.shape == (plain.observation_space.shape[0] + 4,)
    assert radio.action_space.shape == (plain.action_space.shape[0] + 1,)
    assert CachingEnv(radio_backend).observation_space == CachingEnv(plain_backend).observation_space
    for env in (CachingEnv(radio_backend), radio):
        check_env(env, skip_render_check=True)
        sb3_env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
        sb3_env_checker.check_env(env, warn=True)
    # without a radio no band is taken and no image waits
    plain.reset(seed=1)
    _, _, _, _, info = plain.step(np.zeros(plain.action_space.shape, np.float32))
    assert info["bandwidth_share"] is None and info["downlink_s"] == 0.0
    # what a policy knows of a request: its deadline; of the cluster: the downlink (with a radio)
    req, view, request = radio._episode.request_view()
    assert request.deadline_s == req.deadline_s == radio_backend.scenario.requests.deadline_s
    assert view.downlink == link and plain._episode.request_view()[1].downlink is None


def run_radio_episode(env: AllocationEnv, band_action, seed: int = 4) -> list[dict]:
    """One episode; ``band_action(obs, rng)`` sets the last action entry (the others: 8 steps, edge-1 first).
    One row per request: the request, the observation it was decided on, the action and the step's info."""
    rng = np.random.default_rng(seed)
    a0 = 2 * (np.log2(8) / np.log2(32)) - 1
    obs, _ = env.reset(seed=seed)
    rows, done = [], False
    while not done:
        episode = env._episode
        req = episode.requests[episode.index]
        action = np.full(env.action_space.shape, -1.0, np.float32)
        action[0], action[1] = a0, 1.0
        action[-1] = band_action(obs, rng)
        next_obs, reward, done, _, info = env.step(action)
        rows.append({"req": req, "obs": obs, "action": action, "info": info, "reward": reward})
        obs = next_obs
    return rows


def test_radio_observation_and_band_ledger(radio_backend) -> None:
    env = AllocationEnv(radio_backend)
    link = radio_backend.settings.downlink
    slot_s = radio_backend.scenario.timing.slot_s
    rows = run_radio_episode(env, lambda obs, rng: rng.choice([rng.uniform(-1, 1), -1.0, 1.0, 3.0]))
    assert len(rows) > 30
    granted: dict[int, float] = {}
    remaining = []
    weight_at = len(radio_backend.layout().models) + 1  # after the model one-hot and the quality floor
    for seen, row in enumerate(rows, start=1):
        req, obs, info = row["req"], row["obs"], row["info"]
        assert {"bandwidth_share", "downlink_s", "outcome", "latency_s"} <= set(info)
        assert obs[weight_at] == pytest.approx(min(req.w_latency / W_LATENCY_SCALE, 1.0), abs=1e-6)  # the user's
        # observation: spectral efficiency, free band, slot elapsed, requests still to come in the slot
        se = math.log2(1 + 10 ** (RADIO["snr_db"] / 10))
        assert obs[-4] == pytest.approx(min(se / SE_SCALE, 1.0), abs=1e-6)
        free = 1.0 - granted.get(req.slot, 0.0)
        assert obs[-3] == pytest.approx(free, abs=1e-6)
        elapsed = (req.arrival_s % slot_s) / slot_s
        assert obs[-2] == pytest.approx(elapsed, abs=1e-5)
        # requests so far (this one too) per slot of the policy clock, which starts one frame early
        rate_per_slot = seen / max((req.arrival_s + radio_backend.settings.policy_clock_s) / slot_s, 1.0)
        assert obs[-1] == pytest.approx(min(rate_per_slot * (1 - elapsed) / REMAINING_SCALE, 1.0), abs=1e-5)
        remaining.append(obs[-1])
        # the share: the action's fraction (at least the floor, at most 1) of what was free
        fraction = (float(np.clip(row["action"][-1], -1, 1)) + 1) / 2
        share = info["bandwidth_share"]
        assert share == pytest.approx(min(max(fraction, RADIO["min_share"]), 1.0) * free, abs=1e-9)
        granted[req.slot] = granted.get(req.slot, 0.0) + share
        assert granted[req.slot] <= 1.0 + 1e-9
        if info["outcome"] == "ok":
            assert info["downlink_s"] == pytest.approx(link.tx_time_s(share, RADIO["snr_db"]), rel=1e-9)
            assert info["latency_s"] >= info["downlink_s"] > 0
    assert any(v > 0.99 for v in granted.values())  # some slots gave all their band away
    assert 0 < min(remaining) < max(remaining) < 1  # the expected arrivals left vary within a slot
    assert len({float(row["obs"][weight_at]) for row in rows}) > 2  # users weigh latency differently
    assert sum(1 for row in rows if row["obs"][-3] < 1.0) > 5  # and many requests shared a slot


def test_taking_the_whole_band_starves_the_rest_of_the_slot(radio_backend) -> None:
    env = AllocationEnv(radio_backend)

    def first_takes(a_first: float):
        """The first request of a slot (its whole band free) acts ``a_first``; the others ask half the free band."""
        return lambda obs, rng: a_first if obs[-3] == 1.0 else 0.0

    modest = run_radio_episode(env, first_takes(0.0))  # everyone: half of what is free
    greedy = run_radio_episode(env, first_takes(0.9))  # the first takes 95 % of the band
    everything = run_radio_episode(env, first_takes(1.0))  # the first takes it all
    assert [r["req"] for r in modest] == [r["req"] for r in greedy] == [r["req"] for r in everything]
    followers = [i for i, r in enumerate(modest) if r["obs"][-3] < 1.0]
    assert len(followers) > 5
    assert followers == [i for i, r in enumerate(greedy) if r["obs"][-3] < 1.0]
    for i, row in enumerate(modest):
        m, g, e = row["info"], greedy[i]["info"], everything[i]["info"]
        if i not in followers:  # the first of its slot: more band, a faster image
            assert g["bandwidth_share"] == pytest.approx(0.95) and m["bandwidth_share"] == 0.5
            assert e["bandwidth_share"] == 1.0
            if m["outcome"] == g["outcome"] == "ok":
                assert g["downlink_s"] < m["downlink_s"]
            continue
        # the k-th follower gets 0.5^k of the 5 % left (greedy) vs 0.5^k of the 50 % left (modest): a tenth
        # (rel 1e-6: the action is float32, so 0.9 is 0.9 +- 3e-8)
        assert g["bandwidth_share"] == pytest.approx(m["bandwidth_share"] / 10, rel=1e-6)
        assert m["outcome"] == "ok"
        if g["outcome"] == "ok":
            assert g["downlink_s"] == pytest.approx(10 * m["downlink_s"], rel=1e-6)
            assert g["downlink_s"] > 5 * m["downlink_s"]
        # nothing left at all: the image never goes out, the deadline passes and the utility drops
        assert e["bandwidth_share"] == 0.0
        assert e["outcome"] == "DEADLINE_EXCEEDED"
        assert everything[i]["reward"] < row["reward"]
    assert sum(greedy[i]["info"]["outcome"] == "ok" for i in followers) > 5


def test_with_a_band_prior_the_action_corrects_the_square_root_rule() -> None:
    with pytest.raises(ValueError, match="band_prior"):
        Layout(("a",), ("edge-1",), band_prior=True)  # no radio, no band to share
    layout = Layout(("a",), ("edge-1",), radio=True, band_prior=True)
    assert layout.allocation_obs_dim == Layout(("a",), ("edge-1",), radio=True).allocation_obs_dim + 1
    agents = (AgentState("edge-1", True, False, frozenset({"a"}), frozenset({"a"})),)
    link = Downlink(1e6, 100_000, 0.05)
    view = ClusterView(0.0, 0, 0, agents, band_free=0.5, downlink=link)
    request = RequestInfo("r", "a", 1, snr_db=10.0, deadline_s=5.0)
    assert allocation_observation(view, request, layout, 0.3)[-1] == pytest.approx(0.3)
    assert allocation_observation(view, request, layout, None)[-1] == -1.0  # no prior: said so
    action = np.array([0.0, 1.0, -1.0, 0.0])

    def band(a: float) -> np.ndarray:
        return np.array([0.0, 1.0, -1.0, a])

    # 0 plays the prior; +-1 moves its log-odds by BAND_PRIOR_LOGIT
    assert decode_allocation(action, view, request, layout, 0.3)[2] == pytest.approx(0.3)
    odds = 0.3 / 0.7 * math.exp(BAND_PRIOR_LOGIT)
    assert decode_allocation(band(1.0), view, request, layout, 0.3)[2] == pytest.approx(odds / (1 + odds))
    shares = [decode_allocation(band(a), view, request, layout, 0.3)[2] for a in (-1, -0.5, 0.5, 1)]
    assert shares == sorted(shares) and shares[0] < 0.3 < shares[-1] and shares[0] > 0 and shares[-1] < 1
    assert corrected_share(0.0, 1.0) == 0.0 and corrected_share(1.0, 0.0) == pytest.approx(1 - PRIOR_CLIP)
    # no prior (no SNR): the action's own fraction; a hopeless request still gets the least share
    assert decode_allocation(band(0.5), view, request, layout, None)[2] == 0.75
    assert decode_allocation(action, view, dataclasses.replace(request, deadline_s=0.01), layout, 0.3)[2] == 0.0


def test_with_a_rule_prior_the_action_corrects_the_fixed_steps_rule() -> None:
    with pytest.raises(ValueError, match="rule_steps"):
        Layout(("a",), ("edge-1",), max_steps=32, rule_steps=64)
    layout = Layout(("a",), ("edge-1", "edge-2"), rule_steps=8)
    assert layout.allocation_obs_dim == Layout(("a",), ("edge-1", "edge-2")).allocation_obs_dim + 3
    # both edges hold the model; edge-2 has the shorter queue: the rule's server
    agents = (
        AgentState("edge-1", True, False, frozenset({"a"}), frozenset({"a"}), queue_depth=3),
        AgentState("edge-2", True, False, frozenset({"a"}), frozenset({"a"}), queue_depth=1),
        AgentState("cloud", True, True, frozenset(), frozenset({"a"})),
    )
    view = ClusterView(0.0, 0, 0, agents)
    request = RequestInfo("r", "a", 1)
    assert list(allocation_observation(view, request, layout)[-3:]) == [0.0, 1.0, 0.0]  # one-hot of edge-2
    assert FixedSteps(8).allocate(view, request).agent == "edge-2"
    assert decode_allocation(np.zeros(4), view, request, layout)[:2] == ("edge-2", 8)  # 0 plays the rule
    # another server needs a score RULE_SERVER_BONUS above the rule's
    assert decode_allocation(np.array([0.0, RULE_SERVER_BONUS - 0.1, 0.0, 0.0]), view, request, layout)[0] == "edge-2"
    edge_1 = np.array([0.0, 0.6, 0.5 - RULE_SERVER_BONUS, 0.0])
    assert decode_allocation(edge_1, view, request, layout)[0] == "edge-1"
    assert decode_allocation(np.array([0.0, -1.0, -1.0, 1.0]), view, request, layout)[0] == "cloud"
    # steps move from the rule's on the log scale by up to half the log range (1..32: 2.5 octaves either way)
    assert [steps_of(a, layout) for a in (-1.0, -0.4, 0.0, 0.4, 1.0)] == [1, 4, 8, 16, 32]
    assert steps_of(0.0, Layout(("a",), ("edge-1",))) == round(2**2.5)  # without it: the middle of the range
    # only the cloud holds the model: the rule's server is the cloud
    far = ClusterView(0.0, 0, 0, (dataclasses.replace(agents[0], loaded=frozenset()), agents[2]))
    assert list(allocation_observation(far, request, layout)[-3:]) == [0.0, 0.0, 1.0]
    assert decode_allocation(np.array([0.0, 1.0, 1.0, 0.0]), far, request, layout)[0] == "cloud"


def _rule_and_zero_actor(backend: SimBackend, layout: Layout) -> list[tuple]:
    """``sqrt-band``'s and an all-zero actor's (laid out by ``layout``) decisions, request by request, on one episode
    with a fixed cache plan (the actor's decisions are served)."""
    rule = SqrtBand()
    zero = LearnedAllocation(lambda obs: np.zeros(layout.allocation_act_dim, np.float32), layout)
    episode = backend.episode(5)
    pairs = []
    while not episode.done:
        while episode.frame_due():
            episode.end_frame({"edge-1": frozenset({"digits-resmlp-l"}), "edge-2": frozenset({"digits-mlp-s"})})
        _, view, info = episode.request_view()
        pairs.append((rule.allocate(view, info), zero.allocate(view, info)))
        episode.allocate(pairs[-1][1])
    return pairs


def test_an_actor_that_adds_nothing_to_both_priors_plays_sqrt_band(radio_backend) -> None:
    layout = dataclasses.replace(radio_backend.layout(), band_prior=True, rule_steps=8)
    pairs = _rule_and_zero_actor(radio_backend, layout)
    for expected, got in pairs:
        assert (got.agent, got.steps) == (expected.agent, expected.steps)
        assert got.bandwidth_share == pytest.approx(expected.bandwidth_share, rel=1e-9, abs=1e-12)
    assert len(pairs) > 30
    # the Gymnasium env with both priors: the same features, and a zero action decides as the rule does
    env = AllocationEnv(radio_backend, band=True, rule=True)
    assert env.observation_space.shape == (layout.allocation_obs_dim,)
    check_env(env, skip_render_check=True)
    env.reset(seed=4)
    rule, done = SqrtBand(), False
    while not done:
        _, view, info = env._request
        expected = rule.allocate(view, info)
        _, _, done, _, step = env.step(np.zeros(env.action_space.shape, np.float32))
        assert (step["agent"], step["steps"]) == (expected.agent, expected.steps)


def test_an_actor_that_adds_nothing_to_the_band_prior_plays_the_rule(radio_backend) -> None:
    layout = dataclasses.replace(radio_backend.layout(), band_prior=True)
    compared = 0
    for expected, got in _rule_and_zero_actor(radio_backend, layout):
        if expected.bandwidth_share and got.bandwidth_share:  # neither hopeless on its own server
            assert got.bandwidth_share == pytest.approx(expected.bandwidth_share, rel=1e-9)
            compared += 1
    assert compared > 30
    # the env's observation ends with the same prior, and its episodes start the rule afresh
    env = AllocationEnv(radio_backend, band=True)
    assert env.observation_space.shape == (layout.allocation_obs_dim,)
    check_env(env, skip_render_check=True)
    sb3_env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3_env_checker.check_env(env, warn=True)
    for _ in range(2):
        obs, _ = env.reset(seed=3)
        for _ in range(40):  # slots pass: the rule learns a rate, which the next episode must not inherit
            env.step(np.zeros(env.action_space.shape, np.float32))
        obs, _ = env.reset(seed=3)
        # the first request of an episode: the prior rate, its own cost as the mean (obs[-3]: the slot elapsed)
        assert obs[-1] == pytest.approx(1 / (1 + COMING_SCALE * (1 - obs[-3])), rel=1e-6)
