"""Scenario files: the shipped t2drl.toml loads; each invalid field is refused naming file and field."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

from profiles.scenario import SCENARIOS_DIR, Scenario, ScenarioError, load_scenario

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SHIPPED = SCENARIOS_DIR / "t2drl.toml"
REPO = Path(__file__).resolve().parents[2]


def shipped_data() -> dict:
    return tomllib.loads(SHIPPED.read_text())


def write_patched(tmp_path: Path, section: str | None, field: str, value: object) -> Path:
    """t2drl.toml with one field replaced (``value`` None: the field removed), written as TOML."""
    data = copy.deepcopy(shipped_data())
    target = data
    for part in section.split(".") if section else ():
        target = target[part]
    if value is None:
        target.pop(field)
    else:
        target[field] = value
    path = tmp_path / "t2drl.toml"
    path.write_text(_to_toml(data))
    return path


def _to_toml(data: dict, prefix: str = "") -> str:
    """A minimal TOML writer for the scenario's shapes (scalars, lists of scalars, nested tables)."""

    def scalar(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        return repr(v)

    lines = [f"{k} = {scalar(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            name = f"{prefix}{k}"
            lines.append(f"\n[{name}]")
            lines.append(_to_toml(v, name + "."))
    return "\n".join(lines)


def test_shipped_scenario_loads() -> None:
    sc = load_scenario("t2drl")
    assert sc == Scenario.load(SHIPPED) == load_scenario(SHIPPED)
    assert sc.name == "t2drl"
    assert sc.models.order[0] == "digits-resmlp-l"
    assert set(sc.models.names) == {"digits-mlp-s", "digits-resmlp-l", "digits-ldm"}
    assert sc.users.rate_per_s == (0.2, 0.6)
    assert sc.users.count >= 1 and sc.timing.slot_s > 0 and sc.timing.frame_slots >= 1
    assert sc.utility.quality == "class-probability"
    assert 1 <= sc.cluster.cache_models < len(sc.models.names)  # caching decisions matter


def test_shipped_models_exist() -> None:
    sc = load_scenario("t2drl")
    for name in sc.models.names:
        assert (REPO / "profiles" / "models" / name / "model.toml").is_file(), name


def test_scenario_ships_in_wheel() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "scenarios/*.toml" in pyproject["tool"]["setuptools"]["package-data"]["profiles"]


def test_toml_writer_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "t2drl.toml"
    path.write_text(_to_toml(shipped_data()))
    assert Scenario.load(path) == load_scenario("t2drl")


def test_scalar_range_means_fixed() -> None:
    data = shipped_data()
    data["users"]["rate_per_s"] = 0.5
    data["users"].pop("w_latency")
    sc = Scenario.build(**data)
    assert sc.users.rate_per_s == (0.5, 0.5)
    assert sc.users.w_latency is None


@pytest.mark.parametrize(
    ("section", "field", "value", "expected"),
    [
        ("users", "rate_per_s", -1.0, "users.rate_per_s: must be > 0"),
        ("users", "rate_per_s", 0, "users.rate_per_s: must be > 0"),
        ("users", "rate_per_s", [0.6, 0.2], "users.rate_per_s: low must not exceed high"),
        ("users", "rate_per_s", [0.1, 0.2, 0.3], "users.rate_per_s: must be a number or [low, high]"),
        ("users", "rate_per_s", "fast", "users.rate_per_s: must be a number or [low, high]"),
        ("users", "rate_per_s", None, "users.rate_per_s: missing"),
        ("users", "count", 0, "users.count: must be >= 1"),
        ("users", "w_latency", [-0.1, 1.0], "users.w_latency: must be >= 0"),
        ("users", "w_energy", -1, "users.w_energy: must be >= 0"),
        ("users", "quality_floor", 1.5, "users.quality_floor: must be <= 1"),
        ("users", "speed", 1, "users.speed: unknown field"),
        ("timing", "slot_s", 0.0, "timing.slot_s: must be > 0"),
        ("timing", "frame_slots", 0, "timing.frame_slots: must be >= 1"),
        ("timing", "slots", 0, "timing.slots: must be >= 1"),
        ("models", "rank", ["digits-mlp-s"], "models.rank: must list each of models.names exactly once"),
        ("models", "names", ["a", "a"], "models.names: 'a' appears more than once"),
        ("models", "names", [], "models.names"),
        ("models.popularity", "zipf_s", -0.5, "models.popularity.zipf_s: must be >= 0"),
        ("models.popularity", "drift_frames", -1, "models.popularity.drift_frames: must be >= 0"),
        ("requests", "deadline_s", 0, "requests.deadline_s: must be > 0"),
        ("requests", "max_per_run", 0, "requests.max_per_run: must be >= 1"),
        ("requests", "labels", "zipf", "requests.labels"),
        ("utility", "quality", "fd", "utility.quality"),
        ("utility", "w_latency", -1, "utility.w_latency: must be >= 0"),
        ("cluster", "cache_models", 4, "cluster.cache_models: must be <= the number of models (3)"),
        ("cluster", "cloud_delay_ms", -5, "cluster.cloud_delay_ms: must be >= 0"),
        (None, "seed", -1, "seed: must be >= 0"),
        (None, "name", "bad name!", "name:"),
    ],
)
def test_invalid_field_names_file_and_field(
    tmp_path: Path, section: str | None, field: str, value: object, expected: str
) -> None:
    path = write_patched(tmp_path, section, field, value)
    with pytest.raises(ScenarioError) as info:
        Scenario.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert f"t2drl.toml: {expected}" in message, message


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text("name = [")
    with pytest.raises(ScenarioError, match=r"broken\.toml"):
        Scenario.load(bad)
    with pytest.raises(ScenarioError, match=r"nope\.toml"):
        load_scenario("nope")
