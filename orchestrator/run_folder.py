"""The record an ``edgetb train --env t2drl`` run leaves in its folder (``result.json``), read in one place.

The daemon's config, ``edgetb demo``, the learned policies and ``edgetb select-policy`` all read a run folder
given on the command line or in a config file; each names its own field in the error. A run records the
scenario it trained on whole (``scenario_spec``), so it replays on that scenario even when it came from a file
that is not shipped, or the shipped file has changed since; :func:`scenario_differences` says where a run's
scenario and the one it is run on part (the daemon and ``edgetb demo`` / ``fidelity`` warn and record it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from profiles.scenario import Scenario, ScenarioError, load_scenario


def read_run(folder: str | Path, field: str, keys: Sequence[str] = ()) -> dict[str, Any]:
    """``folder/result.json`` as a dict holding at least ``keys``.

    Raises:
        ValueError: the file is missing or unreadable, not a JSON object, or lacks one of ``keys``; the message
            starts with ``field`` and the folder.
    """
    try:
        result = json.loads((Path(folder) / "result.json").read_text())
        if not isinstance(result, dict):
            raise ValueError(f"result.json holds a {type(result).__name__}, not an object")
        missing = [key for key in keys if key not in result]
        if missing:
            raise ValueError(f"result.json has no {', '.join(missing)}")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{field}: {folder} is not an `edgetb train --env t2drl` run folder ({exc})") from exc
    return result


def run_scenario(result: dict[str, Any], field: str, folder: str | Path) -> Scenario:
    """The scenario a run trained on: the one its ``result.json`` records (``scenario_spec``), or, for runs
    written before it did, the shipped scenario of its ``scenario`` name.

    Raises:
        ValueError: the recorded scenario is invalid, or an older run's scenario is not shipped (one trained on a
            scenario file); the message starts with ``field`` and the folder.
    """
    try:
        if "scenario_spec" in result:
            return Scenario.build(**result["scenario_spec"])
        return load_scenario(str(result["scenario"]))
    except ScenarioError as exc:
        recorded = "scenario_spec" in result
        why = "its scenario_spec is invalid" if recorded else (
            f"it names scenario {result['scenario']!r}, which is not shipped, and was written before result.json "
            "recorded the scenario (scenario_spec)"
        )  # fmt: skip
        raise ValueError(f"{field}: {folder}: {why} ({exc})") from exc


#: Scenario fields that do not change what a policy meets: a copy under another name is the same problem.
_NOT_COMPARED = ("name", "description")


def scenario_differences(checkpoint: str | Path, scenario: Scenario) -> list[str] | None:
    """The fields (dotted, ``users.count``) in which the scenario a run trained on differs from ``scenario``:
    ``[]`` where they agree; None where the run does not say (unreadable, or an older run of an unshipped
    scenario). Name and description are not compared."""
    try:
        trained = run_scenario(read_run(checkpoint, "checkpoint"), "checkpoint", checkpoint)
    except ValueError:
        return None
    return spec_differences(scenario, trained)


def spec_differences(ours: Scenario, theirs: Scenario) -> list[str]:
    """The fields (dotted) in which two scenarios differ, name and description aside; [] where they agree."""
    a, b = ours.model_dump(mode="json"), theirs.model_dump(mode="json")
    return _differences({k: v for k, v in a.items() if k not in _NOT_COMPARED},
                        {k: v for k, v in b.items() if k not in _NOT_COMPARED})  # fmt: skip


def _differences(ours: object, theirs: object, prefix: str = "") -> list[str]:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return [
            path for key in sorted(ours.keys() | theirs.keys())
            for path in _differences(ours.get(key), theirs.get(key), f"{prefix}{key}.")
        ]  # fmt: skip
    return [] if ours == theirs else [prefix.removesuffix(".")]


def scenario_warning(checkpoint: str | Path, scenario: Scenario, differences: list[str] | None) -> str | None:
    """One line for the log where a checkpoint meets a scenario other than its own (None where it does not)."""
    if differences == []:
        return None
    if differences is None:
        return f"checkpoint {checkpoint}: its result.json does not say which scenario it trained on"
    shown = ", ".join(differences[:8]) + (f" and {len(differences) - 8} more" if len(differences) > 8 else "")
    return (
        f"checkpoint {checkpoint} trained on a scenario that differs from {scenario.name!r} in {shown}: "
        "its learners run as trained"
    )
