"""Where a profile's files live: one place owns every path under `runs_dir` and `figures_dir`.

    <runs_dir>/
      corpus/            manifest.csv, audio/ (WAVs), midi/ (chamber source); skipped.csv (the
                         musiccaps and folder sources: bad rows and why)          (eisbach corpus)
      cache/<key>/       pre-encoded latents and tokens, meta.json               (eisbach corpus)
      base/              the pretrained embedded DiT, a training run's folder    (eisbach pretrain)
      adapters/<adapter>_<arm>_s<seed>/   run.json, ckpt_*, log_*, done.json   (eisbach train);
                         adapters/grid.csv (eisbach grid)
      anatomy/           barrier anatomy and training dynamics CSVs  (eisbach anatomy, dynamics);
                         constant_weight.json (the constant arm's cached weight)
      prompts.csv        the evaluation prompts (held-out reference captions, unconditional rows, the card's)
      samples/<name>/step_<n|final>/  generated WAVs + latents.npy + manifest.csv; samples/manifest.csv (eisbach generate)
      metrics/           clips.parquet, runs.csv, ... (eisbach evaluate);
                         texture_readout.npz (the fitted texture classifier, readout.fit_readout)
      listening/         the listening-study kit: study.json, study.html, anchors/, votes.csv
      notebooks/         the executed notebooks                       (eisbach reproduce)
      timings.json       each notebook's run time in seconds          (eisbach reproduce)
      report.html        one page of the executed series              (eisbach reproduce, report)
      pilot/             `eisbach pilot`: a profile of its own (runs_dir <runs_dir>/pilot, its
                         figures in pilot/figures) whose corpus/, cache/ and base/ link to the
                         profile's; pilot.csv, clips.parquet, plan_inputs.json, timings.json
    <figures_dir>/       figures, scorecard.csv and scorecard.md (default <runs_dir>/figures)

A run is finished when its folder holds done.json (`is_finished`); `finished_runs` is the registry
the later stages read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DONE = "done.json"


@dataclass(frozen=True)
class Layout:
    """The paths of one profile (`Layout.of(cfg)`); every module asks here instead of joining paths."""

    runs: Path
    figures: Path

    @classmethod
    def of(cls, cfg: dict) -> "Layout":
        """The layout of a loaded profile; without `figures_dir`, figures go to <runs_dir>/figures."""
        runs = Path(cfg["runs_dir"])
        return cls(runs, Path(cfg["figures_dir"]) if cfg.get("figures_dir") else runs / "figures")

    @property
    def corpus(self) -> Path:
        return self.runs / "corpus"

    @property
    def corpus_manifest(self) -> Path:
        return self.corpus / "manifest.csv"

    @property
    def cache(self) -> Path:
        return self.runs / "cache"

    @property
    def base(self) -> Path:
        return self.runs / "base"

    @property
    def adapters(self) -> Path:
        return self.runs / "adapters"

    def adapter_run(self, adapter: str, arm: str, seed: int) -> Path:
        return self.adapters / f"{adapter}_{arm}_s{int(seed)}"

    @property
    def anatomy(self) -> Path:
        return self.runs / "anatomy"

    def anatomy_table(self, name: str) -> Path:
        """<runs_dir>/anatomy/<name>.csv (or <name> itself when it has a suffix)."""
        return self.anatomy / (name if Path(name).suffix else f"{name}.csv")

    @property
    def constant_weight(self) -> Path:
        """The cache of the `constant` arm's weight ({key: entry})."""
        return self.anatomy / "constant_weight.json"

    @property
    def prompts(self) -> Path:
        return self.runs / "prompts.csv"

    @property
    def samples(self) -> Path:
        return self.runs / "samples"

    def sample_dir(self, name: str, step: int | None = None) -> Path:
        return self.samples / name / f"step_{step if step is not None else 'final'}"

    @property
    def samples_manifest(self) -> Path:
        return self.samples / "manifest.csv"

    @property
    def metrics(self) -> Path:
        return self.runs / "metrics"

    @property
    def readout_model(self) -> Path:
        """The fitted texture readout (readout.fit_readout), keyed by the corpus cache it was fitted on."""
        return self.metrics / "texture_readout.npz"

    @property
    def listening(self) -> Path:
        return self.runs / "listening"

    @property
    def notebooks(self) -> Path:
        return self.runs / "notebooks"

    @property
    def timings(self) -> Path:
        return self.runs / "timings.json"

    @property
    def report(self) -> Path:
        return self.runs / "report.html"


def is_finished(run_dir: str | Path) -> bool:
    """A training run is finished when its folder holds done.json (written last, atomically)."""
    return (Path(run_dir) / DONE).exists()


def read_done(run_dir: str | Path) -> dict:
    """The summary in a finished run's done.json; FileNotFoundError naming the file otherwise."""
    path = Path(run_dir) / DONE
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a finished run (train it first)")
    return json.loads(path.read_text())


def finished_runs(run_dirs: list[str | Path]) -> list[Path]:
    """The finished ones of `run_dirs`, in order (the registry later stages read)."""
    return [Path(p) for p in run_dirs if is_finished(p)]
