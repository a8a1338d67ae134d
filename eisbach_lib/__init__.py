"""eisbach_lib: the thin library behind the Eisbach reproduction bundle.

One module per part: `barrier` (the log-barrier and its control arms), `flow` (rectified flow,
timestep samplers, OT coupling), `sampling` (Euler, ping-pong), `models` (the DiT and its
adapters), `train` (the one training loop), `device` (where a process computes), `runs` (the run
registry: the grid, checkpoints, logs, a run's model), `probes` (weights by clip, the constant
arm's weight), `corpus`/`codec`/`text`/`datasets`/`cache` (data), `generate` (the generation grid,
with CFG), `anatomy` (C1–C4 inputs), `metrics`/`validation`/`evaluate` (metrics), `tables` (the
evaluation tables evaluate hands the scorecard), `stats`, `scorecard`, `listen`/`study` (listening;
the study's parts in `study_design`, `study_kit`, `study_votes`, `study_widget`), `config`
(profiles), `layout`/`files` (paths and the names of the files stages hand each other, atomic
writes), `report`, `cli`. They import each other in layers, without a cycle (tests/test_imports.py).
The design they implement: docs/design.md.
"""

__version__ = "0.1.0"
