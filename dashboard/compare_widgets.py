"""Looking at colorizations side by side, in the browser: two small components of our own.

`frame_compare_html`: one frame of up to four trials beside the gray input and the ground truth,
each on a canvas drawn pixel for pixel (no smoothing when zoomed), one zoom and pan for every
panel (mouse wheel zooms at the cursor, dragging pans, double click resets), a wipe panel that
shows one trial left of a slider and another right of it, and an error-map switch that replaces
each trial's colors by its per-pixel ab error against the ground truth (`ab_error_map`).

`clip_compare_html`: the same clip of several trials and the ground truth playing in step: one
play/pause button and one seek bar for all; while playing, videos that drift more than 1/20 s
from the first are put back on it.

Both return a whole HTML document with every image and video inside it as a ``data:`` URI, for
``streamlit.components.v1.html`` (an iframe with no network access needed). No torch: the ab
error comes from OpenCV's Lab conversion.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

JS = Path(__file__).with_name("js")  # the components' scripts, inlined into each page

#: ab error (CIELAB units) at the top of the error map's colour scale; larger errors saturate.
ERROR_SCALE_AB = 40.0


def _json(value) -> str:
    """JSON safe inside a <script> element (no "</script>" can end it early)."""
    return json.dumps(value).replace("<", "\\u003c")


def png_uri(frame: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def ab_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-pixel ab distance (CIELAB units, D65) between two uint8 RGB frames of one size."""
    if pred.shape != gt.shape:
        raise ValueError(f"frames of different sizes: {pred.shape} and {gt.shape}")
    lab_p = cv2.cvtColor(pred.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    lab_g = cv2.cvtColor(gt.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    return np.sqrt(((lab_p[..., 1:] - lab_g[..., 1:]) ** 2).sum(axis=-1))


def _heat_lut() -> np.ndarray:
    """256 RGB colours from black through red and yellow to white (a perceptually ordered ramp)."""
    t = np.linspace(0.0, 1.0, 256)
    r = np.clip(t * 3.0, 0, 1)
    g = np.clip(t * 3.0 - 1.0, 0, 1)
    b = np.clip(t * 3.0 - 2.0, 0, 1)
    return (np.stack([r, g, b], axis=1) * 255).round().astype(np.uint8)


HEAT = _heat_lut()


def ab_error_map(pred: np.ndarray, gt: np.ndarray, scale: float = ERROR_SCALE_AB) -> np.ndarray:
    """The ab error as a uint8 RGB heat map: black = no error, white = ``scale`` or more."""
    level = np.clip(ab_error(pred, gt) / scale * 255.0, 0, 255).astype(np.uint8)
    return HEAT[level]


_FRAME_JS = (JS / "frame_compare.js").read_text(encoding="utf-8")


def frame_compare_html(panels: list[dict], *, wipe: tuple[int, int] | None = None, height: int = 240) -> str:
    """``panels``: ``{"label", "frame" (uint8 RGB), "error" (heat map or None)}``, all frames of one
    size; ``wipe``: the indices of the two panels the wipe starts with (None: no wipe panel)."""
    if not panels:
        raise ValueError("no panels to compare")
    h, w = panels[0]["frame"].shape[:2]
    if any(p["frame"].shape[:2] != (h, w) for p in panels):
        raise ValueError("the panels' frames differ in size")
    ch = int(height)
    cw = max(1, round(ch * w / h))
    data = [
        {
            "label": p["label"],
            "src": png_uri(p["frame"]),
            "err": png_uri(p["error"]) if p.get("error") is not None else None,
        }
        for p in panels
    ]
    cells = "".join(
        f'<figure><canvas class="panel" data-i="{i}" width="{cw}" height="{ch}"></canvas>'
        f"<figcaption>{html.escape(p['label'])}</figcaption></figure>"
        for i, p in enumerate(panels)
    )
    has_errors = any(p["err"] for p in data)
    controls = ['<span class="hint">wheel: zoom · drag: pan · double click: reset · zoom <b id="zoom">1.0x</b></span>']
    if has_errors:
        controls.append(
            f'<label><input type="checkbox" id="errors"> error map (ab distance to the ground truth; '
            f"white = {ERROR_SCALE_AB:g} or more)</label>"
        )
    wipe_html = ""
    if wipe is not None:
        a, b = wipe

        def options(chosen: int) -> str:
            return "".join(
                f'<option value="{i}"{" selected" if i == chosen else ""}>{html.escape(p["label"])}</option>'
                for i, p in enumerate(panels)
            )

        wipe_html = (
            '<div class="wipe"><div class="wipebar">'
            f'<select id="wipeA">{options(a)}</select>'
            '<input type="range" id="wipeAt" min="0" max="100" value="50">'
            f'<select id="wipeB">{options(b)}</select></div>'
            f'<canvas id="wipe" width="{2 * cw}" height="{2 * ch}"></canvas></div>'
        )
    style = (
        "body{margin:0;font:13px system-ui,sans-serif;color:#222}"
        ".row{display:flex;flex-wrap:wrap;gap:6px}figure{margin:0}figcaption{text-align:center;font-size:12px}"
        "canvas{background:#111;cursor:grab;display:block}.controls{display:flex;gap:18px;margin:4px 0 6px}"
        ".hint{color:#666}.wipe{margin-top:8px}.wipebar{display:flex;gap:8px;align-items:center;margin-bottom:4px}"
        f".wipebar{{width:{2 * cw}px}}#wipeAt{{flex:1}}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head><body>"
        f"<div class='controls'>{''.join(controls)}</div><div class='row'>{cells}</div>{wipe_html}"
        f"<script type='application/json' id='panels'>{_json(data)}</script><script>{_FRAME_JS}</script>"
        "</body></html>"
    )


_CLIP_JS = (JS / "clip_compare.js").read_text(encoding="utf-8")


def clip_compare_html(clips: list[tuple[str, bytes]], *, height: int = 200) -> str:
    """``clips``: (label, mp4 bytes) played in step, with one play/pause and one seek bar."""
    if not clips:
        raise ValueError("no clips to compare")
    cells = "".join(
        f"<figure><video muted playsinline preload='auto' height='{int(height)}' "
        f"src='data:video/mp4;base64,{base64.b64encode(data).decode('ascii')}'></video>"
        f"<figcaption>{html.escape(label)}</figcaption></figure>"
        for label, data in clips
    )
    style = (
        "body{margin:0;font:13px system-ui,sans-serif}.row{display:flex;flex-wrap:wrap;gap:6px}figure{margin:0}"
        "figcaption{text-align:center;font-size:12px}video{background:#111;image-rendering:pixelated;display:block}"
        ".bar{display:flex;gap:10px;align-items:center;margin-bottom:6px}#seek{flex:1}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head><body>"
        "<div class='bar'><button id='play'>play</button><input id='seek' type='range' min='0' max='1000' value='0'>"
        f"<span id='at'></span></div><div class='row'>{cells}</div><script>{_CLIP_JS}</script></body></html>"
    )
