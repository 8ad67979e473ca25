"""Experiment presets exp1 ... exp5: the seed paper's five experiments as validated configs.

Seed paper ("Automatic Colorization of Videos", Sahay and Choudhary), experiments:
  1. classification on the quantized color space (QCS), Larsson et al.     -> exp1
  2. classification on QCS with class rebalancing, Zhang et al.            -> exp2
  3. the ensemble of 1 and 2                                               -> exp3
  4. transfer learning (from a pretrained colorizer) + rebalancing         -> exp4
  5. 4 + the ConvLSTM sequence model, L = lam L_cl + (1 - lam) L_seq      -> exp5

`ExperimentConfig` holds the model's settings only (training-loop settings such as lr, epochs
and batch size live in `study.spec.TrainConfig`). It is a frozen dataclass of plain values, so it
pickles cleanly to Ray workers and round-trips through JSON (`to_dict` / `from_dict`). Every
field is checked on construction; an error names the field and the value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from models.errors import VidcolorError
from models.gamut import (DEFAULT_GAMMA, DEFAULT_GRID, DEFAULT_SOFT_K, DEFAULT_SOFT_SIGMA,
                          DEFAULT_TEMPERATURE, MAX_GRID, MIN_GRID)

SIZES = ("tiny", "small", "base")
TEMPORAL = ("none", "convlstm")


@dataclass(frozen=True)
class ExperimentConfig:
    """The model side of one experiment."""

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

    def __post_init__(self) -> None:
        def bad(name: str, why: str):
            return VidcolorError(f"{name}: {why}, got {getattr(self, name)!r}")

        def set_(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = _KINDS[f.name]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                set_(f.name, float(value))
            elif kind is float and not isinstance(value, float):
                raise bad(f.name, "must be a number")
            elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise bad(f.name, "must be an integer")
            elif kind is bool and not isinstance(value, bool):
                raise bad(f.name, "must be true or false")
            elif kind is str and not isinstance(value, str):
                raise bad(f.name, "must be a string")
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise bad("name", "must be a non-empty name of letters, digits, - and _")
        if self.size not in SIZES:
            raise bad("size", f"must be one of {', '.join(SIZES)}")
        if not MIN_GRID <= self.grid <= MAX_GRID:
            raise bad("grid", f"must be in [{MIN_GRID}, {MAX_GRID}]")
        if not 0.0 < self.gamma <= 1.0:
            raise bad("gamma", "must be in (0, 1]")
        if self.temporal not in TEMPORAL:
            raise bad("temporal", f"must be one of {', '.join(TEMPORAL)}")
        if not 1 <= self.seq_len <= 64:
            raise bad("seq_len", "must be in [1, 64]")
        if not 0.0 <= self.lam <= 1.0:
            raise bad("lam", "must be in [0, 1]")
        if not 1 <= self.soft_k <= 64:
            raise bad("soft_k", "must be in [1, 64]")
        if not 0.0 < self.soft_sigma <= 100.0:
            raise bad("soft_sigma", "must be in (0, 100]")
        if not 0.0 <= self.temperature <= 10.0:
            raise bad("temperature", "must be in [0, 10]")
        if self.pretrained is not None and (not isinstance(self.pretrained, str) or not self.pretrained):
            raise bad("pretrained", "must be a checkpoint folder path or None")
        ens = self.ensemble
        if isinstance(ens, str):
            ens = tuple(p.strip() for p in ens.split(",") if p.strip())
        if not isinstance(ens, (tuple, list)) or not all(isinstance(m, str) and m for m in ens):
            raise bad("ensemble", "must be a list of preset names or checkpoint folders")
        set_("ensemble", tuple(ens))
        if len(self.ensemble) == 1:
            raise bad("ensemble", "needs at least two members (or none)")
        if self.name in self.ensemble:
            raise bad("ensemble", f"must not contain the config's own name {self.name!r}")

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

    # ---- copies and (de)serialization ----------------------------------------------------------

    def replace(self, **changes: Any) -> "ExperimentConfig":
        """A copy with some fields changed (validated); unknown names raise VidcolorError."""
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise VidcolorError(f"unknown experiment setting(s) {', '.join(unknown)} (valid: {', '.join(FIELDS)})")
        if isinstance(changes.get("ensemble"), list):
            changes["ensemble"] = tuple(changes["ensemble"])
        return dataclasses.replace(self, **changes)

    def with_overrides(self, overrides: Mapping[str, str]) -> tuple["ExperimentConfig", dict[str, str]]:
        """Apply `--set key=value` strings, coerced by field type; returns (config, unused).

        Keys that are not ExperimentConfig fields (e.g. lr, epochs: the training loop's) come back
        in `unused` for the caller to route or reject. "none" sets pretrained to None; ensemble
        takes a comma list.
        """
        changes: dict[str, Any] = {}
        unused: dict[str, str] = {}
        for key, text in overrides.items():
            if key not in _KINDS:
                unused[key] = text
                continue
            changes[key] = _coerce(key, str(text).strip())
        return (self.replace(**changes) if changes else self), unused

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ensemble"] = list(self.ensemble)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config") -> "ExperimentConfig":
        """Build from `to_dict` output (e.g. a checkpoint's config.json); `where` names the source in errors."""
        if not isinstance(data, Mapping):
            raise VidcolorError(f"{where}: expected an object of experiment settings, got {type(data).__name__}")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise VidcolorError(f"{where}: unknown experiment setting(s) {', '.join(unknown)}")
        try:
            return cls(**dict(data))
        except VidcolorError as exc:
            raise VidcolorError(f"{where}: {exc}") from None


FIELDS = tuple(f.name for f in dataclasses.fields(ExperimentConfig))
_KINDS: dict[str, type] = {"name": str, "size": str, "grid": int, "rebalance": bool, "gamma": float,
                           "temporal": str, "seq_len": int, "lam": float, "soft_k": int, "soft_sigma": float,
                           "temperature": float, "pretrained": object, "ensemble": tuple, "transfer": bool}
assert set(_KINDS) == set(FIELDS)


def _coerce(key: str, text: str) -> Any:
    kind = _KINDS[key]
    try:
        if kind is bool:
            low = text.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise VidcolorError(f"{key}: expected {kind.__name__}, got {text!r}") from None
    if key == "pretrained":
        return None if text.lower() in ("", "none", "null") else text
    if key == "ensemble":
        return tuple(p.strip() for p in text.split(",") if p.strip())
    return text


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
