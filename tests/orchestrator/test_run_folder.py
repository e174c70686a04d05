"""Reading a training run's result.json: what it holds (its scenario too), or an error naming the caller's field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.run_folder import read_run, run_scenario, scenario_differences, scenario_warning
from profiles.scenario import load_scenario


def test_a_run_folder_reads_back_its_result(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"caching": "ddqn", "allocation": "d3pg", "seed": 3}))
    assert read_run(tmp_path, "checkpoint", ("caching", "allocation"))["seed"] == 3


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file"),
        ("{not json", "Expecting"),
        ("[1, 2]", "holds a list"),
        ('{"caching": "ddqn"}', "no allocation"),
    ],
)
def test_a_folder_that_is_not_a_run_names_the_field_and_why(tmp_path: Path, content: str | None, reason: str) -> None:
    if content is not None:
        (tmp_path / "result.json").write_text(content)
    with pytest.raises(ValueError, match=r"^runs: .* is not an `edgetb train --env t2drl` run folder") as info:
        read_run(tmp_path, "runs", ("caching", "allocation"))
    assert reason in str(info.value)


def test_a_run_gives_the_scenario_it_recorded_or_its_shipped_one(tmp_path: Path) -> None:
    shipped = load_scenario("t2drl")
    spec = shipped.model_dump(mode="json")
    recorded = {"scenario": "t2drl", "scenario_spec": {**spec, "users": {**spec["users"], "count": 9}}}
    assert run_scenario(recorded, "runs", tmp_path).users.count == 9 != shipped.users.count
    assert run_scenario({"scenario": "t2drl"}, "runs", tmp_path) == shipped  # a run older than scenario_spec
    with pytest.raises(ValueError, match=r"^checkpoint: .*: it names scenario 'mine', which is not shipped"):
        run_scenario({"scenario": "mine"}, "checkpoint", tmp_path)
    bad = {"scenario": "t2drl", "scenario_spec": {**spec, "users": {**spec["users"], "count": 0}}}
    with pytest.raises(ValueError, match=r"^runs: .*: its scenario_spec is invalid \(users.count: must be >"):
        run_scenario(bad, "runs", tmp_path)


def _run(folder: Path, **result: object) -> Path:
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def test_scenario_differences_name_the_fields_a_run_trained_differently(tmp_path: Path) -> None:
    shipped = load_scenario("t2drl")
    spec = shipped.model_dump(mode="json")
    same = _run(tmp_path / "same", scenario="t2drl", scenario_spec={**spec, "name": "copy", "description": "mine"})
    assert scenario_differences(same, shipped) == []  # name and description are not compared
    assert scenario_warning(same, shipped, []) is None
    crowded = {**spec, "users": {**spec["users"], "count": 9}, "timing": {**spec["timing"], "slot_s": 0.5}}
    other = _run(tmp_path / "other", scenario="t2drl", scenario_spec=crowded)
    differences = scenario_differences(other, shipped)
    assert differences == ["timing.slot_s", "users.count"]
    assert scenario_warning(other, shipped, differences) == (
        f"checkpoint {other} trained on a scenario that differs from 't2drl' in timing.slot_s, users.count: "
        "its learners run as trained"
    )
    no_radio = _run(tmp_path / "no-radio", scenario="t2drl", scenario_spec={**spec, "radio": None})
    assert scenario_differences(no_radio, shipped) == ["radio"]  # a table present on one side only
    assert scenario_differences(_run(tmp_path / "older", scenario="t2drl"), shipped) == []  # its shipped one
    unknown = _run(tmp_path / "unknown", scenario="mine")  # older, and its scenario is not shipped
    assert scenario_differences(unknown, shipped) is None
    assert "does not say which scenario it trained on" in str(scenario_warning(unknown, shipped, None))
    assert scenario_differences(tmp_path / "missing", shipped) is None
    many = [f"users.field{i}" for i in range(11)]
    assert str(scenario_warning(other, shipped, many)).endswith("users.field7 and 3 more: its learners run as trained")
