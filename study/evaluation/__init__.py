"""Evaluation: per-video colorization metrics and `vidcolor evaluate` (also the training loop's
validation; the seed paper's experiments table is `study.experiments`)."""
