"""Configuration: ``train`` (TrainConfig, the training loop's settings), ``settings`` (``--set``
parsing and routing of ``key=value`` settings to TrainConfig or ExperimentConfig) and ``spec``
(the TOML study spec). Import from those modules; this package exports nothing itself."""
