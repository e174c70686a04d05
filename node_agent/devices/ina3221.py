"""Discovery and reading of Jetson INA3221 power monitors in sysfs (HARDWARE.md §1).

Two layouts:

* hwmon (JetPack 5+): `sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<N>/` with channels from 1:
  `in<N>_label`, `in<N>_input` (bus voltage, mV), `curr<N>_input` (mA); no power file, so
  P = V·I. Channel 7 (`sum of shunt voltages`) and `in4..6` (shunt voltages, µV) are not rails.
* iio (JetPack 4): `sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<N>/` with channels from 0:
  `rail_name_<N>`, `in_voltage<N>_input` (mV), `in_current<N>_input` (mA), `in_power<N>_input` (mW).

Both are also reachable through `sys/bus/i2c/devices/<bus>-<addr>` (entries are symlinks); bus,
address and hwmon numbers are globbed, never assumed. Channels labelled `NC`, disabled channels and
channels whose first read fails are left out and reported as unavailable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from node_agent.devices.base import Opener, default_opener

_NC_RE = re.compile(r"(^|[^A-Z0-9])NC([^A-Z0-9]|$)")
_SUM_CHANNEL = 7  # hwmon: in7 = sum of shunt voltages


@dataclass(frozen=True)
class Rail:
    """One INA3221 channel that measures a rail.

    Attributes:
        label: Rail label from the device tree (e.g. `VDD_IN`).
        chip: `<bus>-<addr>` of the sensor (e.g. `1-0040`).
        layout: `hwmon` or `iio`.
        power_file: Direct power file in mW (iio only), else None.
        voltage_file: Bus voltage file, mV.
        current_file: Current file, mA.
    """

    label: str
    chip: str
    layout: str
    power_file: Path | None
    voltage_file: Path | None
    current_file: Path | None

    def read_w(self, opener: Opener = default_opener) -> float:
        """Read the rail's power in watts (raises OSError/ValueError on a failed read)."""

        def read_int(path: Path) -> int:
            with opener(path) as f:
                return int(f.read().strip().split()[0])

        if self.power_file is not None:
            return read_int(self.power_file) / 1e3
        if self.voltage_file is None or self.current_file is None:
            raise ValueError(f"rail {self.label}: neither power nor voltage and current files")
        return read_int(self.voltage_file) * read_int(self.current_file) / 1e6


@dataclass
class Ina3221Scan:
    """What `scan` found.

    Attributes:
        rails: Readable rails in chip order.
        unavailable: `<chip>/<label or channel>` -> reason, for channels left out (NC excluded).
        chips: Sensor directories found.
        update_period_s: Largest per-chip `update_interval` (hwmon) or `polling_delay_<N>` (iio) in
            seconds, where readable and non-zero.
    """

    rails: list[Rail] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    chips: list[Path] = field(default_factory=list)
    update_period_s: float | None = None


def _read_text(path: Path, opener: Opener) -> str:
    with opener(path) as f:
        return f.read().strip()


def _is_ina3221(i2c_dev: Path, sensor_dir: Path, opener: Opener) -> bool:
    for name_file in (i2c_dev / "name", sensor_dir / "name"):
        try:
            if "ina3221" in _read_text(name_file, opener).lower():
                return True
        except OSError:
            continue
    return False


def find_chips(sysfs_root: Path, opener: Opener = default_opener) -> list[tuple[str, str, Path]]:
    """Sensor directories as `(chip, layout, dir)`, deduplicated by real path, sorted by chip."""
    i2c = sysfs_root / "sys/bus/i2c"
    found: dict[Path, tuple[str, str, Path]] = {}
    patterns = (
        ("drivers/ina3221/*/hwmon/hwmon*", "hwmon", False),
        ("drivers/ina3221x/*/iio:device*", "iio", False),
        ("devices/*/hwmon/hwmon*", "hwmon", True),
        ("devices/*/iio:device*", "iio", True),
    )
    for pattern, layout, check_name in patterns:
        for sensor_dir in sorted(i2c.glob(pattern)):
            i2c_dev = sensor_dir.parent.parent if layout == "hwmon" else sensor_dir.parent
            if check_name and not _is_ina3221(i2c_dev, sensor_dir, opener):
                continue
            found.setdefault(sensor_dir.resolve(), (i2c_dev.name, layout, sensor_dir))
    return sorted(found.values(), key=lambda item: (item[0], str(item[2])))


def _channels(layout: str, sensor_dir: Path) -> list[tuple[int, Path]]:
    pattern, regex = ("in*_label", r"in(\d+)_label") if layout == "hwmon" else ("rail_name_*", r"rail_name_(\d+)")
    out = []
    for label_file in sensor_dir.glob(pattern):
        m = re.fullmatch(regex, label_file.name)
        if m:
            out.append((int(m.group(1)), label_file))
    return sorted(out)


def _period_s(layout: str, sensor_dir: Path, n: int | None, opener: Opener) -> float | None:
    name = "update_interval" if layout == "hwmon" else f"polling_delay_{n}"
    try:
        ms = int(_read_text(sensor_dir / name, opener).split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return ms / 1e3 if ms > 0 else None


def scan(sysfs_root: Path, opener: Opener = default_opener) -> Ina3221Scan:
    """Find every INA3221 rail under `sysfs_root` and try one read of each."""
    result = Ina3221Scan()
    periods: list[float] = []
    for chip, layout, sensor_dir in find_chips(sysfs_root, opener):
        result.chips.append(sensor_dir)
        if layout == "hwmon" and (p := _period_s(layout, sensor_dir, None, opener)) is not None:
            periods.append(p)
        for n, label_file in _channels(layout, sensor_dir):
            key = f"{chip}/ch{n}"
            try:
                label = _read_text(label_file, opener)
            except OSError as exc:
                result.unavailable[key] = f"label unreadable: {exc}"
                continue
            if layout == "hwmon" and (n == _SUM_CHANNEL or "sum of shunt" in label.lower()):
                continue
            if not label or _NC_RE.search(label.upper()):
                continue
            if any(r.label == label for r in result.rails):
                label = f"{label}@{chip}"  # same label on two sensors: keep both, distinguishable
            key = f"{chip}/{label}"
            if layout == "hwmon":
                enable = sensor_dir / f"in{n}_enable"
                if enable.exists() and _read_text(enable, opener) == "0":
                    result.unavailable[key] = f"in{n}_enable is 0 (channel disabled)"
                    continue
                rail = Rail(label, chip, layout, None, sensor_dir / f"in{n}_input", sensor_dir / f"curr{n}_input")
            else:
                power_file = sensor_dir / f"in_power{n}_input"
                rail = Rail(
                    label,
                    chip,
                    layout,
                    power_file if power_file.exists() else None,
                    sensor_dir / f"in_voltage{n}_input",
                    sensor_dir / f"in_current{n}_input",
                )
                if (p := _period_s(layout, sensor_dir, n, opener)) is not None:
                    periods.append(p)
            try:
                rail.read_w(opener)
            except (OSError, ValueError) as exc:
                result.unavailable[key] = f"read failed: {exc}"
                continue
            result.rails.append(rail)
    result.update_period_s = max(periods) if periods else None
    return result


@dataclass(frozen=True)
class TotalRule:
    """Which rails make up total module power.

    Attributes:
        rails: Labels to sum (a single label for modules with an input rail); empty if no rule.
        description: The rule in words, reported in `DeviceInfo.notes["total_power_rule"]`.
        reason: Why total power is unavailable, or None when the rule applies.
    """

    rails: tuple[str, ...]
    description: str
    reason: str | None = None


_AGX_ORIN = ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0")
_AGX_XAVIER = ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V")


def total_rule(available: set[str], failed: set[str]) -> TotalRule:
    """Pick the total-power rule of HARDWARE.md §1.3 from the rail labels.

    Args:
        available: Labels of readable rails.
        failed: Labels of rails that exist but could not be read.
    """
    for parent in ("VDD_IN", "POM_5V_IN"):
        if parent in available:
            return TotalRule((parent,), f"{parent} (module input rail; other rails are subsets)")
        if parent in failed:
            return TotalRule((), f"{parent} (module input rail)", f"{parent} channel is unreadable")
    for module, rails, why in (
        ("AGX Orin", _AGX_ORIN, "VDDQ_VDD2_1V8AO excluded: it is fed from VIN_SYS_5V0"),
        ("AGX Xavier", _AGX_XAVIER, "no parent rail"),
    ):
        if set(rails) & (available | failed):
            description = f"{module}: {' + '.join(rails)} ({why})"
            missing = [r for r in rails if r not in available]
            if missing:
                return TotalRule((), description, f"rails {', '.join(missing)} missing or unreadable")
            return TotalRule(rails, description)
    labels = ", ".join(sorted(available)) or "none"
    return TotalRule((), "none", f"no total-power rule known for rails [{labels}]; per-rail values only")
