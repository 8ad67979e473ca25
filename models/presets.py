"""Experiment presets exp1 ... exp6: the seed paper's five experiments, and exp5 with a temporal loss.

Seed paper ("Automatic Colorization of Videos", Sahay and Choudhary), experiments:
  1. classification on the quantized color space (QCS), Larsson et al.     -> exp1
  2. classification on QCS with class rebalancing, Zhang et al.            -> exp2
  3. the ensemble of 1 and 2                                               -> exp3
  4. transfer learning (from a pretrained colorizer) + rebalancing         -> exp4
  5. 4 + the ConvLSTM sequence model, L = lam L_cl + (1 - lam) L_seq      -> exp5
and, beyond the seed (issue 22), exp5 + the short-term temporal loss of Lai et al. 2018
(L = lam L_cl + (1 - lam) L_seq + w_t L_temp, `models.losses`)          -> exp6

`ExperimentConfig` holds the model's settings only (training-loop settings such as lr, epochs
and batch size live in `study.config.train.TrainConfig`). It is a frozen pydantic model of plain
values (`models.config.Config`), so it pickles cleanly to Ray workers and round-trips through JSON
(`to_dict` / `from_dict`). Every field is checked on construction (its type, its range or choices);
an error names the field, what is allowed and the value.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, get_args

from pydantic import BeforeValidator, Field, field_validator, model_validator

from models.config import Config, FieldError, Problem, as_tuple, field_names
from models.errors import VidcolorError
from models.gamut import (
    DEFAULT_GAMMA,
    DEFAULT_GRID,
    DEFAULT_SOFT_K,
    DEFAULT_SOFT_SIGMA,
    DEFAULT_TEMPERATURE,
    MAX_GRID,
    MAX_TEMPERATURE,
    MIN_GRID,
)

Size = Literal["tiny", "small", "base"]
Temporal = Literal["none", "convlstm"]
SIZES, TEMPORAL = get_args(Size), get_args(Temporal)
Members = Annotated[tuple[Annotated[str, Field(min_length=1)], ...], BeforeValidator(as_tuple)]


class ExperimentConfig(Config):
    """The model side of one experiment."""

    KIND: ClassVar[str] = "experiment setting"

    name: str = "exp2"
    """Preset name this config came from (kept through overrides; shown in tables)."""
    size: Size = "tiny"
    """Colorizer width: tiny (1/8 of the paper's channels), small (1/2), base (the paper's, ~32M parameters)."""
    grid: int = Field(DEFAULT_GRID, ge=MIN_GRID, le=MAX_GRID)
    """Spacing of the ab bins in ab units; 10 gives 309 in-gamut bins (models.gamut)."""
    rebalance: bool = True
    """Weight each pixel's L_cl by its true bin's rarity weight (Zhang et al.); False = plain soft CE."""
    gamma: float = Field(DEFAULT_GAMMA, gt=0.0, le=1.0)
    """Mix of the prior with the uniform distribution in the rebalancing weights, in (0, 1]."""
    temporal: Temporal = "none"
    """none (image-only colorizer) or convlstm (the seed's sequence model)."""
    seq_len: int = Field(1, ge=1, le=64)
    """S: the ConvLSTM's gradient reaches back S frames: a training window is a whole stored clip
    (`train_window`), its state carried through every frame as at inference, and backpropagation is
    truncated every S + 1 frames (`window`). Ignored when temporal is none."""
    lam: float = Field(1.0, ge=0.0, le=1.0)
    """lambda in L = lam L_cl + (1 - lam) L_seq, in [0, 1]; ignored (L = L_cl) without a temporal module."""
    soft_k: int = Field(DEFAULT_SOFT_K, ge=1, le=64)
    """Nearest bins in the soft encoding of the ground truth (paper 5; Zhang's released code 10)."""
    soft_sigma: float = Field(DEFAULT_SOFT_SIGMA, gt=0.0, le=100.0)
    """Width of the Gaussian of the soft encoding, ab units."""
    temporal_weight: float = Field(0.0, ge=0.0, le=1000.0)
    """w_t in L = lam L_cl + (1 - lam) L_seq + w_t L_temp, >= 0: L_temp is the short-term temporal
    loss of Lai et al. 2018 (`models.losses.temporal_loss`: mean |ab_t - warp(ab_t-1)| in ab units
    over the pixels the ground truth's flow matches); 0 = off (the loader then computes no flows).
    A model without a temporal module trains on windows of two frames when it is on."""
    temporal_long_term: bool = False
    """With temporal_weight > 0: add Lai et al.'s long-term term, every frame of the window against
    its first frame warped by their own flow (twice the loader's flow work)."""
    temperature: float = Field(DEFAULT_TEMPERATURE, ge=0.0, le=MAX_TEMPERATURE)
    """Annealed-mean temperature T used for decoding (0 = mode, 1 = mean)."""
    pretrained: str | None = Field(None, min_length=1)
    """Checkpoint folder whose colorizer trunk initializes this model (exp4 - exp6)."""
    ensemble: Members = ()
    """exp3: member preset names or checkpoint folders whose distributions are averaged; empty otherwise."""
    transfer: bool = False
    """Transfer learning: training needs `pretrained` set (exp4 - exp6); see `check_ready`."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError("must be a non-empty name of letters, digits, - and _")
        return name

    @field_validator("ensemble")
    @classmethod
    def _check_members(cls, ensemble: tuple[str, ...]) -> tuple[str, ...]:
        if len(ensemble) == 1:
            raise ValueError("needs at least two members (or none)")
        return ensemble

    @model_validator(mode="after")
    def _check_own_name(self) -> ExperimentConfig:
        if self.name in self.ensemble:
            raise Problem(("ensemble",), f"must not contain the config's own name {self.name!r}, got {self.ensemble!r}")
        return self

    # ---- derived -----------------------------------------------------------------------------

    @property
    def is_temporal(self) -> bool:
        return self.temporal != "none"

    @property
    def is_ensemble(self) -> bool:
        return bool(self.ensemble)

    @property
    def window(self) -> int:
        """seq_len + 1 with a temporal module (the frames of one truncated-backpropagation chunk;
        the shortest clip a shard set may have to train it), else 1."""
        return self.seq_len + 1 if self.is_temporal else 1

    def train_window(self, clip_len: int) -> int:
        """Frames per training window from clips of ``clip_len`` frames: the whole clip with a
        temporal module (its state carried through all of them as at inference); 2 without one when
        temporal_weight > 0 (L_temp needs a pair); else 1."""
        if self.is_temporal:
            return clip_len
        return 2 if self.temporal_weight > 0 else 1

    def check_ready(self) -> None:
        """Raise if the config cannot be trained as is (a transfer preset without `pretrained`)."""
        if self.transfer and self.pretrained is None:
            raise FieldError(
                ("pretrained",),
                f"{self.name} starts from a pretrained colorizer; give its checkpoint "
                "folder (--set pretrained=DIR, or `vidcolor experiments --pretrained DIR`)",
            )


FIELDS = field_names(ExperimentConfig)

# exp6's w_t, chosen on the real footage's validation clips by short runs from one exp2 start
# (0, 0.05, 0.15, 0.5): the largest that kept the colourfulness within about 0.9 of w_t = 0's
# (docs/training.md, "The temporal model and the temporal loss")
EXP6_TEMPORAL_WEIGHT = 0.05


PRESETS: dict[str, ExperimentConfig] = {
    "exp1": ExperimentConfig(name="exp1", rebalance=False),
    "exp2": ExperimentConfig(name="exp2", rebalance=True),
    "exp3": ExperimentConfig(name="exp3", ensemble=("exp1", "exp2")),
    "exp4": ExperimentConfig(name="exp4", rebalance=True, transfer=True),
    "exp5": ExperimentConfig(name="exp5", rebalance=True, transfer=True, temporal="convlstm", seq_len=6, lam=0.5),
    "exp6": ExperimentConfig(
        name="exp6",
        rebalance=True,
        transfer=True,
        temporal="convlstm",
        seq_len=6,
        lam=0.5,
        temporal_weight=EXP6_TEMPORAL_WEIGHT,
    ),
}


def get_preset(name: str) -> ExperimentConfig:
    """The preset config `exp1` ... `exp6`."""
    try:
        return PRESETS[name]
    except KeyError:
        raise VidcolorError(f"preset: unknown {name!r} (valid: {', '.join(PRESETS)})") from None
