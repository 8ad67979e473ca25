"""Compare: 2 to 4 trials on the same clip, with their hyperparameters and metrics: one frame of
each beside the gray input and the ground truth (zoom and pan together, a wipe between two
trials, error maps), the clips playing in step, and a filmstrip (`dashboard.compare_widgets`).
An epoch slider moves the frame and filmstrip panels through the frames the trials rendered while
they trained (a spec's media_every); the clips are the best checkpoints'."""

from __future__ import annotations

import streamlit as st

from dashboard import compare_widgets, data, viewer

url, name, info, trials = data.page_trials("Compare trials")
media = data.media(url, name)
during_all = data.media(url, name, epochs=True)
with_media = [t for t in trials["trial_id"] if t in set(media["trial_id"]) | set(during_all["trial_id"])]
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
during = {t: during_all[during_all["trial_id"] == t] for t in sel}
common = set(viewer.clips_of(per_trial[sel[0]])) | set(viewer.clips_of(during[sel[0]]))
for t in sel[1:]:
    common &= set(viewer.clips_of(per_trial[t])) | set(viewer.clips_of(during[t]))
if not common:
    st.warning("These trials share no rendered clip.")
    st.stop()
key = st.selectbox("Clip", sorted(common, key=lambda k: (k[0], k[1] or -1)), format_func=viewer.clip_label)

rows = trials.set_index("trial_id").loc[sel]
metric_cols = data.headline_first(data.metrics_of(rows))
obj_col = data.objective_column(rows, info)  # `objective` is a copy of best_<objective metric>
table = rows[["experiment", *data.params_of(rows), *dict.fromkeys([obj_col, *metric_cols])]].T
table.index = [c.removeprefix("param_") for c in table.index]  # hyperparameters first, then metrics
st.dataframe(  # tall enough for the hyperparameters and the objective and headline metrics after them
    table.map(lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)),
    width="stretch",
    height=min(36 * (len(table) + 1) + 4, 36 * 13 + 4),
)


# one epoch for every panel: the frames the trials rendered while training (a spec's
# media_every; a trial stopped earlier shows its last), or their best checkpoints' at the end
steps = sorted({e for t in sel for e in viewer.epochs_of(during[t], key)})
if all(key in viewer.clips_of(per_trial[t]) for t in sel):
    steps.append(None)
epoch = (
    st.select_slider(
        "Epoch (frame and filmstrip)", steps, value=steps[-1], format_func=viewer.epoch_label, key="compare_epoch"
    )
    if len(steps) > 1
    else (steps[0] if steps else None)
)
frames, shown = {}, {}
for t in sel:
    frames[t], shown[t] = viewer.frames_at(per_trial[t], during[t], key, epoch)


def trial_label(t: str) -> str:
    at = f", epoch {shown[t]}" if epoch is not None and shown[t] is not None and shown[t] != epoch else ""
    return f"{t} ({rows.loc[t, 'experiment']}{at})"


n = min((len(v) for f in frames.values() for v in f.values()), default=0)
first = next((frames[t] for t in sel if "gray" in frames[t] or "gt" in frames[t]), frames[sel[0]])
tab_frame, tab_clips, tab_strip = st.tabs(["Frame", "Clips in step", "Filmstrip"])
with tab_frame:
    idx = st.slider("Frame", 0, n - 1, 0, key="compare_frame") if n > 1 else 0
    gt = viewer.frame_array(first["gt"][idx]) if "gt" in first else None
    panels = [{"label": "Gray input", "frame": viewer.frame_array(first["gray"][idx])}] if "gray" in first else []
    trial_panels = []
    for t in sel:
        if "pred" in frames[t]:
            pred = viewer.frame_array(frames[t]["pred"][idx])
            error = compare_widgets.ab_error_map(pred, gt) if gt is not None and gt.shape == pred.shape else None
            trial_panels.append(len(panels))
            panels.append({"label": trial_label(t), "frame": pred, "error": error})
    if gt is not None:
        panels.append({"label": "Ground truth", "frame": gt})
    if len({p["frame"].shape for p in panels}) > 1:
        st.warning("These frames differ in size and cannot be drawn together.")
    elif panels:
        wipe = (trial_panels[0], trial_panels[1]) if len(trial_panels) >= 2 else None
        fh, fw = panels[0]["frame"].shape[:2]
        width = (880 - 6 * (len(panels) - 1)) // len(panels)  # every panel in one row of the page
        height = max(60, round(width * fh / fw))
        page = compare_widgets.frame_compare_html(panels, wipe=wipe, height=height)
        # st.iframe: the page is ours (labels escaped, media as data: URIs), never a user's HTML
        st.iframe(page, height=40 + height + 24 + (2 * height + 40 if wipe else 0))
with tab_clips:
    clips = []
    videos = {t: viewer.clip_videos(per_trial[t], key) for t in sel}
    for label, path in [
        ("Gray input", videos[sel[0]].get("gray")),
        *((f"{t} ({rows.loc[t, 'experiment']})", videos[t].get("pred")) for t in sel),
        ("Ground truth", videos[sel[0]].get("gt")),
    ]:
        blob = data.file_bytes(path) if path else None
        if blob:
            clips.append((label, blob))
    if len(clips) >= 2:
        fh, fw = (viewer.frame_array(first["gray"][0]).shape[:2]) if "gray" in first else (3, 4)
        clip_h = min(240, max(60, round((880 - 6 * (len(clips) - 1)) / len(clips) * fh / fw)))  # one row
        st.iframe(compare_widgets.clip_compare_html(clips, height=clip_h), height=clip_h + 80)
    else:
        st.info("These trials have no rendered clips.")
with tab_strip:
    steps = sorted({round(i * (n - 1) / 5) for i in range(6)}) if n > 1 else [0]
    st.caption(f"Rows: trials, gray input and ground truth; columns: frames {', '.join(map(str, steps))} of the clip.")
    strip_rows = [("Gray input", first.get("gray"))]
    strip_rows += [(trial_label(t), frames[t].get("pred")) for t in sel]
    strip_rows.append(("Ground truth", first.get("gt")))
    for label, seq in strip_rows:
        if not seq:
            continue
        cols = st.columns([1.2] + [1] * len(steps))
        cols[0].markdown(f"**{label}**")
        for col, i in zip(cols[1:], steps):
            col.image(viewer.sharp(seq[i]), width="stretch", output_format="PNG")
