"""Atomic writes: a file is written under a temporary name and renamed (os.replace), so an
interrupted process leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` for a temporary path next to `path` (same folder, same suffix, so writers
    that look at the suffix still work), then rename it onto `path`. Creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented, key-sorted JSON atomically."""
    return atomic_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))
