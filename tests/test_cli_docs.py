"""Every `eisbach …` command line the project writes for its users parses with the real parser: the
README, docs/design.md, the notebooks (markdown and code cells) and the library's own text (the
report page's and the study page's HTML, error messages that say what to run). The parser is built
and asked to parse each argv; no command runs.

A command line is taken from where text marks it as code: a `backtick` span, a line of a ``` fence,
an HTML <code> element, or a notebook line starting with `eisbach`/`!eisbach`; `python -m
eisbach_lib.cli ...` (torchrun, accelerate) counts too. What it stands for is filled in:
placeholders (P, ARM, S, N, DIR, FILE..., i/n) and f-string fields ({cfg.name}) get a value,
`[optional]` parts are tried with and without, `a|b` alternatives each. A span that is only a
subcommand's name (`eisbach train|grid`, a mention in prose) must name subcommands; any longer one
must parse. An unknown upper-case placeholder fails the test, so a new one gets a value here."""

from __future__ import annotations

import argparse
import html
import itertools
import json
import re
import shlex
from pathlib import Path

import pytest

from eisbach_lib.cli import build_parser
from helpers import page_csv, prefer, tiny_samples
from series_run import profile_copy

REPO = Path(__file__).resolve().parent.parent
#: a value for each placeholder the documents write
PLACEHOLDERS = {"P": "smoke", "ARM": "eisbach", "S": "0", "N": "20", "DIR": "runs/x/adapters/dora_none_s0",
                "FILE...": "votes_a.csv votes_b.csv", "FILE": "votes_a.csv", "i/n": "0/2"}
#: how a command line is marked in text (the span's text, the command inside it)
SPAN_PATTERNS = (re.compile(r"`([^`\n]+)`"), re.compile(r"<code>(.*?)</code>", re.S))
COMMAND = re.compile(r"(?:^|\s|!)(eisbach\s+.*|-m\s+eisbach_lib\.cli\s+.*)$")


#: shell operators between commands on one line (`a && b`, `for ...; do a & done; wait`)
SHELL_SEPARATOR = re.compile(r"\s(?:&&|\|\||&|;)\s|;\s")
#: what follows `eisbach` in a command line: a subcommand (or `a|b` names), an option, or `…`;
#: anything else (`eisbach − none`, `eisbach train: error: ...`) is prose or a program's output
FIRST_TOKEN = re.compile(r"[a-z]+(\|[a-z]+)*|--[a-z-]+|…|\.\.\.")


def _command(piece: str) -> str | None:
    """The command line in one shell command or code span, or None."""
    m = COMMAND.search(piece.strip())
    if not m:
        return None
    rest = re.sub(r"^(eisbach|-m\s+eisbach_lib\.cli)\s+", "", m.group(1))
    return m.group(1) if FIRST_TOKEN.fullmatch(rest.split()[0]) else None


def _commands_in_text(text: str) -> list[str]:
    """The command lines in `text` (markdown, notebook source, or Python source holding HTML)."""
    pieces: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or re.match(r"\s*!?eisbach\s", line):
            pieces += SHELL_SEPARATOR.split(line.split(" #")[0].rstrip())
    for pattern in SPAN_PATTERNS:
        for span in pattern.findall(text):
            pieces += SHELL_SEPARATOR.split(html.unescape(span))
    return [c for c in map(_command, pieces) if c]


def _sources() -> dict[str, str]:
    """name -> text of every place that writes command lines for users."""
    texts = {"README.md": (REPO / "README.md").read_text(), "docs/design.md": (REPO / "docs" / "design.md").read_text()}
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        texts[f"notebooks/{nb.name}"] = "\n".join("".join(c["source"]) for c in cells)
    for py in sorted((REPO / "eisbach_lib").glob("*.py")):
        texts[f"eisbach_lib/{py.name}"] = py.read_text()
    return texts


def _argvs(command: str) -> list[list[str]]:
    """The argv lists (after `eisbach`) that a documented command line stands for."""
    command = re.sub(r"^(eisbach|-m\s+eisbach_lib\.cli)\s+", "", command.strip())
    command = re.sub(r"\{[^{}]*\}", "smoke", command)  # f-string fields: the profile's name
    variants = {re.sub(r"\[([^\[\]]*)\]", r"\1", command), re.sub(r"\s*\[[^\[\]]*\]", "", command)}
    argvs = []
    for variant in sorted(variants):
        choices = [token.split("|") for token in shlex.split(variant)]
        for combo in itertools.product(*choices):
            argv: list[str] = []
            for token in combo:
                if token in PLACEHOLDERS:
                    argv += PLACEHOLDERS[token].split()
                else:
                    assert not re.fullmatch(r"[A-Z][A-Z_.]*", token), f"placeholder {token!r} has no value in PLACEHOLDERS"
                    argv.append(token)
            argvs.append(argv)
    return argvs


def documented_commands() -> list[tuple[str, str]]:
    """(source, command line) for every documented command, in order, without repeats per source."""
    out = []
    for name, text in _sources().items():
        for command in dict.fromkeys(_commands_in_text(text)):
            out.append((name, command))
    return out


COMMANDS = documented_commands()


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    return {name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices}


@pytest.mark.parametrize("source,command", COMMANDS, ids=[f"{s}:{c}" for s, c in COMMANDS])
def test_documented_command_parses(source, command):
    parser = build_parser()
    for argv in _argvs(command):
        first = argv[0] if argv else ""
        if first in ("…", "..."):  # "`eisbach …`": the command line in general
            continue
        if len(argv) == 1:  # a subcommand named in prose (`eisbach train|grid`): it must exist
            assert first in _subcommands(parser), f"{source}: `{command}` names no subcommand {first!r}"
            continue
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{source}: `{command}` does not parse as eisbach {shlex.join(argv)}")


def test_the_documents_do_write_commands():
    """The extraction finds what is there (a broken pattern would pass every case above vacuously)."""
    by_source: dict[str, list[str]] = {}
    for source, command in COMMANDS:
        by_source.setdefault(source, []).append(command)
    assert len(by_source["README.md"]) >= 15, by_source.get("README.md")
    assert any("listen import --profile P FILE" in c for c in by_source["notebooks/05_samples.ipynb"])
    assert any("listen import --profile" in c for c in by_source["eisbach_lib/report.py"])
    assert any("grid --profile P" in c for c in by_source["notebooks/03_train_grid.ipynb"])


def test_options_and_files_in_any_order():
    """The documented import form and its permutations give the same arguments; --profile may come
    before the subcommand too."""
    parser = build_parser()
    forms = ["listen import --profile smoke a.csv b.csv", "listen --profile smoke import a.csv b.csv",
             "listen import a.csv b.csv --profile smoke", "listen import a.csv --profile smoke b.csv",
             "--profile smoke listen import a.csv b.csv"]
    parsed = [vars(parser.parse_args(f.split())) for f in forms]
    assert all(p == parsed[0] for p in parsed), parsed
    assert parsed[0]["files"] == ["a.csv", "b.csv"] and parsed[0]["profile"] == "smoke"
    args = parser.parse_args("train --seed 2 --profile x.yaml --arm none --steps 5".split())
    assert (args.profile, args.arm, args.seed, args.steps) == ("x.yaml", "none", 2, 5)
    assert parser.parse_args(["corpus"]).profile == "cpu"  # the default
    for bad in (["train", "--profile", "smoke"], ["listen", "bogus"], ["corpus", "stray"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_documented_import_form_imports(tmp_path, capsys):
    """`eisbach listen import --profile P FILE...` runs as written (the README's, notebook 05's and the
    report's form, rc 2 "unrecognized arguments" before), on a tiny study in a temporary runs folder."""
    from eisbach_lib.cli import main
    from eisbach_lib.study_design import load_study

    runs = tmp_path / "runs"
    runs.mkdir()
    tiny_samples(runs)
    prof = profile_copy(tmp_path / "profile.yaml", runs)
    main(["listen", "kit", "--profile", str(prof)])
    doc = load_study(runs / "listening" / "study.json")
    files = [page_csv(tmp_path / f"{r}.csv", doc, r, prefer("eisbach")) for r in ("r1", "r2")]
    capsys.readouterr()
    main(["listen", "import", "--profile", str(prof), *map(str, files)])
    assert "32 new votes" in capsys.readouterr().out
