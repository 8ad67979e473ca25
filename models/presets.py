"""Experiment presets exp1 ... exp5: the seed paper's five experiments as validated configs.

Seed paper ("Automatic Colorization of Videos", Sahay and Choudhary), experiments:
  1. classification on the quantized color space (QCS), Larsson et al.     -> exp1
  2. classification on QCS with class rebalancing, Zhang et al.            -> exp2
  3. the ensemble of 1 and 2                                               -> exp3
  4. transfer learning (from a pretrained colorizer) + rebalancing         -> exp4
  5. 4 + the ConvLSTM sequence model, L = lam L_cl + (1 - lam) L_seq      -> exp5

`ExperimentConfig` holds the model's settings only (training-loop settings such as lr, epochs
and batch size live in `study.config.train.TrainConfig`). It is a frozen dataclass of plain values,
so it pickles cleanly to Ray workers and round-trips through JSON (`to_dict` / `from_dict`). Every
field is checked on construction (types from the annotations by `models.fields.TypedConfig`, ranges
by `validate`); an error names the field and the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from models.errors import VidcolorError
from models.fields import TypedConfig, field_error, field_names
from models.gamut import (DEFAULT_GAMMA, DEFAULT_GRID, DEFAULT_SOFT_K, DEFAULT_SOFT_SIGMA,
                          DEFAULT_TEMPERATURE, MAX_GRID, MAX_TEMPERATURE, MIN_GRID)

SIZES = ("tiny", "small", "base")
TEMPORAL = ("none", "convlstm")


@dataclass(frozen=True)
class ExperimentConfig(TypedConfig):
    """The model side of one experiment."""

    KIND: ClassVar[str] = "experiment setting"

    name: str = "exp2"
    """Preset name this config came from (kept through overrides; shown in tables)."""
    size: str = "tiny"
    """Colorizer width: tiny (1/8 of the paper's channels), small (1/2), base (the paper's, ~32M parameters)."""
    grid: int = DEFAULT_GRID
    """Spacing of the ab bins in ab units; 10 gives 309 in-gamut bins (models.gamut)."""
    rebalance: bool = True
    """Weight each pixel's L_cl by its true bin's rarity weight (Zhang et al.); False = plain soft CE."""
    gamma: float = DEFAULT_GAMMA
    """Mix of the prior with the uniform distribution in the rebalancing weights, in (0, 1]."""
    temporal: str = "none"
    """none (image-only colorizer) or convlstm (the seed's sequence model)."""
    seq_len: int = 1
    """S: frames of context the ConvLSTM reads before the frame it colorizes; a training window
    holds S + 1 frames (`window`). Ignored when temporal is none."""
    lam: float = 1.0
    """lambda in L = lam L_cl + (1 - lam) L_seq, in [0, 1]; ignored (L = L_cl) without a temporal module."""
    soft_k: int = DEFAULT_SOFT_K
    """Nearest bins in the soft encoding of the ground truth (paper 5; Zhang's released code 10)."""
    soft_sigma: float = DEFAULT_SOFT_SIGMA
    """Width of the Gaussian of the soft encoding, ab units."""
    temperature: float = DEFAULT_TEMPERATURE
    """Annealed-mean temperature T used for decoding (0 = mode, 1 = mean)."""
    pretrained: str | None = None
    """Checkpoint folder whose colorizer trunk initializes this model (exp4, exp5)."""
    ensemble: tuple[str, ...] = ()
    """exp3: member preset names or checkpoint folders whose distributions are averaged; empty otherwise."""
    transfer: bool = False
    """Transfer learning: training needs `pretrained` set (exp4, exp5); see `check_ready`."""

    def validate(self) -> None:
        """Ranges and choices of the fields (their types are checked by TypedConfig)."""

        def check(ok: bool, name: str, why: str) -> None:
            if not ok:
                raise field_error(name, why, getattr(self, name))

        check(bool(self.name) and self.name.replace("-", "").replace("_", "").isalnum(), "name",
              "must be a non-empty name of letters, digits, - and _")
        check(self.size in SIZES, "size", f"must be one of {', '.join(SIZES)}")
        check(MIN_GRID <= self.grid <= MAX_GRID, "grid", f"must be in [{MIN_GRID}, {MAX_GRID}]")
        check(0.0 < self.gamma <= 1.0, "gamma", "must be in (0, 1]")
        check(self.temporal in TEMPORAL, "temporal", f"must be one of {', '.join(TEMPORAL)}")
        check(1 <= self.seq_len <= 64, "seq_len", "must be in [1, 64]")
        check(0.0 <= self.lam <= 1.0, "lam", "must be in [0, 1]")
        check(1 <= self.soft_k <= 64, "soft_k", "must be in [1, 64]")
        check(0.0 < self.soft_sigma <= 100.0, "soft_sigma", "must be in (0, 100]")
        check(0.0 <= self.temperature <= MAX_TEMPERATURE, "temperature", f"must be in [0, {MAX_TEMPERATURE:g}]")
        check(self.pretrained is None or bool(self.pretrained), "pretrained",
              "must be a checkpoint folder path or None")
        check(all(self.ensemble), "ensemble", "must be a list of preset names or checkpoint folders")
        check(len(self.ensemble) != 1, "ensemble", "needs at least two members (or none)")
        check(self.name not in self.ensemble, "ensemble", f"must not contain the config's own name {self.name!r}")

    # ---- derived -----------------------------------------------------------------------------

    @property
    def is_temporal(self) -> bool:
        return self.temporal != "none"

    @property
    def is_ensemble(self) -> bool:
        return bool(self.ensemble)

    @property
    def window(self) -> int:
        """Frames per training window: seq_len + 1 with a temporal module, else 1."""
        return self.seq_len + 1 if self.is_temporal else 1

    def check_ready(self) -> None:
        """Raise if the config cannot be trained as is (a transfer preset without `pretrained`)."""
        if self.transfer and self.pretrained is None:
            raise VidcolorError(
                f"pretrained: {self.name} starts from a pretrained colorizer; give its checkpoint folder "
                "(--set pretrained=DIR, or `vidcolor experiments --pretrained DIR`)")


FIELDS = field_names(ExperimentConfig)


PRESETS: dict[str, ExperimentConfig] = {
    "exp1": ExperimentConfig(name="exp1", rebalance=False),
    "exp2": ExperimentConfig(name="exp2", rebalance=True),
    "exp3": ExperimentConfig(name="exp3", ensemble=("exp1", "exp2")),
    "exp4": ExperimentConfig(name="exp4", rebalance=True, transfer=True),
    "exp5": ExperimentConfig(name="exp5", rebalance=True, transfer=True, temporal="convlstm", seq_len=6, lam=0.5),
}


def get_preset(name: str) -> ExperimentConfig:
    """The preset config `exp1` ... `exp5`."""
    try:
        return PRESETS[name]
    except KeyError:
        raise VidcolorError(f"preset: unknown {name!r} (valid: {', '.join(PRESETS)})") from None
