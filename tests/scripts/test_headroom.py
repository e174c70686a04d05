"""scripts/headroom.py: scenario variants, the re-picked fixed band fraction, and the heuristics against the bounds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import headroom  # noqa: E402

from orchestrator.envs.t2drl import SimBackend  # noqa: E402
from orchestrator.t2drl import baseline_policies, eval_seeds, evaluate  # noqa: E402
from profiles.scenario import ScenarioError, load_scenario  # noqa: E402


@pytest.fixture
def short(monkeypatch):
    """One workload of 60 slots per seed and two band fractions: the same code on a smaller replay."""
    monkeypatch.setattr(headroom, "EPISODES", 1)
    monkeypatch.setattr(headroom, "SLOTS", 60)
    monkeypatch.setattr(headroom, "SHARES", (0.05, 0.3))


def test_a_variant_is_parsed_as_toml_values_and_a_malformed_one_names_itself() -> None:
    name, changes = headroom.parse_variant("mix:users.count=12,users.w_latency=[1.0, 3.0],radio.bandwidth_hz=2.5e6")
    assert name == "mix"
    assert changes == {"users.count": 12, "users.w_latency": [1.0, 3.0], "radio.bandwidth_hz": 2.5e6}
    with pytest.raises(ValueError, match=r"not name:field=value"):
        headroom.parse_variant("users.count=12")
    with pytest.raises(ValueError, match=r"--variant bad: users\.count"):
        headroom.parse_variant("bad:users.count=twelve")


def test_a_variant_changes_only_its_fields_and_a_bad_field_is_refused_by_name() -> None:
    base = load_scenario("t2drl")
    variant = headroom.variant_scenario(base, {"users.count": 12, "models.popularity.zipf_s": 0.5})
    assert (variant.users.count, variant.models.popularity.zipf_s) == (12, 0.5)
    assert base.users.count == 6 and base.models.popularity.zipf_s == 1.0  # the base is not touched
    assert variant.model_dump(exclude={"users", "models"}) == base.model_dump(exclude={"users", "models"})
    with pytest.raises(ScenarioError, match=r"users\.speed: unknown field"):
        headroom.variant_scenario(base, {"users.speed": 1})
    with pytest.raises(ScenarioError, match=r"users\.count"):
        headroom.variant_scenario(base, {"users.count": 0})
    with pytest.raises(ScenarioError, match=r"users\.count\.x: 'count' is no table"):
        headroom.variant_scenario(base, {"users.count.x": 1})


def test_the_fixed_share_picked_is_the_best_and_reaches_the_simulator(short) -> None:
    base = load_scenario("t2drl")
    share, scores = headroom.pick_share(base, "x86-cpu")
    assert set(scores) == {"0.05", "0.3"} and scores["0.05"] != scores["0.3"]  # the fraction changes the replay
    assert scores[str(share)] == max(scores.values())
    backend = SimBackend.from_scenario(headroom.with_share(base, 0.05), "x86-cpu")
    assert backend.policy.bandwidth_share == 0.05


def test_every_heuristic_lies_below_both_bounds_and_the_gains_are_per_seed_ratios(short) -> None:
    result = headroom.headroom(load_scenario("t2drl"), {"users.count": 12}, [0, 1], "x86-cpu")
    for figures in result["per_seed"].values():
        for name in headroom.POLICIES:
            assert figures[name] <= figures["bound-cache-kept"] <= figures["bound-hindsight"] + 1e-9
    ref = result["summary"][headroom.REFERENCE]
    assert ref["over_reference"] == pytest.approx(0.0) and ref["over_reference_pm"] == pytest.approx(0.0)
    gains = [f["bound-hindsight"] / f[headroom.REFERENCE] - 1 for f in result["per_seed"].values()]
    assert result["summary"]["bound-hindsight"]["over_reference"] == pytest.approx(sum(gains) / 2)
    # the replay is the variant's, at the share picked for it: the same as evaluating it directly
    scenario = headroom.with_share(headroom.variant_scenario(load_scenario("t2drl"), {"users.count": 12}),
                                   result["fixed_share"])  # fmt: skip
    backend = SimBackend.from_scenario(scenario, "x86-cpu")
    direct = evaluate(backend, baseline_policies(backend, (headroom.REFERENCE,)), eval_seeds(1, 1), 60)
    assert result["per_seed"]["1"][headroom.REFERENCE] == pytest.approx(direct[headroom.REFERENCE]["utility"])


def test_the_cli_writes_the_table_and_json_and_refuses_a_bad_variant(short, tmp_path, capsys) -> None:
    out = tmp_path / "h.json"
    assert headroom.main(["--variant", "one-edge:cluster.edge_agents=1", "--seeds", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| one-edge | cluster.edge_agents = 1 |" in printed
    written = json.loads(out.read_text())
    assert written["variants"]["one-edge"]["changes"] == {"cluster.edge_agents": 1}
    with pytest.raises(SystemExit) as exit_info:
        headroom.main(["--variant", "x:cluster.edges=1", "--seeds", "2"])
    assert exit_info.value.code == 2 and "cluster.edges: unknown field" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        headroom.main(["--seeds", "1"])


def test_a_scenario_without_a_radio_has_no_share_to_pick_and_still_gets_its_bounds(short) -> None:
    base = load_scenario("t2drl").model_copy(update={"radio": None})
    result = headroom.headroom(base, {}, [0, 1], "x86-cpu")
    assert result["fixed_share"] is None and result["fixed_share_scores"] == {}
    for figures in result["per_seed"].values():
        assert figures[headroom.REFERENCE] <= figures["bound-cache-kept"] <= figures["bound-hindsight"] + 1e-9
    assert "| free | — | — |" in headroom.table({"free": result})
    with pytest.raises(ScenarioError, match=r"radio\.fixed_share: 'radio' is no table"):
        headroom.with_share(base, 0.3)
