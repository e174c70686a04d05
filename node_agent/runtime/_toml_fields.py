"""Typed, strict access to one TOML table, with errors naming the file and the dotted field."""

from __future__ import annotations

import math
from typing import Any

_MISSING = object()


class Table:
    """Reads the fields of one TOML table and remembers which were read.

    Args:
        data: The table.
        file: File name used in error messages.
        prefix: Dotted path of this table ("" for the top level).
        error: Exception class to raise (called with one message string).
    """

    def __init__(self, data: dict[str, Any], file: str, prefix: str, error: type[Exception]) -> None:
        self._data = data
        self._file = file
        self._prefix = prefix
        self._error = error
        self._seen: set[str] = set()

    def fail(self, key: str, message: str) -> Exception:
        """Build the error for ``key`` (``"<file>: <table>.<key>: <message>"``)."""
        return self._error(f"{self._file}: {self._prefix}{key}: {message}")

    def _get(self, key: str, default: Any) -> Any:
        self._seen.add(key)
        if key in self._data:
            return self._data[key]
        if default is _MISSING:
            raise self.fail(key, "missing")
        return default

    def table(self, key: str) -> Table:
        """A required sub-table."""
        value = self._get(key, _MISSING)
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return Table(value, self._file, f"{self._prefix}{key}.", self._error)

    def raw_table(self, key: str) -> dict[str, Any]:
        """An optional sub-table returned as-is (empty when absent)."""
        value = self._get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return dict(value)

    def string(self, key: str, default: Any = _MISSING) -> Any:
        """A string field."""
        value = self._get(key, default)
        if value is not default and not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {type(value).__name__}")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: Any = _MISSING) -> str:
        """A string field restricted to ``allowed``."""
        value = self.string(key, default)
        if value not in allowed:
            raise self.fail(key, f"must be one of {', '.join(allowed)}; got {value!r}")
        return value

    def int(self, key: str, low: int, high: int, default: Any = _MISSING, hint: str = "") -> int:
        """An integer field in ``[low, high]`` (booleans are refused)."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise self.fail(key, f"must be {hint or f'in {low}..{high}'}, got {value}")
        return value

    def float(self, key: str, default: Any = _MISSING, positive: bool = False) -> float:
        """A finite number (integers accepted), optionally > 0."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise self.fail(key, "must be finite")
        if positive and value <= 0:
            raise self.fail(key, f"must be > 0, got {value}")
        return float(value)

    def bool(self, key: str, default: Any = _MISSING) -> bool:
        """A boolean field."""
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {type(value).__name__}")
        return value

    def str_list(self, key: str, default: Any = _MISSING) -> list[str]:
        """A list of strings."""
        value = self._get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "must be a list of strings")
        return list(value)

    def finish(self) -> None:
        """Refuse keys that no accessor asked for (typos must not fall back to defaults)."""
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise self.fail(unknown[0], "unknown key")
