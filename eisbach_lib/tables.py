"""The evaluation tables: the one object `evaluate.write_metrics` returns and the scorecard reads.

One field per file the evaluate stage hands the scorecard (the names in `layout.METRICS_TABLES`,
plus the prompt table generate writes and the Vendi bandwidth evaluate fixes):

  clips       metrics/clips.parquet                one row per generated clip
  reference   metrics/reference_roundtrip.parquet  the reference split through the codec (what every
                                                   fidelity and set metric compares with)
  raw         metrics/reference.parquet            the reference split as rendered
  intra       metrics/intra.csv                    intra-prompt Vendi per run, step and prompt
  runs        metrics/runs.csv                     inter-prompt Vendi, FD and KID per run and step
  ceiling     metrics/ceiling.csv                  what the metrics read without any model
  structure   metrics/structure_validation.csv     the structural metrics' bar-shuffle validation
  readout     metrics/readout_validation.csv       the texture readout's validation (absent: no readout)
  prompts     prompts.csv                          the evaluation prompts (generate), their `set`
  bandwidth   metrics/vendi_bandwidth.json         the Vendi kernel bandwidth (a number)

`last_step_rows` and `final_rows` define "the final step" once: each run's own last step.

A table whose file is missing is None (`Tables.read`): the scorecard then says which input is
missing instead of failing. Below evaluate and scorecard (it imports only `layout`), so both use it
without an import cycle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from .layout import METRICS_TABLES, Layout


@dataclass(frozen=True, eq=False)
class Tables:
    """The evaluation tables by name (module docstring); None where a table is missing."""

    clips: pd.DataFrame | None = None
    reference: pd.DataFrame | None = None
    raw: pd.DataFrame | None = None
    intra: pd.DataFrame | None = None
    runs: pd.DataFrame | None = None
    ceiling: pd.DataFrame | None = None
    structure: pd.DataFrame | None = None
    readout: pd.DataFrame | None = None
    prompts: pd.DataFrame | None = None
    bandwidth: float | None = None

    @staticmethod
    def paths(layout: Layout) -> dict[str, Path]:
        """Each field's file in `layout` (the files the evaluate stage hands the scorecard)."""
        return {**{name: layout.metrics_table(name) for name in METRICS_TABLES}, "prompts": layout.prompts,
                "bandwidth": layout.vendi_bandwidth}

    @classmethod
    def read(cls, layout: Layout) -> "Tables":
        """The tables as the files in `layout` hold them; a missing file is None."""
        values: dict = {}
        for name, path in cls.paths(layout).items():
            if not path.exists():
                continue
            if name == "bandwidth":
                values[name] = float(json.loads(path.read_text())["bandwidth"])
            elif name == "prompts":
                values[name] = pd.read_csv(path, keep_default_na=False)
            else:
                values[name] = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        return cls(**values)

    def present(self) -> list[str]:
        """The names of the fields that hold a table (or the bandwidth)."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


def _at_last_step(df: pd.DataFrame) -> pd.Series:
    """True on the rows of each run (`run` column) at the largest `step` the table holds for it."""
    return df["step"] == df.groupby("run")["step"].transform("max")


def last_step_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run (`run` column) at the largest `step` the table holds for it: the run's own
    final step (a run trained with `--steps` ends where its record says, not at finetune.steps)."""
    return df[_at_last_step(df)]


def final_rows(df: pd.DataFrame, adapter: str, base: bool = True) -> pd.DataFrame:
    """The rows of `adapter`'s runs at each run's own final step, and the base model's (arm "base")
    when `base`: the one definition of "the final step" that the metrics summaries, the scorecard and
    the listening views share (`last_step_rows`); in a table without a `run` column every row of the
    adapter counts."""
    keep = df["adapter"] == adapter
    if "run" in df:
        keep &= _at_last_step(df)
    return df[keep | (df["arm"] == "base")] if base else df[keep]
