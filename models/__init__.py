"""The colorization models: color space and ab bins (color, gamut), the ECCV16-style colorizer,
the ConvLSTM (temporal), the video model and factory (model), losses, the exp1-exp5 presets,
ensembles, checkpoints, the import of the official ECCV16 weights, optical flow between gray
frames (flow) and the `--stabilize` temporal filter (stabilize). No Ray, no shard formats."""

#: `--stabilize`'s default strength (`models.stabilize.DEFAULT_STRENGTH`), defined here so that the
#: CLI's parser can offer it without importing torch. Chosen on the real validation clips: the
#: lowest RMSE of a tiny exp5 among 0.3 ... 0.9 (docs/colorize.md).
DEFAULT_STABILIZE_STRENGTH = 0.7
