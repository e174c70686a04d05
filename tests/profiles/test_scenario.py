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
    with pytest.raises(ScenarioError, match=r"scenario 'nope' is not shipped \([^)]*t2drl[^)]*\); give one of"):
        load_scenario("nope")
    with pytest.raises(ScenarioError, match=r"nope\.toml"):  # a path: the file is named
        load_scenario(tmp_path / "nope.toml")


RADIO = {"bandwidth_hz": 2e6, "image_bytes": 4096, "snr_db": [5.0, 25.0], "fading": "rayleigh", "min_share": 0.1}


def write_with_radio(tmp_path: Path, **over: object) -> Path:
    """t2drl.toml with a [radio] table (``RADIO`` with ``over``; a value None: the field removed)."""
    data = copy.deepcopy(shipped_data())
    radio = dict(RADIO)
    for key, value in over.items():
        if value is None:
            radio.pop(key)
        else:
            radio[key] = value
    data["radio"] = radio
    path = tmp_path / "t2drl.toml"
    path.write_text(_to_toml(data))
    return path


def test_radio_table_loads(tmp_path: Path) -> None:
    no_radio = {k: v for k, v in shipped_data().items() if k != "radio"}
    assert Scenario.build(**no_radio).radio is None  # no [radio] table: no downlink
    sc = Scenario.load(write_with_radio(tmp_path))
    assert sc.radio is not None
    assert sc.radio.bandwidth_hz == 2e6 and sc.radio.image_bytes == 4096
    assert sc.radio.snr_db == (5.0, 25.0) and sc.radio.fading == "rayleigh" and sc.radio.min_share == 0.1
    # everything else is the shipped scenario
    assert sc.model_copy(update={"radio": None}) == Scenario.build(**no_radio)
    # defaults and a single number (every user gets it)
    sc = Scenario.load(write_with_radio(tmp_path, fading=None, min_share=None, snr_db=12))
    assert sc.radio is not None
    assert sc.radio.fading == "rayleigh" and sc.radio.min_share == 0.05 and sc.radio.snr_db == (12.0, 12.0)
    data = shipped_data() | {"radio": RADIO | {"fading": "none", "snr_db": -50}}
    assert Scenario.build(**data).radio.fading == "none"
    assert Scenario.build(**(shipped_data() | {"radio": RADIO | {"snr_db": [-50, 80]}})).radio.snr_db == (-50, 80)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("bandwidth_hz", 0, "radio.bandwidth_hz: must be > 0"),
        ("bandwidth_hz", -1e6, "radio.bandwidth_hz: must be > 0"),
        ("bandwidth_hz", "wide", "radio.bandwidth_hz"),
        ("bandwidth_hz", None, "radio.bandwidth_hz: missing"),
        ("image_bytes", 0, "radio.image_bytes: must be >= 1"),
        ("image_bytes", None, "radio.image_bytes: missing"),
        ("snr_db", 81, "radio.snr_db: must be <= 80"),
        ("snr_db", -51, "radio.snr_db: must be >= -50"),
        ("snr_db", [0, 100], "radio.snr_db: must be <= 80"),
        ("snr_db", [-60, 10], "radio.snr_db: must be >= -50"),
        ("snr_db", [30, 10], "radio.snr_db: low must not exceed high"),
        ("snr_db", [1, 2, 3], "radio.snr_db: must be a number or [low, high]"),
        ("snr_db", None, "radio.snr_db: missing"),
        ("fading", "rician", "radio.fading"),
        ("min_share", 0, "radio.min_share: must be > 0"),
        ("min_share", 1.5, "radio.min_share: must be <= 1"),
        ("fixed_share", 0, "radio.fixed_share: must be > 0"),
        ("fixed_share", 2, "radio.fixed_share: must be <= 1"),
        ("power_dbm", 20, "radio.power_dbm: unknown field"),
    ],
)
def test_invalid_radio_field_names_the_field(tmp_path: Path, field: str, value: object, expected: str) -> None:
    path = write_with_radio(tmp_path, **{field: value})
    with pytest.raises(ScenarioError) as info:
        Scenario.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert f"t2drl.toml: {expected}" in message, message


def test_invalid_radio_field_names_the_field_when_built() -> None:
    with pytest.raises(ScenarioError, match=r"^radio\.bandwidth_hz: must be > 0"):
        Scenario.build(**(shipped_data() | {"radio": RADIO | {"bandwidth_hz": 0}}))
    with pytest.raises(ScenarioError, match=r"^radio\.fading"):
        Scenario.build(**(shipped_data() | {"radio": RADIO | {"fading": "nakagami"}}))
    with pytest.raises(ScenarioError, match=r"^radio\.snr_db: must not be NaN"):
        Scenario.build(**(shipped_data() | {"radio": RADIO | {"snr_db": float("nan")}}))
