"""layout.Layout owns a profile's paths, the names of the files stages hand each other, and the registry of
finished runs; files.atomic_write writes atomically."""

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

from eisbach_lib.files import append_csv_row, atomic_json, atomic_text, atomic_write
from eisbach_lib.layout import (ANATOMY_TABLES, DONE, LOG_CHUNK, METRICS_TABLES, Layout, finished_runs, is_finished, log_chunk,
                                log_chunk_glob, log_file, read_done)
from helpers import smoke_at


def test_paths_of_a_profile(tmp_path: Path):
    L = Layout(tmp_path / "runs", tmp_path / "figs")
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


def test_the_layout_of_a_profile(tmp_path: Path):
    cfg = smoke_at(tmp_path / "runs", {"figures_dir": str(tmp_path / "figs")})
    assert Layout.of(cfg) == Layout(tmp_path / "runs", tmp_path / "figs")


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


# --------------------------------------------------------------------------------------------
# one place names the files stages hand each other


def test_the_stage_files_are_named_by_layout(tmp_path: Path):
    L = Layout(tmp_path / "runs", tmp_path / "figs")
    runs = tmp_path / "runs"
    assert L.corpus_flatness == runs / "corpus" / "flatness.csv" and L.grid == runs / "adapters" / "grid.csv"
    assert [L.metrics_table(n).name for n in METRICS_TABLES] == [
        "clips.parquet", "reference_roundtrip.parquet", "reference.parquet", "intra.csv", "runs.csv", "ceiling.csv",
        "structure_validation.csv", "readout_validation.csv"]
    assert {p.parent for p in map(L.metrics_table, METRICS_TABLES)} == {runs / "metrics"}
    assert L.vendi_bandwidth == runs / "metrics" / "vendi_bandwidth.json"
    assert L.arm_summary.name == "arm_summary.csv" and L.paired_differences.name == "paired_differences.csv"
    assert L.readout_model == runs / "metrics" / "texture_readout.npz"
    assert [L.anatomy_table(n).name for n in ANATOMY_TABLES] == [
        "entropy_vs_t.csv", "weights_by_clip.csv", "grad_cosines.csv", "update_cosines.csv", "gradient_mass.csv",
        "weight_mix.csv", "entropy_vs_t_checkpoints.csv", "output_distances.csv"]
    assert L.anatomy_table("weight_mix.csv") == L.anatomy_table("weight_mix")
    assert set(ANATOMY_TABLES.values()) == {"anatomy", "dynamics"}
    assert (L.study, L.study_page, L.votes) == tuple(runs / "listening" / n for n in ("study.json", "study.html", "votes.csv"))
    assert L.scorecard_csv == tmp_path / "figs" / "scorecard.csv" and L.scorecard_md.name == "scorecard.md"
    pilot = runs / "pilot"
    assert (L.pilot, L.pilot_table, L.pilot_clips, L.plan_inputs, L.pilot_timings) == (
        pilot, pilot / "pilot.csv", pilot / "clips.parquet", pilot / "plan_inputs.json", pilot / "timings.json")
    assert Layout(pilot, pilot / "figures").timings == L.pilot_timings  # the pilot profile's own timings.json
    assert log_file("steps") == "log_steps.parquet" and LOG_CHUNK.fullmatch(log_chunk("samples", 20))
    assert log_chunk("samples", 20) == "samples_000020.parquet" and Path(log_chunk("steps", 5)).match(log_chunk_glob())
    for unknown in (lambda: L.metrics_table("ceilings"), lambda: L.anatomy_table("weights")):
        with pytest.raises(KeyError, match="they are"):
            unknown()


def test_tables_read_gives_none_for_every_missing_file(tmp_path: Path):
    from eisbach_lib.tables import Tables

    L = Layout(tmp_path, tmp_path / "figures")
    assert Tables.read(L).present() == []
    assert set(Tables.paths(L)) == {f.name for f in dataclasses.fields(Tables)}  # one file per field
    L.metrics.mkdir()
    L.metrics_table("ceiling").write_text("comparison,fd\nreference A vs B (codec),1.5\n")
    L.vendi_bandwidth.write_text(json.dumps({"bandwidth": 2.5}))
    t = Tables.read(L)
    assert t.present() == ["ceiling", "bandwidth"] and t.bandwidth == 2.5 and t.ceiling["fd"].tolist() == [1.5]


#: .csv / .parquet / .npy / .npz / .json names that a module other than layout.py may spell, each with why it
#: is not a file one stage hands another
ALLOWED_NAMES = {
    ("generate.py", "card_prompts.csv"): "the model card's prompts, shipped with the bundle in data/ (an input)",
    ("datasets.py", "metadata.csv"): "the captions file of the user's own audio folder (corpus.source: folder)",
}
#: files of the model directories the bundle reads (diffusers, peft, the text encoder's package): their
#: own formats, not stage outputs
MODEL_DIR_JSON = re.compile(r"(^|/)(config|tokenizer|adapter_config)\.json$|\.index\.json$")
SUFFIX = re.compile(r"\.(csv|parquet|npy|npz|json)$")
STAGE_SUFFIX = re.compile(r"[^/]" + SUFFIX.pattern)  # a file name (a bare ".json" is a suffix, not a name)


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, nodes) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def spelled_file_names(source: str) -> list[str]:
    """The string constants of `source` (docstrings left out) that end in a file name with a stage-file
    suffix, and the f-strings that do (as their text: `log_{which}.parquet`)."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip |= {id(v) for v in node.values}
            last = node.values[-1] if node.values else None
            if isinstance(last, ast.Constant) and SUFFIX.search(str(last.value)):
                out.append(ast.unparse(node)[2:-1])
    return out + [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                  and id(n) not in skip and STAGE_SUFFIX.search(n.value)]


def test_no_module_but_layout_spells_a_stage_file_name():
    """Every file one stage writes and another reads is named in layout.py (a constant or a Layout
    property); elsewhere only ALLOWED_NAMES (inputs from outside, each with its reason) and the model
    directories' own JSON files."""
    lib = Path(__file__).resolve().parents[1] / "eisbach_lib"
    found = {(p.name, name) for p in sorted(lib.glob("*.py")) if p.name != "layout.py"
             for name in spelled_file_names(p.read_text()) if not MODEL_DIR_JSON.search(name)}
    assert found == set(ALLOWED_NAMES), ("file names spelled outside layout.py (name them in layout.py, or add an "
                                         f"input from outside to ALLOWED_NAMES with its reason): {sorted(found - set(ALLOWED_NAMES))}; "
                                         f"allowed but gone: {sorted(set(ALLOWED_NAMES) - found)}")


def test_the_name_check_sees_what_it_looks_for():
    src = ('"""Writes clips.parquet."""\nimport x\n\n\ndef f(d, w):\n    """Reads runs.csv."""\n'
           '    a = d / "intra.csv"\n    b = d / f"log_{w}.parquet"\n    c = f"{d / \'meta.json\'}: bad"\n'
           '    return p.suffix == ".json", "manifest.csv is missing"\n')
    assert sorted(spelled_file_names(src)) == ["intra.csv", "log_{w}.parquet", "meta.json"]
