"""Reading a training run's result.json: what it holds, or an error naming the caller's field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.run_folder import read_run


def test_a_run_folder_reads_back_its_result(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"caching": "ddqn", "allocation": "d3pg", "seed": 3}))
    assert read_run(tmp_path, "checkpoint", ("caching", "allocation"))["seed"] == 3


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file"),
        ("{not json", "Expecting"),
        ("[1, 2]", "holds a list"),
        ('{"caching": "ddqn"}', "no allocation"),
    ],
)
def test_a_folder_that_is_not_a_run_names_the_field_and_why(tmp_path: Path, content: str | None, reason: str) -> None:
    if content is not None:
        (tmp_path / "result.json").write_text(content)
    with pytest.raises(ValueError, match=r"^runs: .* is not an `edgetb train --env t2drl` run folder") as info:
        read_run(tmp_path, "runs", ("caching", "allocation"))
    assert reason in str(info.value)
