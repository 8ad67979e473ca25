"""The colorization models: color space and ab bins (color, gamut), the ECCV16-style colorizer,
the ConvLSTM (temporal), the video model and factory (model), losses, the exp1-exp5 presets,
ensembles, checkpoints and the import of the official ECCV16 weights. No Ray, no shard formats."""
