"""The compare page's own components (`dashboard.compare_widgets`): the ab error against hand-computed
values, and in Chromium: dragging the wipe changes which trial shows at a point, zoom and pan move
every panel together pixel for pixel, the error-map switch, and clips that stay in step after a
seek; then the compare page itself in the running dashboard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from dashboard.compare_widgets import ab_error, ab_error_map, clip_compare_html, frame_compare_html

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def solid(rgb, h=24, w=32) -> np.ndarray:
    return np.full((h, w, 3), rgb, np.uint8)


def test_ab_error_is_the_ab_distance_in_cielab():
    gray, red = solid((128, 128, 128)), solid((255, 0, 0))
    assert ab_error(gray, gray).max() == 0
    # sRGB red is L 53.2, a 80.1, b 67.2 (D65); mid gray has a = b = 0
    assert ab_error(red, gray).mean() == pytest.approx(np.hypot(80.1, 67.2), abs=0.5)
    lab = cv2.cvtColor(np.float32([[[0.2, 0.5, 0.9]]]), cv2.COLOR_RGB2Lab)[0, 0]
    blue = solid((51, 128, 230))  # the same colour in uint8, within rounding
    assert ab_error(blue, gray).mean() == pytest.approx(np.hypot(lab[1], lab[2]), abs=0.6)
    with pytest.raises(ValueError, match="different sizes"):
        ab_error(gray, solid((1, 2, 3), h=10))


def test_error_map_is_black_where_right_and_white_at_the_scale():
    gray, red = solid((128, 128, 128)), solid((255, 0, 0))
    assert ab_error_map(gray, gray).max() == 0
    assert (ab_error_map(red, gray) == 255).all()  # over 40 ab units: saturated white
    half = ab_error_map(red, gray, scale=2 * float(ab_error(red, gray).mean()))
    assert 100 < half[0, 0, 0] <= 255 and half[0, 0, 2] < half[0, 0, 0]  # halfway up the ramp: red-orange


def test_labels_cannot_end_the_script_early():
    page = frame_compare_html([{"label": "</script><b>x", "frame": solid((1, 2, 3))}])
    assert "</script><b>x" not in page.split("id='panels'>", 1)[1].split("</script>", 1)[0]


# -- in Chromium -----------------------------------------------------------------------------------


def _chromium():
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip(f"Chromium not installed at {CHROMIUM} (apt-get install chromium); CI runs this test")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def _pixel(page, selector: str, fx: float, fy: float = 0.5) -> list[int]:
    return page.evaluate(
        """([sel, fx, fy]) => { const c = document.querySelector(sel);
           const x = Math.floor(fx * c.width), y = Math.floor(fy * c.height);
           return [...c.getContext('2d').getImageData(x, y, 1, 1).data]; }""",
        [selector, fx, fy],
    )


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_wipe_zoom_pan_and_error_maps_in_chromium(tmp_path):
    red, blue, gt = solid((220, 30, 30)), solid((30, 30, 220)), solid((30, 30, 220))
    left = solid((200, 200, 200))
    left[:, 16:] = 20  # gray input: bright left half, dark right half, to see zoom and pan
    panels = [
        {"label": "Gray input", "frame": left},
        {"label": "A", "frame": red, "error": ab_error_map(red, gt)},
        {"label": "B", "frame": blue, "error": ab_error_map(blue, gt)},
        {"label": "Ground truth", "frame": gt},
    ]
    page_file = tmp_path / "frames.html"
    page_file.write_text(frame_compare_html(panels, wipe=(1, 2), height=120))
    with _chromium() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(page_file.as_uri())
            page.wait_for_selector("body[data-ready='1']")
            # the wipe: A left of the slider, B right of it; dragging it moves the line past a point
            assert _pixel(page, "#wipe", 0.4)[:3] == [220, 30, 30]
            assert _pixel(page, "#wipe", 0.6)[:3] == [30, 30, 220]
            slider = page.locator("#wipeAt").bounding_box()
            page.mouse.click(slider["x"] + 0.2 * slider["width"], slider["y"] + slider["height"] / 2)
            assert int(page.input_value("#wipeAt")) < 30
            assert _pixel(page, "#wipe", 0.4)[:3] == [30, 30, 220]  # B now shows where A was
            page.select_option("#wipeB", "3")  # ground truth on the right
            assert _pixel(page, "#wipe", 0.6)[:3] == [30, 30, 220]
            # zoom at the middle of the gray panel: its left quarter, once bright, is now the edge
            gray = page.locator("canvas.panel[data-i='0']")
            box = gray.bounding_box()
            assert _pixel(page, "canvas.panel[data-i='0']", 0.4)[:3] == [200, 200, 200]
            page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + box["height"] / 2)
            for _ in range(4):
                page.mouse.wheel(0, -100)
            assert page.text_content("#zoom") != "1.0x"
            assert _pixel(page, "canvas.panel[data-i='0']", 0.4)[:3] == [20, 20, 20]
            # every panel took the same view: A's and the truth's canvases show the same region
            # (both uniform), and panning the gray one moves the bright half back into view
            page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + 0.9 * box["width"], box["y"] + box["height"] / 2, steps=5)
            page.mouse.up()
            assert _pixel(page, "canvas.panel[data-i='0']", 0.4)[:3] == [200, 200, 200]
            # error maps: B equals the truth (black), A is far from it (white)
            assert _pixel(page, "canvas.panel[data-i='1']", 0.5)[:3] == [220, 30, 30]
            page.check("#errors")
            assert _pixel(page, "canvas.panel[data-i='1']", 0.5)[:3] == [255, 255, 255]
            assert _pixel(page, "canvas.panel[data-i='2']", 0.5)[:3] == [0, 0, 0]
            assert _pixel(page, "canvas.panel[data-i='3']", 0.5)[:3] == [30, 30, 220]  # truth as it is
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_clips_play_and_seek_in_step_in_chromium(tmp_path):
    from study.media.video_out import write_video

    clips = []
    for k in range(3):
        frames = [solid((40 * k + 5 * i % 255, 80, 120), h=48, w=64) for i in range(48)]
        path = write_video(tmp_path / f"c{k}.mp4", frames, fps=24)
        clips.append((f"trial {k}", Path(path).read_bytes()))
    page_file = tmp_path / "clips.html"
    page_file.write_text(clip_compare_html(clips, height=96))
    with _chromium() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_selector("body[data-ready='1']")
            times = "() => [...document.querySelectorAll('video')].map(v => v.currentTime)"
            page.fill("#seek", "600")  # 60% of the shortest clip
            page.dispatch_event("#seek", "input")
            page.wait_for_timeout(300)
            after_seek = page.evaluate(times)
            assert after_seek[0] == pytest.approx(0.6 * 2.0, abs=0.1)
            assert max(after_seek) - min(after_seek) <= 0.1, after_seek
            page.click("#play")
            page.wait_for_timeout(500)
            playing = page.evaluate(times)
            assert playing[0] > after_seek[0] and max(playing) - min(playing) <= 0.1, playing
            page.click("#play")  # pause: every clip stops on the first one's time
            paused = page.evaluate(times)
            assert max(paused) - min(paused) <= 0.1, paused
            assert json.loads(
                json.dumps(page.evaluate("() => [...document.querySelectorAll('video')].every(v => v.paused)"))
            )
        finally:
            browser.close()
