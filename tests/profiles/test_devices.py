"""Device profiles: the shipped files load and cite a source for every figure; bad files are refused
naming the file and the field; the scaling ratio is the ratio of peak FP32."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from itertools import permutations
from pathlib import Path

import pytest

from profiles.devices import (
    DEVICES_DIR,
    DeviceProfile,
    DeviceProfileError,
    load_device,
    shipped_devices,
    throughput_ratio,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {"jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin", "jetson-xavier-nx", "rtx-4090", "x86-cpu"}
SHIPPED_FILES = sorted(DEVICES_DIR.glob("*.toml"))


# -- shipped files ---------------------------------------------------------------------------------
def test_the_issue_s_devices_are_shipped():
    assert set(shipped_devices()) == EXPECTED
    assert [p.stem for p in SHIPPED_FILES] == shipped_devices()


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda p: p.stem)
def test_every_shipped_device_loads_and_its_name_is_the_stem(path):
    profile = DeviceProfile.load(path)
    assert profile.name == path.stem
    assert load_device(path.stem) == profile == load_device(path)
    assert profile.fp32_gflops == profile.throughput.fp32_gflops > 0
    table = {"jetson": "ina3221", "nvidia": "nvml", "cpu": "rapl"}[profile.kind]
    assert getattr(profile.telemetry, table) is not None


def test_shipped_figures_that_others_rely_on():
    nano, cpu = load_device("jetson-orin-nano"), load_device("x86-cpu")
    assert nano.fp32_gflops == pytest.approx(1024 * 0.625 * 2)
    assert nano.telemetry.ina3221.total_rail == "VDD_IN" and nano.unified_memory
    assert nano.sim is not None and nano.sim.idle_power_w < nano.sim.max_power_w <= nano.power.max_w
    assert cpu.telemetry.power_source == "unavailable" and cpu.telemetry.rapl.exposed is False
    for words in ("2-vCPU", "KVM", "Xeon", "AVX-512", "24 GiB", "no RAPL"):
        assert words in cpu.description
    agx = load_device("jetson-agx-orin")
    assert agx.telemetry.ina3221.total_rail is None
    assert "VDDQ_VDD2_1V8AO" not in agx.telemetry.ina3221.total_sum_rails  # fed from VIN_SYS_5V0
    assert load_device("rtx-4090").telemetry.nvml.total_energy is True


# -- scaling rule -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b"), list(permutations(sorted(EXPECTED), 2)))
def test_throughput_ratio_is_the_ratio_of_fp32_gflops(a, b):
    source, target = load_device(a), load_device(b)
    ratio = throughput_ratio(source, target)
    assert ratio == pytest.approx(target.throughput.fp32_gflops / source.throughput.fp32_gflops)
    assert ratio * throughput_ratio(target, source) == pytest.approx(1.0)


def test_rtx_4090_is_many_times_the_x86_cpu():
    ratio = throughput_ratio(load_device("x86-cpu"), load_device("rtx-4090"))
    assert ratio > 1
    assert ratio == pytest.approx(82575.36 / 294.4)
    assert throughput_ratio(load_device("jetson-orin-nano"), load_device("jetson-orin-nano")) == 1.0


# -- invalid files ----------------------------------------------------------------------------------
def _toml(data: dict, prefix: str = "") -> str:
    """A minimal TOML writer for these files' shapes (scalars, lists, inline tables, nested tables)."""

    def scalar(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {scalar(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        return repr(v)

    lines = [f"{k} = {scalar(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += [f"\n[{prefix}{k}]", _toml(v, f"{prefix}{k}.")]
    return "\n".join(lines)


def patched(tmp_path: Path, device: str, where: str, value: object, *, name: str | None = None) -> Path:
    """A copy of a shipped profile with ``where`` (dotted; list items by index) set, or removed (...)."""
    data = copy.deepcopy(tomllib.loads((DEVICES_DIR / f"{device}.toml").read_text()))
    *parents, last = where.split(".")
    target = data
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    path = tmp_path / f"{name or device}.toml"
    path.write_text(_toml(data))
    return path


BAD = [
    ("jetson-orin-nano", "colour", "red", "colour: unknown field"),
    ("jetson-orin-nano", "power.bogus_w", 1.0, "power.bogus_w: unknown field"),
    ("jetson-orin-nano", "telemetry.ina3221.rail", ["VDD_IN"], "telemetry.ina3221.rail: unknown field"),
    ("jetson-orin-nano", "power.max_w", "fifteen", "power.max_w: Input should be a valid number"),
    ("jetson-orin-nano", "mem_total_bytes", 8.5, "mem_total_bytes: Input should be a valid integer"),
    ("jetson-orin-nano", "unified_memory", "yes", "unified_memory: Input should be a valid boolean"),
    ("jetson-orin-nano", "throughput.fp32_gflops", True, "throughput.fp32_gflops: Input should be a valid number"),
    ("jetson-orin-nano", "throughput.fp32_gflops", -1.0, "throughput.fp32_gflops: must be > 0"),
    ("jetson-orin-nano", "power.idle_w", 20.0, "power.idle_w: must be <= power.max_w (15)"),
    ("jetson-orin-nano", "throughput.fp32_gflops", ..., "throughput.fp32_gflops: missing"),
    ("jetson-orin-nano", "kind", ..., "kind: missing"),
    ("jetson-orin-nano", "schema", 2, "schema: Input should be 1"),
    ("jetson-orin-nano", "kind", "tpu", "kind: Input should be"),
    ("jetson-orin-nano", "power.modes.0.budget_w", 99.0, "power.modes.0.budget_w: must be <= power.max_w (15)"),
    ("jetson-orin-nano", "power.modes.1.id", 0, "power.modes.0.id: 0 appears more than once"),
    ("jetson-orin-nano", "power.default_mode", "MAXN", "power.default_mode: must name one of power.modes"),
    ("jetson-orin-nano", "sim.idle_power_w", 16.0, "sim.idle_power_w: must be <= sim.max_power_w"),
    ("jetson-orin-nano", "sim.max_power_w", 25.0, "sim.max_power_w: must be <= power.max_w (15)"),
    ("jetson-orin-nano", "sim.mem_total_bytes", 2**40, "sim.mem_total_bytes: must be <= mem_total_bytes"),
    ("jetson-orin-nano", "sim.max_mem_used_bytes", 7990149121, "sim.max_mem_used_bytes: must be <= sim.mem_total"),
    ("jetson-orin-nano", "sim.extra", 1, "sim.extra: unknown field"),
    ("jetson-orin-nano", "telemetry.power_source", "nvml", "telemetry.power_source: 'nvml' does not fit kind"),
    ("jetson-orin-nano", "telemetry.ina3221", ..., "telemetry.ina3221: required for kind 'jetson'"),
    ("jetson-orin-nano", "telemetry.ina3221.total_rail", "VDD_GPU", "telemetry.ina3221.total_rail: must be one of"),
    ("jetson-agx-orin", "telemetry.ina3221.total_sum_rails", ["VDD_GPU_SOC", "VDD_X"], "'VDD_X' is not one of rails"),
    ("rtx-4090", "telemetry.nvml", ..., "telemetry.nvml: required for kind 'nvidia'"),
    ("rtx-4090", "telemetry.nvml.clocks", "yes", "telemetry.nvml.clocks: Input should be a valid boolean"),
    ("x86-cpu", "telemetry.rapl.exposed", True, "telemetry.power_source: must be 'rapl'"),
    ("x86-cpu", "telemetry.power_source", "rapl", "telemetry.power_source: must be 'unavailable'"),
]


@pytest.mark.parametrize(("device", "where", "value", "message"), BAD, ids=[f"{b[1]}={b[2]!r}" for b in BAD])
def test_bad_profile_is_refused_naming_file_and_field(tmp_path, device, where, value, message):
    path = patched(tmp_path, device, where, value)
    with pytest.raises(DeviceProfileError) as info:
        DeviceProfile.load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and path.name in text
    assert message in text


def test_name_must_equal_the_file_stem(tmp_path):
    path = patched(tmp_path, "jetson-orin-nano", "description", "copy", name="my-nano")
    with pytest.raises(DeviceProfileError, match=r"my-nano\.toml: name: must equal the file name stem 'my-nano'"):
        load_device(path)
    renamed = patched(tmp_path, "jetson-orin-nano", "name", "my-nano", name="my-nano")
    assert load_device(renamed).name == "my-nano"


def test_unreadable_or_invalid_toml_names_the_file(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("schema = = 1\n")
    with pytest.raises(DeviceProfileError, match=r"broken\.toml: "):
        load_device(broken)
    with pytest.raises(DeviceProfileError, match=r"no-such-device\.toml"):
        load_device("no-such-device")


def test_every_problem_is_reported_at_once(tmp_path):
    path = patched(tmp_path, "jetson-orin-nano", "power.idle_w", 20.0)
    data = tomllib.loads(path.read_text())
    data["sim"]["idle_power_w"] = 16.0
    path.write_text(_toml(data))
    with pytest.raises(DeviceProfileError) as info:
        load_device(path)
    assert "power.idle_w:" in str(info.value) and "sim.idle_power_w:" in str(info.value)


# -- every figure has its source ------------------------------------------------------------------------
_FIGURE = re.compile(r"=\s*(?:[-+]?\d|[-+]?(?:inf|nan)\b|true\b|false\b)")


def _split_comment(line: str) -> tuple[str, str]:
    """``(code, comment)`` of one TOML line, string contents blanked; a ``#`` in a string is no comment."""
    code, quote, i = [], None, 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = None
                code.append(ch)
            else:
                code.append("_")
        elif ch in "\"'":
            quote = ch
            code.append(ch)
        elif ch == "#":
            return "".join(code), line[i + 1 :].strip()
        else:
            code.append(ch)
        i += 1
    return "".join(code), ""


def uncommented_figures(text: str) -> list[str]:
    """Lines holding a number or a boolean with no comment on the line or on the line before."""
    bad, previous_is_comment = [], False
    for line in text.splitlines():
        if not line.strip():
            continue
        code, comment = _split_comment(line)
        if _FIGURE.search(code) and not (len(comment) >= 3 or previous_is_comment):
            bad.append(line)
        previous_is_comment = not code.strip() and len(comment) >= 3
    return bad


def test_source_check_catches_a_bare_figure():
    assert uncommented_figures('a = 1  # [DS] x\n# [DS] y\nb = 2.0\nflag = true\nc = "x # not a comment = 3"\n') == [
        "flag = true"
    ]
    assert uncommented_figures('x = "#"  \nm = [\n  { id = 0 },\n]\n') == ["  { id = 0 },"]


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda p: p.stem)
def test_every_figure_in_a_shipped_file_cites_a_source(path):
    assert uncommented_figures(path.read_text()) == []


# -- dependencies -----------------------------------------------------------------------------------
def test_loader_depends_on_pydantic_only():
    code = (
        "import sys, profiles.devices as d\n"
        "d.load_device('x86-cpu')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('node_agent', 'orchestrator', 'torch', 'onnxruntime')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)
