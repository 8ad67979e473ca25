"""One training run on Ray Train: `loop` (the worker function), `run_state` (a worker's setup and
resume), `ranks` (rank, device, collectives), `optim_state` (optimizer state without pickle),
`launch` (the TorchTrainer, `run_training`), `command` (`vidcolor train`), `import_weights`
(`vidcolor import-eccv16`)."""
