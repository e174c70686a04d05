"""train_waterfill and ``edgetb train`` with tiny budgets: the files and fields they write, and bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from orchestrator.algos import d3pg
from orchestrator.cli_train import app
from orchestrator.envs.waterfill import WaterfillEnv
from orchestrator.train_waterfill import EVAL_SEED, train_waterfill

FIELDS = {
    "algo", "channels", "seed", "eval_seed", "eval_draws", "optimality_ratio", "uniform_ratio", "sum_rate",
    "optimal_sum_rate", "train_steps", "updates", "train_wall_s", "act_latency_ms", "config", "curve", "checkpoint",
}  # fmt: skip
TINY = {"learning_starts": 50, "batch_size": 32, "hidden": [32, 32], "critic_hidden": [32, 32]}


def test_train_waterfill_writes_the_result_curve_plot_and_a_loadable_checkpoint(tmp_path) -> None:
    result = train_waterfill(
        "d3pg", 4, 3, tmp_path, time_budget_s=60, steps=150, overrides=TINY, eval_draws=64, curve_every=50
    )
    saved = json.loads((tmp_path / "result.json").read_text())
    assert set(saved) >= FIELDS and saved["optimality_ratio"] == result["optimality_ratio"]
    assert (saved["algo"], saved["channels"], saved["seed"], saved["eval_seed"]) == ("d3pg", 4, 3, EVAL_SEED)
    assert saved["train_steps"] == 150 and saved["updates"] == 100 and saved["config"]["hidden"] == [32, 32]
    assert 0 < saved["optimality_ratio"] <= 1 and 0.7 < saved["uniform_ratio"] < 1
    assert [r["step"] for r in saved["curve"]] == [50, 100, 150]
    assert all(0 < r["val_optimality_ratio"] <= 1 for r in saved["curve"])
    assert saved["act_latency_ms"]["p50"] > 0
    with open(tmp_path / "curve.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [50, 100, 150]
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000
    # the checkpoint scores what result.json says on the same held-out draws
    agent = d3pg.D3PG.load(tmp_path / saved["checkpoint"])
    env = WaterfillEnv(4)
    gains = env.sample_gains(np.random.default_rng(EVAL_SEED), 64)
    scored = env.evaluate(lambda o: agent.act(o, deterministic=True), gains)["optimality_ratio"]
    assert scored == pytest.approx(saved["optimality_ratio"], rel=1e-6)


def test_the_time_budget_stops_training(tmp_path) -> None:
    result = train_waterfill("ddpg", 3, 0, tmp_path, time_budget_s=0.5, overrides=TINY, eval_draws=16)
    assert result["train_wall_s"] < 5 and 0 < result["train_steps"] < 200_000
    assert result["curve"][-1]["step"] == result["train_steps"]


def test_sb3_baseline_trains_and_saves(tmp_path) -> None:
    pytest.importorskip("stable_baselines3")
    overrides = {"learning_starts": 50, "batch_size": 32, "hidden": [32, 32]}
    result = train_waterfill("sac", 3, 0, tmp_path, steps=120, overrides=overrides, eval_draws=16, curve_every=60)
    assert result["train_steps"] == 120 and result["updates"] > 0 and (tmp_path / "agent.zip").exists()
    assert [r["step"] for r in result["curve"]] == [60, 120] and 0 < result["optimality_ratio"] <= 1
    from orchestrator.algos import sb3

    model = sb3.load("sac", tmp_path / "agent.zip")
    assert sb3.act(model, np.ones((5, 3), np.float32)).shape == (5, 3)


def test_bad_arguments_name_what_is_wrong(tmp_path) -> None:
    with pytest.raises(ValueError, match="algo"):
        train_waterfill("ppo", 3, 0, tmp_path)
    with pytest.raises(ValueError, match="no field"):
        train_waterfill("d3pg", 3, 0, tmp_path, overrides={"learning_rate": 1.0})


def test_cli_trains_and_rejects_unknown_envs_and_algos(tmp_path) -> None:
    runner = CliRunner()
    args = ["--algo", "ddpg", "--channels", "3", "--seed", "1", "--out", str(tmp_path), "--steps", "80"]
    ok = runner.invoke(app, [*args, "--config", json.dumps(TINY)])
    assert ok.exit_code == 0, ok.output
    assert "optimality ratio" in ok.output and json.loads((tmp_path / "result.json").read_text())["train_steps"] == 80
    later = runner.invoke(app, ["--env", "caching", "--out", str(tmp_path)])
    assert later.exit_code == 2 and "not available" in later.output and "waterfill" in later.output
    wrong = runner.invoke(app, ["--algo", "ppo", "--out", str(tmp_path)])
    said = " ".join(wrong.output.split())  # rich wraps the line
    assert wrong.exit_code == 2 and "'ppo' trains on no env" in said
    assert "waterfill: d3pg, ddpg" in said and "t2drl: t2drl, ddqn+ddpg" in said  # every env's algorithms
    elsewhere = runner.invoke(app, ["--env", "waterfill", "--algo", "t2drl", "--out", str(tmp_path)])
    assert elsewhere.exit_code == 2 and "does not train on waterfill" in " ".join(elsewhere.output.split())
    bad = runner.invoke(app, [*args, "--config", "{nope"])
    assert bad.exit_code != 0 and "--config" in bad.output
