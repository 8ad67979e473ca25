"""Hyperparameter studies on Ray Tune + Optuna + ASHA: `runner` (`run_study`), `human` (its
`[human]` rounds), `sampler` (the Optuna sampler of both), `objectives` (the searcher and ASHA of
a study's objectives), `search` (a multi-objective study's searcher), `trial` (the per-trial
driver), `callbacks` (results store, live table), `command` (`vidcolor tune`), `front` (the
Pareto front as text), `study_report` (`vidcolor report`, and its self-contained HTML file)."""
