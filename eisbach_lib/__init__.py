"""eisbach_lib: the thin library behind the Eisbach reproduction bundle.

One module per part: `barrier` (the log-barrier and its control arms), `flow` (rectified flow,
timestep samplers, OT coupling), `sampling` (Euler, ping-pong), `models` (the DiT and its
adapters), `train` (the one training loop), `corpus`/`codec`/`text`/`datasets`/`cache` (data),
`generate` (the generation grid, with CFG), `anatomy` (C1–C4 inputs), `metrics`/`validation`/
`evaluate` (metrics), `stats`, `scorecard`, `listen`/`study` (listening), `config` (profiles),
`layout`/`files` (paths, atomic writes), `report`, `cli`. The design they implement:
docs/design.md.
"""

__version__ = "0.1.0"
