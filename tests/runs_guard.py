"""The user's runs/ folder is theirs: a pytest session must leave it as it found it.

`runs_untouched` (an autouse session fixture, imported by conftest.py) takes the state of the guarded
folder when the session starts and compares it when the session ends; a difference is an error at
the session's teardown, so `make test` fails and names the paths. The guarded folder is
<repo>/runs, or $EISBACH_GUARDED_RUNS (tests/test_runs_guard.py points it at a folder of its own to
show that a write is caught).

The state: every path under the folder (directories too, so a new empty folder counts), with the
sha256 of the bytes of each file under <runs>/smoke (the smoke series a user keeps, small) and the
size and modification time elsewhere (runs/cpu or a GPU profile's runs may hold gigabytes; any write
moves the modification time)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: where byte-for-byte content is compared (below the guarded folder)
HASHED = "smoke"


def guarded_runs() -> Path:
    """The folder the session must not change."""
    return Path(os.environ.get("EISBACH_GUARDED_RUNS") or REPO / "runs")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_state(root: Path) -> dict[str, str]:
    """relative path -> "dir", "link -> target", "sha256 ..." (files under root/smoke) or "size mtime_ns";
    {} when `root` does not exist."""
    state: dict[str, str] = {}
    if not root.exists():
        return state
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_symlink():
            state[str(rel)] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            state[str(rel)] = "dir"
        elif rel.parts[0] == HASHED:
            state[str(rel)] = "sha256 " + _sha256(path)
        else:
            st = path.stat()
            state[str(rel)] = f"{st.st_size} {st.st_mtime_ns}"
    return state


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """'added P', 'removed P', 'changed P' for every path that differs."""
    return ([f"added {p}" for p in sorted(after.keys() - before.keys())]
            + [f"removed {p}" for p in sorted(before.keys() - after.keys())]
            + [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]])


@pytest.fixture(scope="session", autouse=True)
def runs_untouched():
    """Fail the session (an error at teardown) when it changed the guarded runs folder."""
    root = guarded_runs()
    before = tree_state(root)
    yield root
    diff = changes(before, tree_state(root))
    assert not diff, (f"the tests changed {root}, which belongs to the user ({len(diff)} paths): "
                      + ", ".join(diff[:10]))
