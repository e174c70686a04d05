"""The record an ``edgetb train --env t2drl`` run leaves in its folder (``result.json``), read in one place.

The daemon's config, ``edgetb demo``, the learned policies and ``edgetb select-policy`` all read a run folder
given on the command line or in a config file; each names its own field in the error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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
