"""Atomic writes: a file is written under a temporary name and renamed (os.replace), so an
interrupted process leaves either the old file or the new one, never half of one. Also the one way
rows are appended to a CSV log (`append_csv_row`)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable, Iterable
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


def atomic_text(path: str | Path, text: str, encoding: str | None = None) -> Path:
    """Write `text` to `path` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding=encoding))


def atomic_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented, key-sorted JSON atomically."""
    return atomic_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def atomic_dir(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """A folder written atomically: `write(tmp)` fills the empty folder `<path>.tmp` (a stale one,
    left by an interrupted write, is cleared first), which then replaces `path` (an existing `path`
    is removed first)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def append_csv_row(path: str | Path, row: dict, columns: Iterable[str]) -> None:
    """Append one row (the keys `columns`, missing ones empty) to a CSV file, writing the header
    when the file is missing or empty; flushed at once, never truncates the file."""
    path = Path(path)
    columns = list(columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in columns})
