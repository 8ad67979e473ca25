"""Trial: one trial (the best one unless another was chosen): a frame viewer (gray / prediction /
ground truth with a frame slider, and an epoch slider when the trial rendered frames while it
trained) first, its metrics, its playable sample videos, and its
configuration in a collapsed expander at the end."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data, viewer

url, name, info, trials = data.page_trials("Trial")
ids = list(trials["trial_id"])
wanted = st.query_params.get("trial") or st.session_state.get("trial")
if "trial_select" not in st.session_state or st.session_state["trial_select"] not in ids:
    # unless a trial was asked for (?trial=, or picked on the Trials page): the study's best one
    scored = trials.dropna(subset=["objective"]).sort_values("objective", ascending=info.get("mode", "min") == "min")
    best = scored["trial_id"].iloc[0] if len(scored) else ids[0]
    st.session_state["trial_select"] = wanted if wanted in ids else best
tid = st.selectbox("Trial", ids, key="trial_select")
st.session_state["trial"] = tid
row = trials.set_index("trial_id").loc[tid]

c = st.columns(4)
c[0].metric("Experiment", row["experiment"] or "–")
c[1].metric("Status", row["status"])
c[2].metric("Epochs", int(row["epochs"]))
c[3].metric("Objective (best)", "–" if pd.isna(row["objective"]) else f"{row['objective']:.4g}")
if row["status"] == "ERROR" and isinstance(row["error"], str):
    st.error(f"Trial failed: {row['error']}")

st.subheader("Frame viewer")
media = data.media(url, name, tid)
during = data.media(url, name, tid, epochs=True)
clips = sorted(set(viewer.clips_of(media)) | set(viewer.clips_of(during)), key=lambda k: (k[0], k[1] or -1))
key = st.selectbox("Clip", clips, format_func=viewer.clip_label, key="trial_clip") if clips else None
if key is None:
    st.info("This trial has no rendered sample media.")
else:
    # the epochs it rendered while training (a spec's media_every), then the best checkpoint's
    steps = [*viewer.epochs_of(during, key), *([None] if key in viewer.clips_of(media) else [])]
    epoch = (
        st.select_slider("Epoch", steps, value=steps[-1], format_func=viewer.epoch_label, key="trial_epoch")
        if len(steps) > 1
        else steps[0]
    )
    frames, _ = viewer.frames_at(media, during, key, epoch)
    n = min((len(v) for v in frames.values()), default=0)
    if n:
        idx = st.slider("Frame", 0, n - 1, 0, key="trial_frame") if n > 1 else 0
        cols = st.columns(len(frames))
        for col, (role, fr) in zip(cols, frames.items()):
            caption = f"{viewer.LABELS[role]} · frame {idx}" + (f" · epoch {epoch}" if role == "pred" and epoch else "")
            col.image(viewer.sharp(fr[idx]), caption=caption, width="stretch", output_format="PNG")

st.subheader("Metrics")
metrics = data.headline_first(
    sorted({c.split("_", 1)[1] for c in data.metrics_of(trials) + data.metrics_of(trials, "last_")})
)
table = pd.DataFrame(
    {"best": [row.get(f"best_{m}") for m in metrics], "last": [row.get(f"last_{m}") for m in metrics]},
    index=metrics,
)
table = table.dropna(how="all")
st.dataframe(table, width="stretch", height=min(36 * (len(table) + 1) + 4, 720))
if row["checkpoint"]:
    st.caption(f"Checkpoint: `{row['checkpoint']}` (best epoch {row['best_epoch']:.0f})")

videos = viewer.clip_videos(media, key) if key is not None else {}
if videos:
    st.subheader("Videos")
    cols = st.columns(len(videos))
    for col, (role, path) in zip(cols, videos.items()):
        col.caption(viewer.LABELS[role])
        blob = data.file_bytes(path)
        if blob is None:
            col.warning(f"missing file {path}")
        else:
            col.video(blob, format="video/mp4", loop=True, muted=True)

with st.expander("Configuration", expanded=False):
    st.json(row["config"], expanded=True)
