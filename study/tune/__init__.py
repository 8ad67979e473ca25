"""Hyperparameter studies on Ray Tune + Optuna + ASHA: `runner` (`run_study`), `human` (its
`[human]` rounds), `sampler` (the Optuna sampler of both), `trial` (the per-trial driver),
`callbacks` (results store, live table), `command` (`vidcolor tune`)."""
