"""layout.Layout owns a profile's paths and the registry of finished runs; files.atomic_write writes atomically."""

import json
from pathlib import Path

import pytest

from eisbach_lib.files import append_csv_row, atomic_json, atomic_text, atomic_write
from eisbach_lib.layout import DONE, Layout, finished_runs, is_finished, read_done


def test_paths_of_a_profile(tmp_path: Path):
    L = Layout.of({"runs_dir": str(tmp_path / "runs"), "figures_dir": str(tmp_path / "figs")})
    runs = tmp_path / "runs"
    assert L.runs == runs and L.figures == tmp_path / "figs"
    assert L.corpus_manifest == runs / "corpus" / "manifest.csv"
    assert L.cache == runs / "cache" and L.base == runs / "base"
    assert L.adapter_run("dora", "eisbach", 1) == runs / "adapters" / "dora_eisbach_s1"
    assert L.anatomy_table("weight_mix") == runs / "anatomy" / "weight_mix.csv"
    assert L.constant_weight == runs / "anatomy" / "constant_weight.json"
    assert L.prompts == runs / "prompts.csv"
    assert L.sample_dir("base") == runs / "samples" / "base" / "step_final"
    assert L.sample_dir("dora_none_s0", 10) == runs / "samples" / "dora_none_s0" / "step_10"
    assert L.samples_manifest == runs / "samples" / "manifest.csv"
    assert L.metrics == runs / "metrics" and L.listening == runs / "listening"
    assert L.notebooks == runs / "notebooks" and L.timings == runs / "timings.json"
    assert L.report == runs / "report.html"


def test_figures_default_under_runs(tmp_path: Path):
    assert Layout.of({"runs_dir": str(tmp_path)}).figures == tmp_path / "figures"


def test_finished_runs_registry(tmp_path: Path):
    runs = [tmp_path / f"r{i}" for i in range(3)]
    for r in runs:
        r.mkdir()
    (runs[1] / DONE).write_text(json.dumps({"steps": 5, "arm": "none"}))
    assert [is_finished(r) for r in runs] == [False, True, False]
    assert finished_runs(runs) == [runs[1]]
    assert read_done(runs[1]) == {"steps": 5, "arm": "none"}
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        read_done(runs[0])


def test_atomic_write_replaces_and_leaves_no_tmp(tmp_path: Path):
    path = tmp_path / "sub" / "table.csv"
    atomic_text(path, "old\n")
    atomic_write(path, lambda tmp: tmp.write_text("new\n"))
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["table.csv"]
    atomic_json(tmp_path / "d.json", {"b": 1, "a": 2})
    assert json.loads((tmp_path / "d.json").read_text()) == {"a": 2, "b": 1}


def test_failed_writer_keeps_the_old_file(tmp_path: Path):
    path = tmp_path / "done.json"
    atomic_text(path, "old")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["done.json"]


def test_append_csv_row_writes_the_header_once(tmp_path: Path):
    path = tmp_path / "votes.csv"
    append_csv_row(path, {"a": 1, "b": "x"}, ["a", "b"])
    append_csv_row(path, {"b": "y", "c": 3}, ["a", "b"])
    assert path.read_text().splitlines() == ["a,b", "1,x", ",y"]
