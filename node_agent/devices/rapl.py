"""RAPL energy counters through the Linux powercap sysfs interface (Intel and AMD).

Layout (HARDWARE.md §2): zones `intel-rapl:<N>` (packages) and subzones `intel-rapl:<N>:<M>` under
`/sys/class/powercap/` (flat links) or nested under `/sys/devices/virtual/powercap/intel-rapl/`.
Zones are identified by their `name` file (`package-<N>`, `package-<N>-die-<D>`, `dram`, `core`,
`uncore`, `psys`), never by index. `energy_uj` is a cumulative µJ counter that wraps at
`max_energy_range_uj`; since Linux 5.10 (CVE-2020-8694) it is readable by root only.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from node_agent.devices.base import DeviceError, DeviceUnavailable, Opener, default_opener

_PACKAGE_RE = re.compile(r"^package-\d+(-die-\d+)?$")
# The Intel SDM gives ~1 ms as the update interval of the RAPL energy status MSRs.
RAPL_UPDATE_PERIOD_S = 0.001


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone.

    Attributes:
        name: Content of the zone's `name` file (`package-0`, `dram`, ...).
        path: The zone directory.
        max_energy_range_uj: Wrap point of `energy_uj`, µJ.
    """

    name: str
    path: Path
    max_energy_range_uj: int


def _zone_dirs(sysfs_root: Path) -> list[Path]:
    """All `intel-rapl:*` zone directories (top-level and subzones), deduplicated by real path."""
    candidates: list[Path] = []
    class_dir = sysfs_root / "sys/class/powercap"
    if class_dir.is_dir():
        candidates += sorted(class_dir.glob("intel-rapl:*"))
    virtual_dir = sysfs_root / "sys/devices/virtual/powercap/intel-rapl"
    if virtual_dir.is_dir():
        candidates += sorted(virtual_dir.glob("intel-rapl:*"))
        candidates += sorted(virtual_dir.glob("intel-rapl:*/intel-rapl:*"))
    seen: set[Path] = set()
    zones: list[Path] = []
    for path in candidates:
        real = path.resolve()
        if real not in seen and (path / "name").is_file():
            seen.add(real)
            zones.append(path)
    return zones


class RaplReader:
    """Reads package (summed over all packages) and DRAM energy with wrap-around correction.

    A wrap is detected only if reads come at least once per wrap time
    (`max_energy_range_uj` / peak power, ~60 s at high power on 32-bit counters); the telemetry
    sampler reads far more often than that.

    Args:
        sysfs_root: Root of the file system holding `sys/` (tests pass a fake tree).
        opener: Opens a file for reading; injectable so tests can raise `PermissionError`.

    Raises:
        DeviceUnavailable: No RAPL package zone exists, or `energy_uj` cannot be read.
    """

    def __init__(self, sysfs_root: Path = Path("/"), opener: Opener = default_opener) -> None:
        self._opener = opener
        self._lock = threading.Lock()
        packages: list[RaplZone] = []
        drams: list[RaplZone] = []
        for path in _zone_dirs(sysfs_root):
            try:
                name = self._read_text(path / "name")
                max_uj = int(self._read_text(path / "max_energy_range_uj"))
            except (OSError, ValueError):
                continue
            zone = RaplZone(name=name, path=path, max_energy_range_uj=max_uj)
            if _PACKAGE_RE.match(name):
                packages.append(zone)
            elif name == "dram":
                drams.append(zone)
        if not packages:
            raise DeviceUnavailable(f"no RAPL package zone under {sysfs_root / 'sys/class/powercap'}")
        self.packages: tuple[RaplZone, ...] = tuple(packages)
        self.dram_unavailable_reason: str | None = None if drams else "no RAPL dram zone"
        try:
            self._last_uj = {z.path: self._read_energy_uj(z) for z in packages}
        except PermissionError as exc:
            raise DeviceUnavailable(f"RAPL energy_uj is root-only since Linux 5.10 (CVE-2020-8694): {exc}") from exc
        except (OSError, ValueError) as exc:
            raise DeviceUnavailable(f"cannot read RAPL energy_uj: {exc}") from exc
        self.drams: tuple[RaplZone, ...] = ()
        if drams:
            try:
                self._last_uj.update({z.path: self._read_energy_uj(z) for z in drams})
                self.drams = tuple(drams)
            except (OSError, ValueError) as exc:
                self.dram_unavailable_reason = f"cannot read RAPL dram energy_uj: {exc}"
        self._total_uj = dict.fromkeys(self._last_uj, 0)

    def _read_text(self, path: Path) -> str:
        with self._opener(path) as f:
            return f.read().strip()

    def _read_energy_uj(self, zone: RaplZone) -> int:
        return int(self._read_text(zone.path / "energy_uj"))

    @staticmethod
    def wrap_delta_uj(prev_uj: int, cur_uj: int, max_energy_range_uj: int) -> int:
        """Energy between two raw counter values in µJ, assuming at most one wrap in between."""
        if max_energy_range_uj <= 0:
            return max(cur_uj - prev_uj, 0)
        return (cur_uj - prev_uj) % max_energy_range_uj

    def read_j(self) -> tuple[float, float | None]:
        """Read all counters once.

        Returns:
            `(package_energy_j, dram_energy_j)`: cumulative energies in joules since this reader was
            created, summed over packages (resp. DRAM zones); `dram_energy_j` is None without DRAM.

        Raises:
            DeviceError: A counter could not be read (e.g. the zone disappeared).
        """
        with self._lock:
            for zone in self.packages + self.drams:
                try:
                    cur_uj = self._read_energy_uj(zone)
                except (OSError, ValueError) as exc:
                    raise DeviceError(f"RAPL read of {zone.path / 'energy_uj'} failed: {exc}") from exc
                prev_uj = self._last_uj[zone.path]
                self._total_uj[zone.path] += self.wrap_delta_uj(prev_uj, cur_uj, zone.max_energy_range_uj)
                self._last_uj[zone.path] = cur_uj
            package_uj = sum(self._total_uj[z.path] for z in self.packages)
            dram_uj = sum(self._total_uj[z.path] for z in self.drams) if self.drams else None
        return package_uj / 1e6, (None if dram_uj is None else dram_uj / 1e6)
