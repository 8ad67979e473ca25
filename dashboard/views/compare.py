"""Compare: 2 to 4 trials on the same clip, frame by frame and as videos, with their metrics."""

from __future__ import annotations

import streamlit as st

from dashboard import data, viewer

url, name, info, trials = data.page_trials("Compare trials")
media = data.media(url, name)
with_media = [t for t in trials["trial_id"] if t in set(media["trial_id"])]
if len(with_media) < 2:
    st.info("Comparing needs at least two trials with rendered sample media.")
    st.stop()
if "compare_trials" not in st.session_state:
    chosen = [t for t in st.session_state.get("chosen_trials", []) if t in with_media][:4]
    if len(chosen) < 2:
        order = trials[trials["trial_id"].isin(with_media)].sort_values(
            "objective", ascending=info.get("mode", "min") == "min"
        )
        chosen = list(order["trial_id"].head(3))
    st.session_state["compare_trials"] = chosen
sel = st.multiselect("Trials (2 to 4)", with_media, key="compare_trials", max_selections=4)
if len(sel) < 2:
    st.info("Choose at least two trials.")
    st.stop()
per_trial = {t: media[media["trial_id"] == t] for t in sel}
common = set(viewer.clips_of(per_trial[sel[0]]))
for t in sel[1:]:
    common &= set(viewer.clips_of(per_trial[t]))
if not common:
    st.warning("These trials share no rendered clip.")
    st.stop()
key = st.selectbox("Clip", sorted(common, key=lambda k: (k[0], k[1] or -1)), format_func=viewer.clip_label)

rows = trials.set_index("trial_id").loc[sel]
metric_cols = data.headline_first(data.metrics_of(rows))
obj_col = data.objective_column(rows, info)  # `objective` is a copy of best_<objective metric>
table = rows[["experiment", *dict.fromkeys([obj_col, *metric_cols])]].T
st.dataframe(table.map(lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)), width="stretch")

frames = {t: viewer.clip_frames(per_trial[t], key) for t in sel}
n = min((len(v) for f in frames.values() for v in f.values()), default=0)
idx = st.slider("Frame", 0, n - 1, 0, key="compare_frame") if n > 1 else 0
first = frames[sel[0]]
cols = st.columns(len(sel) + 2)
if "gray" in first:
    cols[0].image(viewer.sharp(first["gray"][idx]), caption="Gray input", width="stretch", output_format="PNG")
for col, t in zip(cols[1:], sel):
    if "pred" in frames[t]:
        col.image(
            viewer.sharp(frames[t]["pred"][idx]),
            caption=f"{t} ({rows.loc[t, 'experiment']})",
            width="stretch",
            output_format="PNG",
        )
if "gt" in first:
    cols[-1].image(viewer.sharp(first["gt"][idx]), caption="Ground truth", width="stretch", output_format="PNG")

with st.expander("Videos", expanded=False):
    vcols = st.columns(len(sel))
    for col, t in zip(vcols, sel):
        path = viewer.clip_videos(per_trial[t], key).get("pred")
        blob = data.file_bytes(path) if path else None
        col.caption(t)
        if blob:
            col.video(blob, format="video/mp4", loop=True, muted=True)
