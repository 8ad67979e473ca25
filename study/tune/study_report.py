"""``vidcolor report STUDY``: the trials and Pareto front as text (`study.tune.front`) and, with
``--out report.html``, the study as one self-contained HTML file.

Everything the file shows is inside it, so that it can be mailed, attached to a paper's
supplement or opened offline: the trials table with their hyperparameters and objectives (the
Pareto front marked), plots drawn by plotly with its JavaScript inlined once, the best trials'
sample frames (PNG) and clips (H.264) side by side with the gray input and the ground truth as
``data:`` URIs, and the Color Turing Test results. The page loads nothing from anywhere: no
script, font, style or image outside the file. Reads the results store and the media files it
indexes; no Ray, no torch.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from pathlib import Path

import pandas as pd

from study.report import write_atomically
from study.tune.front import format_front, front_table, study_objectives

#: Trials whose frames and clips the report shows, best first by the first objective.
BEST_TRIALS = 3
#: Sample frames per clip shown (evenly spaced among those stored).
FRAMES_SHOWN = 4
#: Frames narrower than this are scaled up to it, pixel for pixel (nearest neighbour).
MIN_FRAME_PX = 160

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
table.trials { border-collapse: collapse; font-size: 0.85rem; }
table.trials th, table.trials td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
table.trials th { background: #f4f4f4; position: sticky; top: 0; }
table.trials td:first-child, table.trials th:first-child { text-align: left; font-family: monospace; }
tr.front td { background: #eef6ee; }
.grid { display: grid; gap: 0.3rem; align-items: center; }
.grid .label { font-size: 0.8rem; color: #444; font-family: monospace; }
.grid img, .grid video { width: 100%; image-rendering: pixelated; display: block; }
.note { color: #666; font-size: 0.85rem; }
"""


def _data_uri(path: Path, mime: str) -> str | None:
    try:
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
    except OSError:
        return None


def _esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trials_html(trials: pd.DataFrame, objectives: list[tuple[str, str]]) -> str:
    """The trials table: id, status, epochs, each objective, each hyperparameter; front rows marked."""
    table = front_table(trials, objectives)
    params = sorted(c for c in trials.columns if c.startswith("param_"))
    table = table.merge(trials[["trial_id", *params]], on="trial_id", how="left")
    heads = ["trial", "status", "epochs", *(f"{m} ({mode})" for m, mode in objectives)]
    heads += [p.removeprefix("param_") for p in params] + ["Pareto front"]
    rows = []
    for _, r in table.iterrows():
        cells = [r["trial_id"], r["status"], _fmt(r["epochs"])]
        cells += [_fmt(r[f"best_{m}"]) for m, _ in objectives] + [_fmt(r[p]) for p in params]
        cells.append("yes" if r["pareto"] else "")
        rows.append(
            f'<tr class="{"front" if r["pareto"] else ""}">' + "".join(f"<td>{_esc(c)}</td>" for c in cells) + "</tr>"
        )
    head = "".join(f"<th>{_esc(h)}</th>" for h in heads)
    return f'<table class="trials"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def plots_html(trials: pd.DataFrame, epochs: pd.DataFrame, objectives: list[tuple[str, str]]) -> str:
    """The objective over the study, the learning curves and the hyperparameters against the
    objective, as plotly figures; plotly.js is inlined with the first one only."""
    import plotly.graph_objects as go

    metric, mode = objectives[0]
    column = f"best_{metric}"
    figures = []
    ordered = (trials.sort_values("started") if "started" in trials else trials).reset_index(drop=True)
    fig = go.Figure()
    for status, group in ordered.groupby("status", sort=True):
        fig.add_trace(
            go.Scatter(
                x=group.index + 1,
                y=group[column],
                mode="markers",
                name=str(status),
                text=group["trial_id"],
                hovertemplate="trial %{text}<br>" + metric + " %{y:.4g}<extra></extra>",
            )
        )
    fig.update_layout(title=f"best {metric} ({mode}) by trial, in start order", xaxis_title="trial", yaxis_title=metric)
    figures.append(fig)
    if not epochs.empty and metric in epochs:
        fig = go.Figure()
        for trial_id, group in epochs.sort_values("epoch").groupby("trial_id", sort=True):
            fig.add_trace(go.Scatter(x=group["epoch"], y=group[metric], mode="lines+markers", name=str(trial_id)))
        fig.update_layout(title=f"{metric} per epoch", xaxis_title="epoch", yaxis_title=metric)
        figures.append(fig)
    params = sorted(c for c in trials.columns if c.startswith("param_"))
    numeric = [p for p in params if pd.to_numeric(trials[p], errors="coerce").notna().all()]
    done = trials[pd.to_numeric(trials[column], errors="coerce").notna()]
    if numeric and len(done) >= 2:
        dims = [dict(label=p.removeprefix("param_"), values=pd.to_numeric(done[p])) for p in numeric]
        dims.append(dict(label=metric, values=pd.to_numeric(done[column])))
        fig = go.Figure(
            go.Parcoords(
                line=dict(
                    color=pd.to_numeric(done[column]),
                    colorscale="Viridis",
                    reversescale=mode == "min",
                    showscale=True,
                ),
                dimensions=dims,
            )
        )
        fig.update_layout(title=f"hyperparameters against best {metric}", margin=dict(t=110))
        figures.append(fig)
    for f in figures:  # the parallel coordinates keep their taller top margin (axis names above)
        f.update_layout(height=380, margin=dict(l=60, r=30, b=50, t=f.layout.margin.t or 50))
    parts = [
        f.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False})
        for i, f in enumerate(figures)
    ]
    return "\n".join(parts)


def best_trials(trials: pd.DataFrame, objectives: list[tuple[str, str]], n: int = BEST_TRIALS) -> list[str]:
    """The ``n`` best trials by the first objective among those with a number for it."""
    metric, mode = objectives[0]
    values = pd.to_numeric(trials[f"best_{metric}"], errors="coerce")
    ranked = trials.assign(_v=values).dropna(subset=["_v"]).sort_values("_v", ascending=mode == "min")
    return [str(t) for t in ranked["trial_id"].head(n)]


def media_html(media: pd.DataFrame, trial_ids: list[str]) -> str:
    """For the first clip the best trials share: rows gray, each trial's colors, ground truth;
    columns a few frames, then the clips playing (muted, looping)."""
    media = media[media["trial_id"].isin(trial_ids)].dropna(subset=["video_id"])
    media = media.assign(clip=media["clip"].fillna(-1))
    if media.empty:
        return '<p class="note">No sample frames or clips were stored for these trials.</p>'
    per_clip = media.groupby(["video_id", "clip"])["trial_id"].nunique().sort_values(ascending=False)
    video_id, clip = per_clip.index[0]
    shown = media[(media["video_id"] == video_id) & (media["clip"] == clip)]
    first = next(t for t in trial_ids if t in set(shown["trial_id"]))
    rows: list[tuple[str, pd.DataFrame]] = [("gray", shown[(shown["trial_id"] == first)].assign(role="gray"))]
    rows += [(f"trial {t}", shown[shown["trial_id"] == t].assign(role="pred")) for t in trial_ids]
    rows.append(("ground truth", shown[(shown["trial_id"] == first)].assign(role="gt")))
    frames = sorted(shown.loc[shown["media_type"] == "pred_png", "frame"].dropna().unique())
    if len(frames) > FRAMES_SHOWN:
        frames = [frames[round(i * (len(frames) - 1) / (FRAMES_SHOWN - 1))] for i in range(FRAMES_SHOWN)]
    has_clips = (shown["media_type"] == "pred_mp4").any()
    columns = len(frames) + (1 if has_clips else 0)
    cells = []
    missing = 0
    for label, part in rows:
        role = part["role"].iloc[0] if len(part) else "pred"
        cells.append(f'<div class="label">{_esc(label)}</div>')
        for frame in frames:
            hit = part[(part["media_type"] == f"{role}_png") & (part["frame"] == frame)]
            uri = _data_uri(Path(hit["path"].iloc[0]), "image/png") if len(hit) else None
            missing += uri is None
            cells.append(f'<img alt="{_esc(label)} frame {int(frame)}" src="{uri}">' if uri else "<div></div>")
        if has_clips:
            hit = part[part["media_type"] == f"{role}_mp4"]
            uri = _data_uri(Path(hit["path"].iloc[0]), "video/mp4") if len(hit) else None
            missing += uri is None
            cells.append(f'<video src="{uri}" autoplay muted loop playsinline></video>' if uri else "<div></div>")
    width = f"minmax({MIN_FRAME_PX}px, 1fr)"
    grid = f'<div class="grid" style="grid-template-columns: 8rem repeat({columns}, {width})">{"".join(cells)}</div>'
    head = (
        f"<p>Video <code>{_esc(video_id)}</code>{f', clip {int(clip)}' if clip >= 0 else ''}: frames "
        f"{', '.join(str(int(f)) for f in frames)}{' and the clip' if has_clips else ''}, "
        "the trials' colors between the gray input and the ground truth.</p>"
    )
    note = f'<p class="note">{missing} stored file(s) could not be read and are left blank.</p>' if missing else ""
    return head + grid + note


def ctt_html(results: pd.DataFrame) -> str:
    if results.empty:
        return '<p class="note">No Color Turing Test votes for this study yet.</p>'
    from study.ctt.export import SHOWN_COLUMNS

    cols = [c for c in SHOWN_COLUMNS if c in results]
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_esc(_fmt(r[c]))}</td>" for c in cols) + "</tr>" for _, r in results.iterrows()
    )
    return f'<table class="trials"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def build_report(store, study: str) -> str:
    """The whole report of ``study`` (a name in ``store``) as one HTML document."""
    from study.ctt.export import results as ctt_results

    info = store.get_study(study) or {}
    objectives = study_objectives(info)
    trials = store.trials(study)
    counts = trials["status"].value_counts().to_dict() if not trials.empty else {}
    by_status = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    sections = [
        f"<h1>Study {_esc(study)}</h1>",
        f'<p class="meta">{len(trials)} trials ({_esc(by_status)}); '
        f"objectives {_esc(', '.join(f'{m} ({mode})' for m, mode in objectives))}; "
        f"report written {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by vidcolor</p>",
    ]
    if not trials.empty:  # a column per objective, even before any trial has a number for it
        missing = [f"best_{m}" for m, _ in objectives if f"best_{m}" not in trials]
        trials = trials.reindex(columns=[*trials.columns, *missing])
    if trials.empty:
        sections.append('<p class="note">No trials yet.</p>')
    elif not objectives:
        sections += ["<h2>Trials</h2>", '<p class="note">The study records no objective.</p>']
    else:
        best = best_trials(trials, objectives)
        sections += [
            "<h2>Trials</h2>",
            "<p>Best epoch's numbers of each trial; the Pareto front (trials that ran every epoch) is shaded.</p>",
            trials_html(trials, objectives),
            "<h2>Plots</h2>",
            plots_html(trials, store.epochs(study), objectives)
            if trials[f"best_{objectives[0][0]}"].notna().any()
            else '<p class="note">No trial has reported its objective yet.</p>',
            f"<h2>The best {len(best)} trials' colors</h2>",
            media_html(store.media(study), best) if best else '<p class="note">No trial has a result yet.</p>',
        ]
    sections += ["<h2>Color Turing Test</h2>", ctt_html(ctt_results(store, study))]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>vidcolor study {_esc(study)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )


def main(args) -> int:
    """Handler of ``vidcolor report STUDY [--db URL] [--out FILE.html]``: the study's trials,
    objectives and front as text; with ``--out`` also the self-contained HTML report."""
    from data_shards import outdir
    from models.errors import VidcolorError
    from study.store import Store

    if args.study and args.study_option and args.study != args.study_option:
        raise VidcolorError(f"two studies named: STUDY {args.study!r} and --study {args.study_option!r}")
    wanted = args.study or args.study_option
    if not wanted:
        raise VidcolorError("name the study: vidcolor report STUDY (or --study NAME)")
    out = None
    if args.out:  # before the store is opened: a bad --out costs nothing
        out = outdir.check_file(args.out, "--out", args.overwrite, expected="an HTML file name")
    store = Store(args.db, create=False)
    name = store.resolve_study(wanted)
    study = store.get_study(name) or {}
    objectives = study_objectives(study)
    trials = store.trials(name)
    print(f"study {name}: {len(trials)} trials, objectives {', '.join(m for m, _ in objectives)}")
    if trials.empty:
        print("no trials yet")
    else:
        print(format_front(trials, objectives))
    if out is not None:
        page = build_report(store, name)
        write_atomically(out, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"), "HTML report")
        print(f"wrote {out} ({len(page.encode()) / 1e6:.1f} MB, self-contained: opens offline)")
    return 0
