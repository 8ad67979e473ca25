"""Colorizing black-and-white films with a trained checkpoint: `inference` (the model on a film's
frames), `pipeline` (decode, colorize, encode, overlapped), `command` (`vidcolor colorize`)."""
