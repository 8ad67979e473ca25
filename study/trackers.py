"""Send a run to the experiment trackers researchers already use: ``--log tensorboard,mlflow,wandb``.

`TrackerRun` is one run (a `vidcolor train`, or one trial of a study) on every tracker named, each
through the tracker's own client:

- ``tensorboard``: event files under ``LOG_DIR/tensorboard/RUN`` (``torch.utils.tensorboard``),
  read by ``tensorboard --logdir LOG_DIR/tensorboard``: every metric as a scalar by epoch, the
  config as text, sample frames as images;
- ``mlflow``: a run named RUN in the experiment named after the study (or the run folder) at
  ``--mlflow-uri`` (default ``$MLFLOW_TRACKING_URI``, else a SQLite store
  ``LOG_DIR/mlflow.db`` with artifacts beside it: ``mlflow ui --backend-store-uri
  sqlite:///LOG_DIR/mlflow.db``): the config flattened into params, metrics by epoch, frames as
  images;
- ``wandb``: a run in the project of that name, **offline** (files under ``LOG_DIR/wandb``,
  ``wandb sync`` uploads them later) unless ``WANDB_API_KEY`` is set or ``WANDB_MODE`` says
  otherwise.

The trackers are optional packages (``pip install 'vidcolor[trackers]'``); naming one that is not
installed is an error before any work. A tracker that fails while logging is reported once and
turned off for that run: the training and the results store never depend on it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import VidcolorError

log = logging.getLogger(__name__)

#: tracker name -> the module its client needs
TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def parse_trackers(text: str | None) -> tuple[str, ...]:
    """``"tensorboard,mlflow"`` -> ``("tensorboard", "mlflow")``; an unknown or missing tracker is
    a VidcolorError naming it."""
    if not text:
        return ()
    import importlib.util

    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    for name in names:
        if name not in TRACKERS:
            raise VidcolorError(f"--log: unknown tracker {name!r}; one or more of {', '.join(TRACKERS)}")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise VidcolorError(
                f"--log {name}: the {TRACKERS[name]} package is not installed (pip install 'vidcolor[trackers]')"
            )
    return names


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"a.b": value}; lists and other values as JSON text."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (str, int, float, bool)) or value is None:
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers among ``metrics`` (bools and strings left out)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            continue
        if math.isfinite(float(value)):
            out[key] = float(value)
    return out


class TrackerRun:
    """One run on each of ``trackers``: ``log(metrics, step)``, ``log_images({name: uint8 HxWx3},
    step)``, ``close(failed=False)``. ``project`` groups runs (the study), ``name`` is this run."""

    def __init__(
        self,
        trackers: tuple[str, ...],
        log_dir: str | os.PathLike,
        project: str,
        name: str,
        config: Mapping[str, Any],
        mlflow_uri: str | None = None,
    ):
        self.log_dir, self.project, self.name = Path(log_dir), project, name
        self._last_step = -1
        self._clients: dict[str, Any] = {}
        self.failed: list[str] = []  # trackers that could not start this run
        flat = flatten(config)
        for tracker in trackers:
            try:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                self._clients[tracker] = getattr(self, f"_open_{tracker}")(flat, mlflow_uri)
            except Exception as exc:  # a tracker never stops the training
                log.warning("--log %s: cannot start run %s (%s); going on without it", tracker, name, exc)
                self.failed.append(tracker)

    @property
    def trackers(self) -> tuple[str, ...]:
        return tuple(self._clients)

    # -- opening -------------------------------------------------------------------------------

    def _open_tensorboard(self, flat: dict, _uri):
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(self.log_dir / "tensorboard" / self.name))
        table = "\n".join(f"| {k} | {v} |" for k, v in flat.items())
        writer.add_text("config", "| key | value |\n|---|---|\n" + table, 0)
        return writer

    def _open_mlflow(self, flat: dict, uri: str | None):
        from mlflow import MlflowClient
        from mlflow.entities import Param

        uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(self.log_dir / 'mlflow.db').resolve()}"
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(self.project)
        if experiment is None:
            # beside a local SQLite store its artifacts go into LOG_DIR too; a server chooses its own
            artifacts = (self.log_dir / "mlartifacts").resolve().as_uri() if uri.startswith("sqlite:") else None
            experiment_id = client.create_experiment(self.project, artifact_location=artifacts)
        else:
            experiment_id = experiment.experiment_id
        run = client.create_run(experiment_id, run_name=self.name)
        params = [Param(k[:250], str(v)[:6000]) for k, v in flat.items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(run.info.run_id, params=params[i : i + 100])
        return client, run.info.run_id

    def _open_wandb(self, flat: dict, _uri):
        import wandb

        online = bool(os.environ.get("WANDB_API_KEY")) or os.environ.get("WANDB_MODE") == "online"
        mode = os.environ.get("WANDB_MODE") or ("online" if online else "offline")
        return wandb.init(
            project=self.project,
            name=self.name,
            config=flat,
            dir=str(self.log_dir),
            mode=mode,
            reinit="create_new",
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        )

    # -- logging -------------------------------------------------------------------------------

    def _each(self, what: str, fn) -> None:
        for tracker, client in list(self._clients.items()):
            try:
                fn(tracker, client)
            except Exception as exc:  # a tracker never stops the training
                log.warning("--log %s: %s of run %s failed (%s); no more logging to it", tracker, what, self.name, exc)
                self._close_one(tracker, client, failed=True)
                del self._clients[tracker]

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """The finite numbers of ``metrics`` at ``step`` (an epoch)."""
        values = numeric(metrics)
        step = int(step)
        if not values or step <= self._last_step:  # a retried or resumed epoch is logged once
            return
        self._last_step = step

        def one(tracker: str, client) -> None:
            if tracker == "tensorboard":
                for key, value in values.items():
                    client.add_scalar(key, value, step)
            elif tracker == "mlflow":
                from mlflow.entities import Metric

                mlflow_client, run_id = client
                now = int(time.time() * 1000)
                mlflow_client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])
            else:
                client.log(values, step=step)

        self._each("metrics", one)

    def log_images(self, images: Mapping[str, np.ndarray], step: int | None = None) -> None:
        """uint8 RGB frames (H, W, 3) by name, at ``step`` (default: the last metrics' step)."""
        if not images:
            return
        step = self._last_step if step is None else int(step)
        step = max(step, 0)

        def one(tracker: str, client) -> None:
            if tracker == "tensorboard":
                for key, frame in images.items():
                    client.add_image(key, frame, step, dataformats="HWC")
            elif tracker == "mlflow":
                mlflow_client, run_id = client
                for key, frame in images.items():
                    mlflow_client.log_image(run_id, frame, key=key.replace("/", "_"), step=step)
            else:
                import wandb

                client.log({key: wandb.Image(frame) for key, frame in images.items()}, step=step)

        self._each("images", one)

    def close(self, failed: bool = False) -> None:
        for tracker, client in self._clients.items():
            self._close_one(tracker, client, failed)
        self._clients = {}

    @staticmethod
    def _close_one(tracker: str, client, failed: bool) -> None:
        try:
            if tracker == "tensorboard":
                client.close()
            elif tracker == "mlflow":
                mlflow_client, run_id = client
                mlflow_client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
            else:
                client.finish(exit_code=1 if failed else 0)
        except Exception as exc:  # a tracker never stops the training
            log.warning("--log %s: closing the run failed (%s)", tracker, exc)


def frames_of(paths: Mapping[str, str | os.PathLike]) -> dict[str, np.ndarray]:
    """PNG files by name -> uint8 RGB arrays (files that cannot be read are left out, logged)."""
    from PIL import Image

    out = {}
    for key, path in paths.items():
        try:
            with Image.open(path) as im:
                out[key] = np.asarray(im.convert("RGB"))
        except OSError as exc:
            log.warning("--log: sample frame %s cannot be read (%s)", path, exc)
    return out


@dataclass(frozen=True)
class TrackerOptions:
    """What ``--log``, ``--log-dir`` and ``--mlflow-uri`` asked for."""

    trackers: tuple[str, ...]
    log_dir: str
    mlflow_uri: str | None = None

    def run(self, project: str, name: str, config: Mapping[str, Any], skip: set[str] | None = None) -> TrackerRun:
        """A run on these trackers, less ``skip`` (those that already failed to start in this study)."""
        trackers = tuple(t for t in self.trackers if t not in (skip or set()))
        return TrackerRun(trackers, self.log_dir, project, name, config, mlflow_uri=self.mlflow_uri)


def tracker_options(args, default_dir: str | os.PathLike) -> TrackerOptions | None:
    """The options of a command's ``--log`` flags (None without ``--log``); checked before any work."""
    trackers = parse_trackers(getattr(args, "log", None))
    if not trackers:
        return None
    log_dir = Path(getattr(args, "log_dir", None) or default_dir).resolve()
    if log_dir.exists() and not log_dir.is_dir():
        raise VidcolorError(f"--log-dir {log_dir}: exists and is not a folder")
    # made when the first run starts (OUT/logs must not exist before `train` checks OUT); a place that
    # cannot be written is an error now, before any work
    existing = next(p for p in (log_dir, *log_dir.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise VidcolorError(f"--log-dir {log_dir}: cannot be written ({existing} is not a writable folder)")
    return TrackerOptions(trackers, str(log_dir), getattr(args, "mlflow_uri", None))


#: Sample frames a run sends: this many predicted frames of its first clip, and the ground truth's.
SAMPLE_FRAMES = 4


def sample_images(media: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """From a run's sample media (rows with media_type, path, video_id, clip, frame): up to
    `SAMPLE_FRAMES` colorized frames of its first clip and the ground truth's, by name."""
    stills = [m for m in media if m.get("media_type") in ("pred_png", "gt_png") and m.get("frame") is not None]
    if not stills:
        return {}
    first = min((str(m["video_id"]), int(m["clip"])) for m in stills)
    chosen = sorted(
        (m for m in stills if (str(m["video_id"]), int(m["clip"])) == first), key=lambda m: float(m["frame"])
    )
    frames = sorted({int(m["frame"]) for m in chosen})[:SAMPLE_FRAMES]
    paths = {}
    for m in chosen:
        if int(m["frame"]) in frames:
            role = "colorized" if m["media_type"] == "pred_png" else "ground_truth"
            paths[f"{role}/{first[0]}_c{first[1]}_f{int(m['frame']):03d}"] = m["path"]
    return frames_of(paths)
