"""The ``[policy]`` table: absent keeps today's behaviour; bad values name the setting; scenario weights."""

from __future__ import annotations

import pytest

from orchestrator.config import ConfigError, OrchestratorConfig


def test_no_policy_table_means_no_policy_loop() -> None:
    assert OrchestratorConfig.build().policy is None


@pytest.mark.parametrize(
    ("policy", "setting"),
    [
        ({"caching": "random-ish"}, "policy.caching"),
        ({"allocation": "ppo"}, "policy.allocation"),
        ({"allocation": "sac"}, "policy: checkpoint"),
        ({"allocation": "d3pg"}, "policy: checkpoint"),
        ({"slot_s": 0}, "policy.slot_s"),
        ({"frame_slots": 0}, "policy.frame_slots"),
        ({"step_candidates": [4, 0]}, "policy.step_candidates"),
        ({"cloud_agent": "no spaces"}, "policy.cloud_agent"),
        ({"w_latency": -1}, "policy.w_latency"),
        ({"cache_slots": 1}, "policy.cache_slots"),
        ({"scenario": "no-such-scenario"}, "policy: scenario:"),
    ],
)
def test_a_bad_setting_is_named(policy: dict, setting: str) -> None:
    with pytest.raises(ConfigError, match=f"^{setting}"):
        OrchestratorConfig.build(policy=policy)


def test_a_scenario_supplies_the_settings_not_given(tmp_path) -> None:
    scenario = tmp_path / "sc.toml"
    scenario.write_text(
        'name = "sc"\n[timing]\nslot_s = 0.5\nframe_slots = 4\n[models]\nnames = ["x", "y"]\nrank = ["y", "x"]\n'
        "[users]\ncount = 1\nrate_per_s = 1.0\n[utility]\nw_latency = 0.7\nw_energy = 0.02\n"
        "[cluster]\ncache_models = 2\n"
    )
    (tmp_path / "orchestrator.toml").write_text('[policy]\nscenario = "sc.toml"\nw_energy = 0.5\nevaluator = "ev"\n')
    policy = OrchestratorConfig.load(tmp_path / "orchestrator.toml").policy
    assert policy is not None
    assert (policy.w_latency, policy.w_energy, policy.slot_s, policy.frame_slots) == (0.7, 0.5, 0.5, 4)
    assert (policy.cache_models, policy.model_rank) == (2, ("y", "x"))
    assert policy.evaluator == str(tmp_path / "ev")  # relative to the file


def test_a_scenario_with_a_radio_table_gives_the_daemon_its_downlink() -> None:
    from orchestrator.config import PolicyConfig
    from profiles.scenario import load_scenario

    radio = load_scenario("t2drl").radio
    assert radio is not None
    config = PolicyConfig(scenario="t2drl", caching="random", allocation="fixed-steps")
    assert config.radio is not None
    assert (config.radio.bandwidth_hz, config.radio.image_bytes, config.radio.min_share) == (
        radio.bandwidth_hz, radio.image_bytes, radio.min_share,
    )  # fmt: skip
    assert config.bandwidth_share == radio.fixed_share
    assert PolicyConfig(scenario="t2drl", bandwidth_share=0.9).bandwidth_share == 0.9  # explicit settings win
