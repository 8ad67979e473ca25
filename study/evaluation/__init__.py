"""Evaluation: per-video colorization metrics, `vidcolor evaluate` and the seed paper's experiments table."""
