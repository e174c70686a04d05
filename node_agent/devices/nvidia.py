"""Discrete NVIDIA GPU through NVML (`nvidia-ml-py`, imported as `pynvml` only when used).

Every NVML query is probed once at open: a query that answers NOT_SUPPORTED (or any other NVML error)
makes its metric `unavailable` with the reason, never 0 (HARDWARE.md §3). On Jetson, NVML initialises
but supports nothing; such a device has no working metric and fails to open.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable
from typing import Any

from node_agent.devices.base import Device, DeviceError, DeviceInfo, DeviceUnavailable, Reading, TelemetrySource

_SRC = TelemetrySource
FI_DEV_POWER_INSTANT = 186  # NVML_FI_DEV_POWER_INSTANT, mW
POWER_SCOPE_GPU = 0  # NVML_POWER_SCOPE_GPU
CLOCK_SM = 1  # NVML_CLOCK_SM
NVML_SUCCESS = 0
ERROR_NOT_SUPPORTED = 3
ERROR_GPU_IS_LOST = 15


def _decode_field_value(field: Any) -> float:
    """Numeric value of a `c_nvmlFieldValue_t` according to its `valueType` (0 double .. 6 ushort)."""
    member = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}
    return float(getattr(field.value, member.get(int(field.valueType), "uiVal")))


class NvidiaDevice(Device):
    """One NVIDIA GPU by index.

    Args:
        index: NVML device index.
        nvml_module: The `pynvml` module or a stand-in with the same names (tests); imported if None.

    Raises:
        DeviceUnavailable: nvidia-ml-py is missing, NVML fails to initialise, the index does not
            exist, or no metric at all is supported.
    """

    def __init__(self, index: int = 0, *, nvml_module: Any | None = None) -> None:
        if nvml_module is None:
            try:
                nvml_module = importlib.import_module("pynvml")
            except ImportError as exc:
                raise DeviceUnavailable("nvidia-ml-py (pynvml) is not installed: pip install 'edgetb[gpu]'") from exc
        self._nvml = nvml_module
        self._error_type: type[BaseException] = getattr(nvml_module, "NVMLError", Exception)
        self._lock = threading.Lock()
        self._closed = False
        self._index = index
        try:
            nvml_module.nvmlInit()
        except self._error_type as exc:
            raise DeviceUnavailable(f"nvmlInit failed: {exc}") from exc
        try:
            count = int(nvml_module.nvmlDeviceGetCount())
            if not 0 <= index < count:
                raise DeviceUnavailable(f"NVML reports {count} GPU(s); index {index} does not exist")
            self._handle = nvml_module.nvmlDeviceGetHandleByIndex(index)
            name = nvml_module.nvmlDeviceGetName(self._handle)
            self._name = name.decode() if isinstance(name, bytes) else str(name)
            self._probe()
        except self._error_type as exc:
            self._shutdown()
            raise DeviceUnavailable(f"NVML query failed on GPU {index}: {exc}") from exc
        except DeviceUnavailable:
            self._shutdown()
            raise

    # -- probing -------------------------------------------------------------------------------
    def _reason(self, call: str, exc: BaseException) -> str:
        code = getattr(exc, "value", None)
        if code == getattr(self._nvml, "NVML_ERROR_NOT_SUPPORTED", ERROR_NOT_SUPPORTED):
            return f"NVML {call}: NOT_SUPPORTED on this GPU"
        return f"NVML {call}: {exc}"

    def _try(self, call: str, fn: Callable[[], Any]) -> tuple[Any, str]:
        try:
            return fn(), ""
        except self._error_type as exc:
            return None, self._reason(call, exc)

    def _power_field_mw(self) -> float:
        """Instant power via field 186, raising the per-field NVML error if it is set."""
        values = self._nvml.nvmlDeviceGetFieldValues(self._handle, [(FI_DEV_POWER_INSTANT, POWER_SCOPE_GPU)])
        field = values[0]
        if int(field.nvmlReturn) != NVML_SUCCESS:
            raise self._nvml.NVMLError(int(field.nvmlReturn))
        return _decode_field_value(field)

    def _probe(self) -> None:
        nv, h = self._nvml, self._handle
        self._unavailable: dict[str, str] = {}
        self._notes: dict[str, str] = {}
        energy_mj, why = self._try(
            "nvmlDeviceGetTotalEnergyConsumption", lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h)
        )
        self._energy_last_mj = None if energy_mj is None else int(energy_mj)
        self._energy_acc_mj = 0
        if why:
            self._unavailable["energy"] = why
        self._power_fn: Callable[[], float] | None = None
        _, why_field = self._try("nvmlDeviceGetFieldValues(186)", self._power_field_mw)
        if not why_field:
            self._power_fn = self._power_field_mw
            self._notes["power"] = "field 186 NVML_FI_DEV_POWER_INSTANT, scope GPU"
        else:
            _, why_usage = self._try("nvmlDeviceGetPowerUsage", lambda: nv.nvmlDeviceGetPowerUsage(h))
            if not why_usage:
                self._power_fn = lambda: float(nv.nvmlDeviceGetPowerUsage(h))
                self._notes["power"] = f"nvmlDeviceGetPowerUsage (1 s average on Ampere+ except GA100); {why_field}"
            else:
                self._unavailable["power"] = f"{why_field}; {why_usage}"
        mem, why = self._try("nvmlDeviceGetMemoryInfo", lambda: nv.nvmlDeviceGetMemoryInfo(h))
        self._mem_total_bytes = None if mem is None else int(mem.total)
        if why:
            self._unavailable["mem"] = why
        for metric, call, fn in (
            ("util", "nvmlDeviceGetUtilizationRates", lambda: nv.nvmlDeviceGetUtilizationRates(h)),
            ("clock", "nvmlDeviceGetClockInfo(SM)", lambda: nv.nvmlDeviceGetClockInfo(h, CLOCK_SM)),
        ):
            _, why = self._try(call, fn)
            if why:
                self._unavailable[metric] = why
        if len(self._unavailable) == 5:
            raise DeviceUnavailable(
                "NVML initialised but every query failed (Jetson iGPU?): " + "; ".join(self._unavailable.values())
            )

    # -- Device API ----------------------------------------------------------------------------
    def _source(self, metric: str) -> TelemetrySource:
        return _SRC.UNAVAILABLE if metric in self._unavailable else _SRC.NVML

    def info(self) -> DeviceInfo:
        return DeviceInfo(
            kind="nvidia",
            name=self._name,
            mem_total_bytes=self._mem_total_bytes,
            sources={m: self._source(m) for m in ("power", "energy", "mem", "util", "clock")},
            unavailable=dict(self._unavailable),
            native_update_period_s=None,
            notes={"gpu_index": str(self._index), **self._notes},
        )

    def _call(self, metric: str, fn: Callable[[], Any]) -> Any:
        """Run a probed-OK query; a later NVML error makes this one value None (GPU lost: raise)."""
        if metric in self._unavailable:
            return None
        try:
            return fn()
        except self._error_type as exc:
            if getattr(exc, "value", None) == getattr(self._nvml, "NVML_ERROR_GPU_IS_LOST", ERROR_GPU_IS_LOST):
                raise DeviceError(f"GPU {self._index} is lost: {exc}") from exc
            return None

    def read(self) -> Reading:
        """Query energy, power, memory, utilisation and SM clock once.

        Energy is the driver's total-energy counter (mJ since driver load) minus its value at open,
        in joules; a counter that goes backwards (driver reload) restarts from the new value.
        """
        nv, h = self._nvml, self._handle
        with self._lock:
            if self._closed:
                raise DeviceError("device is closed")
            t_mono_s, t_unix_s = time.monotonic(), time.time()
            energy_j = None
            energy_mj = self._call("energy", lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h))
            if energy_mj is not None and self._energy_last_mj is not None:
                energy_mj = int(energy_mj)
                step = energy_mj - self._energy_last_mj
                self._energy_acc_mj += step if step >= 0 else energy_mj
                self._energy_last_mj = energy_mj
                energy_j = self._energy_acc_mj / 1000.0
            power_mw = self._call("power", self._power_fn) if self._power_fn else None
            mem = self._call("mem", lambda: nv.nvmlDeviceGetMemoryInfo(h))
            util = self._call("util", lambda: nv.nvmlDeviceGetUtilizationRates(h))
            clock = self._call("clock", lambda: nv.nvmlDeviceGetClockInfo(h, CLOCK_SM))

        def src(value: Any) -> TelemetrySource:
            return _SRC.NVML if value is not None else _SRC.UNAVAILABLE

        return Reading(
            t_unix_s=t_unix_s,
            t_monotonic_s=t_mono_s,
            power_w=None if power_mw is None else float(power_mw) / 1000.0,
            power_source=src(power_mw),
            energy_j=energy_j,
            energy_source=src(energy_j),
            mem_used_bytes=None if mem is None else int(mem.used),
            mem_total_bytes=None if mem is None else int(mem.total),
            mem_source=src(mem),
            util_pct=None if util is None else float(util.gpu),
            util_source=src(util),
            clock_mhz=None if clock is None else float(clock),
            clock_source=src(clock),
        )

    def _shutdown(self) -> None:
        with contextlib.suppress(self._error_type):
            self._nvml.nvmlShutdown()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._shutdown()
