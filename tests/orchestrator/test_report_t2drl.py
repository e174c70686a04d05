"""The seed-averaged T2DRL report: interval arithmetic, pairing per seed, files from ``edgetb report``."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.report_t2drl import aggregate, bound_lines, find_runs, gain, interval


def _summary(utility: float, hit: float = 0.5) -> dict:
    return {"utility": utility, "hit_ratio": hit, "mean_latency_s": 0.1, "mean_quality": 0.95, "requests": 10}


def _write_runs(
    root, utilities: dict[str, list[float]], baseline: list[float], bound: list[float] | None = None
) -> None:
    for algo, values in utilities.items():
        for seed, u in enumerate(values):
            folder = root / f"{algo}-s{seed}"
            folder.mkdir(parents=True)
            curve = [
                {"requests": 100 * i, "frame": i, "utility": u - 0.1 / (i + 1), "hit_ratio": 0.5} for i in range(4)
            ]
            result = {
                "algo": algo, "seed": seed, "scenario": "t2drl", "device": "x86-cpu", "eval_episodes": 2,
                "eval_slots": 30, "curve": curve,
                "policies": {algo: _summary(u), "random+fixed-steps": _summary(baseline[seed], 0.3)},
                "bound": None if bound is None else {"utility": bound[seed], "model": "test bound"},
            }  # fmt: skip
            (folder / "result.json").write_text(json.dumps(result))


def test_interval_is_the_student_t_half_width() -> None:
    mean, half = interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0 and half == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert interval([0.7]) == (0.7, 0.0)


def test_aggregate_pairs_seeds_and_takes_each_baseline_once_per_seed(tmp_path) -> None:
    _write_runs(tmp_path, {"t2drl": [0.9, 0.8], "ddqn+ddpg": [0.85, 0.7]}, baseline=[0.75, 0.5])
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "not-a-run" / "result.json").write_text(json.dumps({"env": "waterfill", "algo": "d3pg"}))
    runs = find_runs(tmp_path)
    assert sorted((r["algo"], r["seed"]) for r in runs) == [
        ("ddqn+ddpg", 0),
        ("ddqn+ddpg", 1),
        ("t2drl", 0),
        ("t2drl", 1),
    ]
    rows = aggregate(runs)
    assert rows["random+fixed-steps"]["seeds"] == [0, 1] and rows["random+fixed-steps"]["utility"][0] == 0.625
    assert rows["t2drl"]["utility"][0] == pytest.approx(0.85)
    ratios = [0.9 / 0.75 - 1, 0.8 / 0.5 - 1]
    assert gain(rows, "t2drl", "random+fixed-steps") == pytest.approx(interval(ratios))
    assert gain(rows, "t2drl", "nope") is None


def test_edgetb_report_writes_the_table_and_curves(tmp_path) -> None:
    _write_runs(tmp_path / "runs", {"t2drl": [0.9, 0.8, 0.85]}, baseline=[0.7, 0.7, 0.7])
    result = CliRunner().invoke(app, ["report", str(tmp_path / "runs"), "--out", str(tmp_path / "fig")])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "fig" / "t2drl_results.md").read_text()
    assert "| t2drl | 3 | 0.8500 ± " in table and "over random+fixed-steps: +21.43 %" in table
    assert (tmp_path / "fig" / "t2drl_curves.png").stat().st_size > 5000


def test_the_report_gives_the_room_under_the_bound(tmp_path) -> None:
    _write_runs(tmp_path / "runs", {"t2drl": [0.8, 0.9]}, baseline=[0.6, 0.8], bound=[1.0, 1.0])
    rows = aggregate(find_runs(tmp_path / "runs"))
    lines = "\n".join(bound_lines(find_runs(tmp_path / "runs"), rows))
    assert "(test bound; no policy exceeds it): 1.0000 ± 0.0000" in lines
    m, h = interval([1.0 / 0.6 - 1, 1.0 / 0.8 - 1])
    assert f"- over random+fixed-steps: {m * 100:+.2f} % ± {h * 100:.2f} %" in lines
    m, h = interval([(0.8 - 0.6) / (1.0 - 0.6), (0.9 - 0.8) / (1.0 - 0.8)])  # 50 % of the room each
    assert f"t2drl takes {m * 100:.1f} % ± {h * 100:.1f} % of the room" in lines and m == pytest.approx(0.5)
    _write_runs(tmp_path / "old", {"t2drl": [0.8]}, baseline=[0.6])  # runs without a bound: no lines
    assert bound_lines(find_runs(tmp_path / "old"), aggregate(find_runs(tmp_path / "old"))) == []


def test_the_report_gives_the_cached_bound_only_when_every_run_has_it(tmp_path) -> None:
    _write_runs(tmp_path / "runs", {"t2drl": [0.8, 0.9]}, baseline=[0.6, 0.8], bound=[1.0, 1.0])
    runs = find_runs(tmp_path / "runs")
    for run, cached in zip(runs, (0.9, 0.85), strict=True):
        run["bound"].update(cached_utility=cached, cached_model="cache kept")
    lines = "\n".join(bound_lines(runs, aggregate(runs)))
    assert "Upper bound keeping the cache size (cache kept; no policy exceeds it): 0.8750" in lines
    m, h = interval([(0.8 - 0.6) / (0.9 - 0.6), (0.9 - 0.8) / (0.85 - 0.8)])  # 2/3 and all of the tighter room
    assert (
        f"t2drl takes {m * 100:.1f} % ± {h * 100:.1f} % of the room between random+fixed-steps and this bound" in lines
    )
    del runs[1]["bound"]["cached_utility"]  # runs from before the cached bound: only the first
    assert "keeping the cache size" not in "\n".join(bound_lines(runs, aggregate(runs)))


def _edit(folder, **changes: object) -> None:
    result = json.loads((folder / "result.json").read_text())
    (folder / "result.json").write_text(json.dumps({**result, **changes}))


def test_runs_one_table_cannot_hold_are_refused_by_name(tmp_path) -> None:
    from profiles.scenario import load_scenario

    _write_runs(tmp_path / "a", {"t2drl": [0.9, 0.8]}, baseline=[0.7, 0.7])
    _write_runs(tmp_path / "b", {"t2drl": [0.5]}, baseline=[0.7])  # a variant of seed 0 beside the first
    with pytest.raises(ValueError, match=r"a/t2drl-s0 and .*b/t2drl-s0: two t2drl runs of seed 0; .*separate folders"):
        find_runs(tmp_path)
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "fig")])
    said = " ".join(result.output.split())  # rich wraps the line
    assert result.exit_code == 2 and "two t2drl runs of seed 0" in said and not (tmp_path / "fig").exists()
    assert len(find_runs(tmp_path / "a")) == 2  # each folder alone reports

    spec = load_scenario("t2drl").model_dump(mode="json")
    _edit(tmp_path / "a" / "t2drl-s0", scenario_spec={**spec, "name": "renamed"})
    assert len(find_runs(tmp_path / "a")) == 2  # the shipped scenario recorded under another name: the same problem
    _edit(tmp_path / "a" / "t2drl-s0", scenario_spec={**spec, "users": {**spec["users"], "count": 18}})
    with pytest.raises(ValueError, match=r"the runs differ in scenario users\.count; a report compares runs of one"):
        find_runs(tmp_path / "a")
    _edit(tmp_path / "a" / "t2drl-s0", scenario_spec=spec, eval_slots=60, device="jetson-orin-nano")
    with pytest.raises(ValueError, match=r"t2drl-s0 and .*t2drl-s1: the runs differ in device, eval_slots;"):
        find_runs(tmp_path / "a")
    _edit(tmp_path / "a" / "t2drl-s0", scenario="mine", eval_slots=30, device="x86-cpu")
    del_spec = json.loads((tmp_path / "a" / "t2drl-s0" / "result.json").read_text())
    del del_spec["scenario_spec"]
    (tmp_path / "a" / "t2drl-s0" / "result.json").write_text(json.dumps(del_spec))
    with pytest.raises(ValueError, match=r"the runs differ in scenario name;"):  # an older run of a file: its name
        find_runs(tmp_path / "a")
