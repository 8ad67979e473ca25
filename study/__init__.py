"""vidcolor's study side: configs, the Ray Train loop, Ray Tune studies, evaluation, the results
store, media, the Color Turing Test, film colorization and the CLI."""
