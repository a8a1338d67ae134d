"""Where a profile's files live: one place owns every path under `runs_dir` and `figures_dir`, and
the name of every file one stage writes and another reads.

    <runs_dir>/
      corpus/            manifest.csv, corpus.json, audio/ (WAVs), midi/ (chamber source); skipped.csv
                         (musiccaps and folder sources: bad rows and why)        (eisbach corpus);
                         flatness.csv (notebook 00)
      cache/<key>/       pre-encoded latents and tokens, manifest.csv, meta.json (eisbach corpus)
      base/              the pretrained embedded DiT, a training run's folder    (eisbach pretrain)
      adapters/<adapter>_<arm>_s<seed>/   run.json, ckpt_*, log/, log_*.parquet, done.json   (eisbach train);
                         adapters/grid.csv (eisbach grid)
      anatomy/           ANATOMY_TABLES: barrier anatomy and training dynamics CSVs (eisbach anatomy,
                         eisbach dynamics); constant_weight.json (the constant arm's cached weight)
      prompts.csv        the evaluation prompts (held-out reference captions, unconditional rows, the card's)
      samples/<name>/step_<n|final>/  latents.npy + manifest.csv (+ codec.json, or the WAVs);
                         samples/manifest.csv (eisbach generate)
      metrics/           METRICS_TABLES (clips.parquet, runs.csv, ...), vendi_bandwidth.json,
                         arm_summary.csv, paired_differences.csv (eisbach evaluate); texture_readout.npz
                         (the fitted texture classifier, readout.fit_readout)
      listening/         the listening-study kit: study.json, study.html, anchors/, votes.csv
      notebooks/         the executed notebooks                       (eisbach reproduce)
      timings.json       each notebook's run time in seconds          (eisbach reproduce)
      report.html        one page of the executed series              (eisbach reproduce, report)
      pilot/             `eisbach pilot`: a profile of its own (runs_dir <runs_dir>/pilot, its
                         figures in pilot/figures) whose corpus/, cache/ and base/ link to the
                         profile's; pilot.csv, clips.parquet, plan_inputs.json, timings.json
    <figures_dir>/       figures, scorecard.csv and scorecard.md (default <runs_dir>/figures)

File names are constants here (a folder's own files, e.g. MANIFEST, whoever holds the folder) or
Layout properties and methods (a profile's files); no other module of eisbach_lib spells a .csv,
.parquet, .npy, .npz or .json file name (tests/test_layout.py checks it; allowed: a short list of
inputs from outside, each with its reason, and the model directories' own JSON files). The
evaluation tables the scorecard reads are one object, `tables.Tables`, one field per file of
METRICS_TABLES.

A run is finished when its folder holds done.json (`is_finished`); `finished_runs` is the registry
the later stages read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Profile

# --------------------------------------------------------------------------------------------
# a folder's own files (the same name wherever the folder is)

MANIFEST = "manifest.csv"        # one row per clip: corpus/, cache/<key>/, samples/, samples/<name>/step_*/
CORPUS_PARAMS = "corpus.json"    # corpus/: the parameters its audio was rendered (or read) with
SKIPPED = "skipped.csv"          # corpus/ of the musiccaps and folder sources: rows left out, with the reason
FLATNESS = "flatness.csv"        # corpus/: id, split, texture, flatness (anatomy.corpus_flatness)
CACHE_META = "meta.json"         # cache/<key>/: the config parts that produced the cache
RUN_META = "run.json"            # a training run's folder (adapters/<run>/, base/): its settings
DONE = "done.json"               # a training run's folder: its summary, written last (the run is finished)
LOG_DIR = "log"                  # a training run's folder: the log chunks written at each checkpoint
LOG_CHUNK = re.compile(r"(samples|steps)_(\d+)\.parquet")  # the chunks' names (`log_chunk`)
LATENTS_FILE = "latents.npy"     # a sample folder: float32 [N, C, T], row i = manifest row with latent_row i
CODEC_FILE = "codec.json"        # a sample folder on the log-mel path: the codec to decode a clip on demand with
STUDY = "study.json"             # listening/: the study (trials, questions, settings)
STUDY_PAGE = "study.html"        # listening/: the offline page for the raters
VOTES = "votes.csv"              # listening/: the imported votes
SCORECARD_CSV = "scorecard.csv"  # the figures folder: the claims scorecard
SCORECARD_MD = "scorecard.md"


def log_file(which: str) -> str:
    """The whole-run training log of a finished run: log_samples.parquet or log_steps.parquet."""
    return f"log_{which}.parquet"


def log_chunk(which: str, step: int) -> str:
    """One log chunk under LOG_DIR: samples_000020.parquet (matches LOG_CHUNK)."""
    return f"{which}_{int(step):06d}.parquet"


def log_chunk_glob(which: str = "*") -> str:
    """The glob of the log chunks of `which` (samples, steps; default both) under LOG_DIR."""
    return f"{which}_*.parquet"


# --------------------------------------------------------------------------------------------
# the tables the scorecard reads

#: <runs_dir>/anatomy/<name>.csv, each with the `eisbach` command that writes it
ANATOMY_TABLES = {
    "entropy_vs_t": "anatomy",                # C4 (anatomy.barrier_anatomy)
    "weights_by_clip": "anatomy",             # C2
    "grad_cosines": "anatomy",                # C1 sanity row
    "update_cosines": "anatomy",              # C1
    "gradient_mass": "dynamics",              # C3 (anatomy.training_dynamics)
    "weight_mix": "dynamics",                 # M3
    "entropy_vs_t_checkpoints": "dynamics",   # C4 over training
    "output_distances": "dynamics",           # M2
}
#: <runs_dir>/metrics/: a `tables.Tables` field -> its file (evaluate.write_metrics writes them)
METRICS_TABLES = {
    "clips": "clips.parquet",                      # one row per generated clip
    "reference": "reference_roundtrip.parquet",    # the reference split read through the codec
    "raw": "reference.parquet",                    # the reference split as rendered
    "intra": "intra.csv",                          # intra-prompt Vendi per run, step, prompt
    "runs": "runs.csv",                            # inter-prompt Vendi, FD, KID per run and step
    "ceiling": "ceiling.csv",                      # what the metrics read without a model
    "structure": "structure_validation.csv",       # the structural metrics' bar-shuffle validation
    "readout": "readout_validation.csv",           # the texture readout's validation
}
VENDI_BANDWIDTH = "vendi_bandwidth.json"  # metrics/: the Vendi kernel bandwidth fixed from the reference
ARM_SUMMARY = "arm_summary.csv"           # metrics/: evaluate.arm_means
PAIRED_DIFFERENCES = "paired_differences.csv"  # metrics/: evaluate.differences_to_none
READOUT_MODEL = "texture_readout.npz"     # metrics/: the fitted texture readout


@dataclass(frozen=True)
class Layout:
    """The paths of one profile (`Layout.of(cfg)`); every module asks here instead of joining paths."""

    runs: Path
    figures: Path

    @classmethod
    def of(cls, cfg: Profile) -> "Layout":
        """The layout of a loaded profile; without `figures_dir`, figures go to <runs_dir>/figures."""
        runs = Path(cfg.runs_dir)
        return cls(runs, Path(cfg.figures_dir))

    @property
    def corpus(self) -> Path:
        return self.runs / "corpus"

    @property
    def corpus_manifest(self) -> Path:
        return self.corpus / MANIFEST

    @property
    def corpus_flatness(self) -> Path:
        return self.corpus / FLATNESS

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
    def grid(self) -> Path:
        """adapters/grid.csv: one row per run of the grid with its done.json summary (runs.grid_status)."""
        return self.adapters / "grid.csv"

    @property
    def anatomy(self) -> Path:
        return self.runs / "anatomy"

    def anatomy_table(self, name: str) -> Path:
        """<runs_dir>/anatomy/<name>.csv for a name of ANATOMY_TABLES (given with or without .csv)."""
        stem = name[:-4] if name.endswith(".csv") else name
        if stem not in ANATOMY_TABLES:
            raise KeyError(f"{name!r} is not an anatomy table; they are {', '.join(ANATOMY_TABLES)}")
        return self.anatomy / f"{stem}.csv"

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
        return self.samples / MANIFEST

    @property
    def metrics(self) -> Path:
        return self.runs / "metrics"

    def metrics_table(self, name: str) -> Path:
        """<runs_dir>/metrics/<file> of a `tables.Tables` field name (METRICS_TABLES)."""
        if name not in METRICS_TABLES:
            raise KeyError(f"{name!r} is not a metrics table; they are {', '.join(METRICS_TABLES)}")
        return self.metrics / METRICS_TABLES[name]

    @property
    def vendi_bandwidth(self) -> Path:
        return self.metrics / VENDI_BANDWIDTH

    @property
    def arm_summary(self) -> Path:
        return self.metrics / ARM_SUMMARY

    @property
    def paired_differences(self) -> Path:
        return self.metrics / PAIRED_DIFFERENCES

    @property
    def readout_model(self) -> Path:
        """The fitted texture readout (readout.fit_readout), keyed by the corpus cache it was fitted on."""
        return self.metrics / READOUT_MODEL

    @property
    def listening(self) -> Path:
        return self.runs / "listening"

    @property
    def study(self) -> Path:
        return self.listening / STUDY

    @property
    def study_page(self) -> Path:
        return self.listening / STUDY_PAGE

    @property
    def votes(self) -> Path:
        return self.listening / VOTES

    @property
    def notebooks(self) -> Path:
        return self.runs / "notebooks"

    @property
    def timings(self) -> Path:
        return self.runs / "timings.json"

    @property
    def report(self) -> Path:
        return self.runs / "report.html"

    @property
    def scorecard_csv(self) -> Path:
        return self.figures / SCORECARD_CSV

    @property
    def scorecard_md(self) -> Path:
        return self.figures / SCORECARD_MD

    @property
    def pilot(self) -> Path:
        """<runs_dir>/pilot: the pilot's own runs folder (`pilot.pilot_config`)."""
        return self.runs / "pilot"

    @property
    def pilot_table(self) -> Path:
        """pilot/pilot.csv: the dose-response, one row per comparison × prompt set."""
        return self.pilot / "pilot.csv"

    @property
    def pilot_clips(self) -> Path:
        """pilot/clips.parquet: every pilot clip with its texture readout."""
        return self.pilot / "clips.parquet"

    @property
    def plan_inputs(self) -> Path:
        """pilot/plan_inputs.json: variance components and stage costs (`eisbach plan` reads it)."""
        return self.pilot / "plan_inputs.json"

    @property
    def pilot_timings(self) -> Path:
        """pilot/timings.json: the pilot's measured stage times (the pilot profile's own `timings`)."""
        return self.pilot / "timings.json"


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
