"""Known-answer validation of the structural metrics against bar-shuffles, per clip length.

    python benchmarks/validate_structure.py [--tunes 24] [--shuffles 8] [--seconds 6 8 10 12 16 20]
        [--seed 0] [--out benchmarks/results/structure_validation.md]

Runs `eisbach_lib.validation.structure_validation` on `--tunes` bar-aligned tunes rendered from
the chamber corpus's candidate pieces (see eisbach_lib/validation.py) and writes the win-rate table
(tune beats its own bar-shuffle, ties ½; valid at ≥ 0.8) as markdown, with the run time.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eisbach_lib import validation as V  # noqa: E402


def markdown(df) -> str:
    """A pipe table (floats to 3 significant digits) without the optional tabulate package."""
    def cell(v) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tunes", type=int, default=24)
    ap.add_argument("--shuffles", type=int, default=8)
    ap.add_argument("--seconds", type=float, nargs="+", default=[6, 8, 10, 12, 16, 20])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sr", type=int, default=22050)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    table = V.structure_validation((args.seconds[0], args.sr), n_tunes=args.tunes, n_shuffles=args.shuffles,
                                   seconds=args.seconds, seed=args.seed, cache=None)
    wall = time.perf_counter() - t0
    cols = ["seconds", "metric", "direction", "n_tunes", "n_pairs", "win_rate", "ci_lo", "ci_hi", "tune_win_rate",
            "mean_tune", "mean_shuffle", "valid"]
    md = markdown(table[cols])
    print(md)
    print(f"wall {wall:.0f} s")
    if args.out:
        text = (f"## seed {args.seed}: {args.tunes} tunes x {args.shuffles} bar-shuffles, {args.sr} Hz\n\n"
                f"`python benchmarks/validate_structure.py --tunes {args.tunes} --shuffles {args.shuffles} "
                f"--seconds {' '.join(f'{s:g}' for s in args.seconds)} --seed {args.seed}` "
                f"({wall:.0f} s wall on a shared 2-core {platform.machine()} machine)\n\n{md}\n\n")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
