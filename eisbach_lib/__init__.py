"""eisbach_lib: the thin library behind the Eisbach reproduction bundle.

One module per part: `barrier` (the log-barrier and its control arms), `flow` (rectified flow,
timestep samplers, OT coupling), `sampling` (Euler, ping-pong, CFG), `models` (the DiT and its
adapters), `train` (the one training loop), `corpus`/`codec`/`text`/`datasets` (data),
`generate`, `metrics`, `stats`, `scorecard`, `listen`, `config`, `cli`.
"""

__version__ = "0.1.0"
