"""The live demo end to end: two policies on a local cluster, a few short slots of the t2drl workload."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import tomli_w

from orchestrator.live_demo import POLICIES, merge_stores, run_live_demo, shipped_checkpoint, summarize, with_slot_s
from orchestrator.workload import Workload
from profiles.scenario import load_scenario

PNG = b"\x89PNG\r\n\x1a\n"
POLICY_FIELDS = ("utility", "mean_quality", "mean_latency_s", "p99_latency_s", "energy_j_per_request", "hit_ratio")
TWO = ("ddqn+d3pg", "no-cache+fixed-steps")  # the learned pair loads the shipped T2DRL checkpoint


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("live_demo")
    report = run_live_demo(out, slots=3, slot_s=0.5, policies=TWO)
    return out, report


def test_report_has_every_field_for_every_policy(demo: tuple[Path, dict]) -> None:
    out, report = demo
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    sc = with_slot_s(load_scenario("t2drl"), 0.5)
    expected = len(Workload.from_scenario(sc).requests(3))
    assert report["scenario"] == "t2drl" and report["slots"] == 3 and report["requests"] == expected > 0
    assert set(report["agents"]) == {"edge-1", "edge-2", "cloud"}
    for source in report["agents"].values():  # name -> power source label
        assert source in {"rapl", "nvml", "jetson-ina3221", "modeled", "unavailable"}
    assert list(report["policies"]) == list(TWO)
    failed = 0
    for policy in report["policies"].values():
        for field in POLICY_FIELDS:
            assert field in policy
        assert policy["requests"] == expected
        assert sum(policy["outcomes"].values()) == expected
        assert policy["failed_requests"] == expected - policy["outcomes"].get("ok", 0)
        assert 0.0 <= policy["hit_ratio"] <= 1.0
        if policy["outcomes"].get("ok"):
            assert 0.0 <= policy["mean_quality"] <= 1.0
            assert 0.0 < policy["mean_latency_s"] <= policy["p99_latency_s"]
        failed += policy["failed_requests"]
    assert report["failed_requests"] == failed
    # the shipped checkpoint trained on the scenario's 1 s slots, the demo ran 0.5 s ones: the report says so
    assert report["policies"]["ddqn+d3pg"]["checkpoint_scenario_differs"] == ["timing.slot_s"]
    assert "checkpoint_scenario_differs" not in report["policies"]["no-cache+fixed-steps"]
    # no-cache: every served request goes to the cloud, so nothing is a cache hit
    no_cache = report["policies"]["no-cache+fixed-steps"]
    assert no_cache["hit_ratio"] == 0.0 and set(no_cache["served_by"]) <= {"cloud"}
    # the very same requests for every policy
    ids = [[(r["id"], r["model"], r["slot"]) for r in rows] for rows in report["per_request"].values()]
    assert ids[0] == ids[1]


def test_telemetry_store_holds_every_policy_run(demo: tuple[Path, dict]) -> None:
    out, report = demo
    db = sqlite3.connect(out / "telemetry.sqlite")
    try:
        for table in ("runs", "telemetry", "requests", "decisions"):
            tagged = {p for (p,) in db.execute(f"SELECT DISTINCT run_policy FROM {table}")}
            assert tagged == set(TWO), table
        for policy in TWO:
            (n,) = db.execute("SELECT COUNT(*) FROM requests WHERE run_policy = ?", (policy,)).fetchone()
            assert n == report["requests"]
    finally:
        db.close()


def test_figures_are_pngs(demo: tuple[Path, dict]) -> None:
    out, _ = demo
    for name in ("latency_cdf.png", "power_timeline.png", "utility_per_slot.png", "samples.png"):
        assert (out / name).read_bytes()[:8] == PNG, name


def test_summarize_counts_failures_and_hits() -> None:
    from orchestrator.live_demo import RequestResult

    ok = RequestResult(0, 0, 0, "m", "ok", "edge-1", 0.2, 0.0, None, "unavailable", 0.9, 8, True, 0.8)
    cloud = RequestResult(1, 0, 0, "m", "ok", "cloud", 0.4, 0.0, None, "unavailable", 0.7, 8, False, 0.5)
    late = RequestResult(2, 1, 1, "m", "DEADLINE_EXCEEDED", "", 3.0, 0.0, None, "unavailable", None, 0, False, -1.5)
    s = summarize([ok, cloud, late])
    assert s["requests"] == 3 and s["failed_requests"] == 1
    assert s["outcomes"] == {"ok": 2, "DEADLINE_EXCEEDED": 1}
    assert s["hit_ratio"] == pytest.approx(1 / 3)
    assert s["mean_quality"] == pytest.approx(0.8) and s["mean_latency_s"] == pytest.approx(0.3)
    assert s["utility"] == pytest.approx((0.8 + 0.5 - 1.5) / 3)
    assert s["energy_j_per_request"] is None


def test_merge_stores_tags_rows(tmp_path: Path) -> None:
    stores = {}
    for name in ("a", "b"):
        path = tmp_path / f"{name}.sqlite"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE requests (id INTEGER PRIMARY KEY, outcome TEXT)")
        db.execute("INSERT INTO requests (outcome) VALUES ('ok')")
        db.commit()
        db.close()
        stores[name] = path
    merge_stores(stores, tmp_path / "merged.sqlite")
    db = sqlite3.connect(tmp_path / "merged.sqlite")
    assert sorted(db.execute("SELECT run_policy, outcome FROM requests")) == [("a", "ok"), ("b", "ok")]
    db.close()


def test_policies_are_known_combinations_and_the_shipped_checkpoints_load() -> None:
    from orchestrator.live_demo import SHIPPED_POLICIES, SHIPPED_POLICY
    from orchestrator.policies import ALLOCATION, CACHING, LEARNED_ALLOCATION, LEARNED_CACHING, build_policies
    from orchestrator.policies.sqrt_band import SqrtBand

    for name in POLICIES:
        caching, _, allocation = name.partition("+")
        assert caching in (*CACHING, *LEARNED_CACHING) and allocation in (*ALLOCATION, *LEARNED_ALLOCATION)
        checkpoint = shipped_checkpoint(name)
        cache, alloc = build_policies(caching, allocation, checkpoint=str(checkpoint or ""))
        assert cache is not None and alloc is not None
    # the learned pairs load their own shipped runs: T2DRL's, the MLP-actor pair's, the DDQN trained around the rule
    assert shipped_checkpoint("ddqn+d3pg") == SHIPPED_POLICY and shipped_checkpoint("no-cache+fixed-steps") is None
    shipped = json.loads((SHIPPED_POLICY / "result.json").read_text())
    assert shipped["algo"] == "t2drl"
    band_run = shipped_checkpoint("ddqn+sqrt-band")
    assert band_run == SHIPPED_POLICIES["ddqn+sqrt-band"] != SHIPPED_POLICY
    assert json.loads((band_run / "result.json").read_text())["algo"] == "ddqn+sqrt-band"
    assert isinstance(build_policies("ddqn", "sqrt-band", checkpoint=str(band_run))[1], SqrtBand)
    mlp_run = shipped_checkpoint("ddqn+ddpg")
    assert mlp_run == SHIPPED_POLICIES["ddqn+ddpg"] not in (SHIPPED_POLICY, band_run)
    mlp = json.loads((mlp_run / "result.json").read_text())
    assert mlp["algo"] == "ddqn+ddpg" and mlp["config"] == {**shipped["config"], "seed": mlp["seed"]}  # trained alike


def _contains(config: dict, overrides: dict) -> bool:
    return all(
        _contains(config.get(key, {}), value) if isinstance(value, dict) else config.get(key) == value
        for key, value in overrides.items()
    )


def test_the_shipped_pairs_were_trained_with_the_makefiles_config() -> None:
    """``make policies`` retrains what is shipped: its T2DRL_CONFIG is the shipped runs' config."""
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    lines = [line for line in makefile.splitlines() if line.startswith("T2DRL_CONFIG :=")]
    assert len(lines) == 1
    overrides = json.loads(lines[0].partition(":=")[2])
    assert overrides["caching"]["buffer_size"] == 5000 and overrides["rule_prior"] is True
    for name in ("ddqn+d3pg", "ddqn+ddpg"):
        config = json.loads((shipped_checkpoint(name) / "result.json").read_text())["config"]
        assert _contains(config, overrides), name
    assert not _contains({**config, "caching": {**config["caching"], "buffer_size": 50_000}}, overrides)


def _run(folder: Path, caching: str, allocation: str) -> Path:
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps({"caching": caching, "allocation": allocation}))
    return folder


def test_default_policies_with_a_checkpoint_keep_the_pairs_the_run_trained(tmp_path: Path) -> None:
    from orchestrator.live_demo import SHIPPED_POLICY, default_policies
    from orchestrator.policies import LEARNED_ALLOCATION, build_policies

    assert default_policies(None) == POLICIES
    heuristics = [n for n in POLICIES if not any(p in ("ddqn", *LEARNED_ALLOCATION) for p in n.split("+"))]
    t2drl = default_policies(SHIPPED_POLICY)
    assert t2drl == ("ddqn+d3pg", "ddqn+sqrt-band", *heuristics)
    for name in t2drl:  # every one of them loads from that single run
        caching, _, allocation = name.partition("+")
        assert None not in build_policies(caching, allocation, checkpoint=str(SHIPPED_POLICY))
    mlp = default_policies(_run(tmp_path / "mlp", "ddqn", "ddpg"))
    assert mlp == ("ddqn+ddpg", "ddqn+sqrt-band", *heuristics)
    assert default_policies(_run(tmp_path / "sac", "ddqn", "sac"))[:2] == ("ddqn+sac", "ddqn+sqrt-band")
    assert default_policies(_run(tmp_path / "random", "random", "d3pg")) == ("random+d3pg", *heuristics)
    assert default_policies(_run(tmp_path / "band", "ddqn", "sqrt-band")) == ("ddqn+sqrt-band", *heuristics)
    with pytest.raises(ValueError, match=r"checkpoint: .*missing"):
        default_policies(tmp_path / "missing")


def test_cli_demo_names_a_checkpoint_that_is_not_a_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app

    result = CliRunner().invoke(app, ["demo", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "checkpoint" in result.output and not (tmp_path / "out").exists()


def test_fidelity_without_a_checkpoint_simulates_each_learned_pair_with_its_shipped_run(tmp_path: Path) -> None:
    from orchestrator.fidelity import run_fidelity

    pairs = ("ddqn+d3pg", "ddqn+sqrt-band", "popular-spread+sqrt-band")
    default = run_fidelity(tmp_path / "default", policies=pairs, slots=20, live=False)["policies"]
    for name in pairs:  # the same figures as each run given by hand
        given = shipped_checkpoint(name)
        assert default[name]["checkpoint"] == (str(given) if given is not None else None)  # type: ignore[index]
        if given is not None:
            explicit = run_fidelity(tmp_path / name, policies=(name,), slots=20, live=False, checkpoint=given)
            assert explicit["policies"][name]["sim"] == default[name]["sim"]  # type: ignore[index]
    assert default["ddqn+d3pg"]["checkpoint"] != default["ddqn+sqrt-band"]["checkpoint"]  # type: ignore[index]
    assert [default[name].get("checkpoint_scenario_differs") for name in pairs] == [[], [], None]  # type: ignore[union-attr]
    band_run = shipped_checkpoint("ddqn+sqrt-band")  # one run for all still has to fit every pair: it has no D3PG
    with pytest.raises(ValueError, match="not 'd3pg'"):
        run_fidelity(tmp_path / "one", policies=pairs, slots=20, live=False, checkpoint=band_run)


def test_fidelity_says_where_the_checkpoints_scenario_differs_from_the_one_it_runs(tmp_path: Path) -> None:
    from orchestrator.fidelity import run_fidelity

    spec = load_scenario("t2drl").model_dump(mode="json", exclude_none=True)
    spec["users"]["count"] += 3
    spec["radio"]["fixed_share"] = 0.5
    spec["name"] = "crowded"  # another name alone is not a difference
    scenario = tmp_path / "crowded.toml"
    scenario.write_text(tomli_w.dumps(spec))
    lines: list[str] = []
    report = run_fidelity(tmp_path / "out", scenario=str(scenario), policies=("ddqn+d3pg", "ddqn+sqrt-band"),
                          slots=10, live=False, log=lines.append)  # fmt: skip
    for name in ("ddqn+d3pg", "ddqn+sqrt-band"):
        assert report["policies"][name]["checkpoint_scenario_differs"] == ["radio.fixed_share", "users.count"]  # type: ignore[index]
        warned = [line for line in lines if line.startswith(f"{name}: checkpoint {shipped_checkpoint(name)} trained")]
        assert len(warned) == 1 and "differs from 'crowded' in radio.fixed_share, users.count" in warned[0]


@pytest.mark.parametrize(
    ("policies", "said"),
    [
        ("most-popular+fixed-steps,nope+fixed", "policies: nope+fixed: caching: Input should be"),
        ("ddqn", "policies: 'ddqn' is not caching+allocation"),
        ("most-popular+fixed-steps,ddqn+d3pg", "policies: ddqn+d3pg: checkpoint: "),
    ],
)
def test_cli_demo_and_fidelity_check_every_policy_before_a_cluster_starts(
    tmp_path: Path, policies: str, said: str
) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app

    mlp = shipped_checkpoint("ddqn+ddpg")  # trained no D3PG: the third row's ddqn+d3pg cannot load from it
    for command in ("demo", "fidelity"):
        out = tmp_path / command
        result = CliRunner().invoke(app, [command, "--policies", policies, "--checkpoint", str(mlp), "--out", str(out)])
        assert result.exit_code != 0 and said in " ".join(result.output.split()), result.output
        assert not out.exists()  # refused before the first policy's cluster (or anything else) started


def test_cli_agent_only_is_listed() -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app

    result = CliRunner().invoke(app, ["demo", "--help"], terminal_width=200)
    assert result.exit_code == 0 and "--agent-only" in result.output and "--slots" in result.output


def test_policy_table_fits_80_columns(demo: tuple[Path, dict]) -> None:
    from rich.console import Console

    from orchestrator.cli import policy_table

    _, report = demo
    console = Console(width=80, record=True)
    console.print(policy_table(report))
    text = console.export_text()
    assert "…" not in text and "ddqn" in text and "+d3pg" in text and "+fixed-steps" in text


def test_power_timeline_plots_measured_power(tmp_path: Path) -> None:
    from orchestrator.figures import power_timeline

    db = sqlite3.connect(tmp_path / "m.sqlite")
    db.execute("CREATE TABLE telemetry (run_policy TEXT, agent TEXT, t_unix_s REAL, power_w REAL, power_source TEXT)")
    rows = [(p, a, 100.0 + i, 5.0 + i, "rapl") for p in ("x", "y") for a in ("edge-1", "cloud") for i in range(5)]
    db.executemany("INSERT INTO telemetry VALUES (?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    assert power_timeline(tmp_path / "m.sqlite", tmp_path / "p.png").read_bytes()[:8] == PNG
