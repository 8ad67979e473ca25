"""The Color Turing Test: items made from trials, the files raters see, and the results.

The test follows Zhang et al. 2016 (two-alternative forced choice: real vs colorized, side by
side), with attention checks (the real clip against an obviously wrong recoloring) and an optional
1-5 naturalness rating. Modules: `build` makes the items (`vidcolor ctt build`), `clips` writes
their media files, `export` reports the results (`vidcolor ctt export`), `stats` holds the
statistics the dashboard also uses (no torch, no Ray), `agreement` and `trust` how far the votes can
be trusted (inter-rater agreement, position bias, rater quality, Crowd-BT; docs/ctt-analysis.md).
"""
