"""Hyperparameter studies on Ray Tune + Optuna + ASHA: `runner` (`run_study`), `trial` (the per-trial driver), `callbacks` (results store, live table), `command` (`vidcolor tune`)."""
