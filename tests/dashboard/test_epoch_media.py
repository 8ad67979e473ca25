"""Media over training on the dashboard: a trial that rendered its frames every epoch (a spec's
media_every) gets an epoch slider on the trial and compare pages, and moving it changes the frames
shown. The fixture study (conftest.py) with epoch frames added to its three best trials: at epoch e
of n, the prediction is the ground truth's colour at e/n of its saturation (gray at epoch 0)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import browser_tools
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import viewer

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
EPOCHS = {"t_002": 3, "t_004": 3, "t_005": 2}  # the compare page's three best trials; t_005 stops at 2


def _blend(gt: np.ndarray, share: float) -> np.ndarray:
    gray = gt.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return (gray[..., None] + share * (gt.astype(np.float32) - gray[..., None])).clip(0, 255).astype(np.uint8)


def add_epoch_media(info: dict, epochs: dict[str, int] = EPOCHS) -> None:
    """Epoch frames as `EpochMedia` lists them: pred PNGs at every epoch, gray and truth at the first."""
    store, study = info["store"], info["study"]
    final = store.media(study)
    for tid, n in epochs.items():
        gts = final[(final.trial_id == tid) & (final.media_type == "gt_png")]
        for gt_row in gts.itertuples():
            gt = np.asarray(Image.open(gt_row.path).convert("RGB"))
            for e in range(1, n + 1):
                folder = Path(info["root"], "epochs", tid, f"e{e:04d}", f"{gt_row.video_id}_c{int(gt_row.clip):05d}")
                folder.mkdir(parents=True, exist_ok=True)
                views = {"pred": _blend(gt, e / n)} | ({"gray": _blend(gt, 0.0), "gt": gt} if e == 1 else {})
                for role, frame in views.items():
                    path = folder / f"{int(gt_row.frame):03d}_{role}.png"
                    Image.fromarray(frame).save(path)
                    store.add_media(
                        study,
                        tid,
                        f"{role}_png",
                        path,
                        video_id=gt_row.video_id,
                        clip=int(gt_row.clip),
                        frame=int(gt_row.frame),
                        epoch=e,
                    )


@pytest.fixture()
def epoch_study(fx, tmp_path):
    info = fx.build(tmp_path, with_items=False)
    add_epoch_media(info)
    return info


def _saturation(frame) -> float:
    rgb = viewer.frame_array(frame).astype(np.float32)
    return float((rgb.max(axis=-1) - rgb.min(axis=-1)).mean())


def test_frames_at_an_epoch_come_from_that_epoch_and_a_stopped_trial_shows_its_last(epoch_study):
    store, study = epoch_study["store"], epoch_study["study"]
    final, during = store.media(study, "t_005"), store.media(study, "t_005", epochs=True)
    key = ("vid_a", 0)
    assert viewer.epochs_of(during, key) == [1, 2]
    frames, shown = viewer.frames_at(final, during, key, 1)
    assert shown == 1 and list(frames) == ["gray", "pred", "gt"]
    assert [Path(p).parent.parent.name for p in frames["pred"]] == ["e0001", "e0001"]  # frames 0 and 7
    later, shown = viewer.frames_at(final, during, key, 3)  # it stopped at 2: its last is shown
    assert shown == 2 and _saturation(later["pred"][0]) > _saturation(frames["pred"][0]) > 0
    # gray and truth: the final media's (decoded from their mp4s) at the same frame numbers
    decoded = viewer.clip_frames(final, key)["gt"]
    assert len(decoded) == 8 and len(later["gt"]) == 2
    assert all(np.array_equal(a, b) for a, b in zip(later["gt"], [decoded[0], decoded[7]]))
    end, shown = viewer.frames_at(final, during, key, None)
    assert shown is None and {r: len(v) for r, v in end.items()} == {"gray": 8, "pred": 8, "gt": 8}
    # without final media (a running trial), gray and truth come from the first epoch's
    only, _ = viewer.frames_at(final.iloc[0:0], during, key, 2)
    assert [Path(p).name for p in only["gt"]] == ["000_gt.png", "007_gt.png"]
    assert viewer.frames_at(final, during, key, 0) == ({}, None)  # before any epoch rendered


def _open(url: str, monkeypatch, page: str, **query) -> AppTest:
    monkeypatch.setenv("VIDCOLOR_DB", url)
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_trial_page_epoch_slider(epoch_study, monkeypatch):
    at = _open(epoch_study["url"], monkeypatch, "trial", trial="t_002")
    [slider] = [s for s in at.select_slider if s.label == "Epoch"]
    assert slider.options == ["epoch 1", "epoch 2", "epoch 3", "end of training (best checkpoint)"]
    assert slider.value is None  # the best checkpoint's frames first
    slider.set_value(1).run()
    assert not at.exception
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
    assert any("Prediction · frame 0 · epoch 1" in c for c in captions), captions
    at2 = _open(epoch_study["url"], monkeypatch, "trial", trial="t_001")  # rendered nothing while training
    assert not [s for s in at2.select_slider if s.label == "Epoch"]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_compare_page_epoch_slider_changes_the_frames_in_chromium(epoch_study, tmp_path):
    """The compare page opens on the best checkpoints' frames; the epoch slider's first step shows
    every trial's epoch-1 frames (a third of the colour) in the frame panels, and t_005, which
    stopped at epoch 2, keeps its last when the slider goes past it."""
    from playwright.sync_api import sync_playwright

    browser_tools.need_chromium()
    with browser_tools.serving(["dashboard", "--db", epoch_study["url"]], tmp_path, "dashboard") as (base, _):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=browser_tools.CHROMIUM, args=browser_tools.CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1366, "height": 768})
                page.set_default_timeout(60_000)
                page.goto(f"{base}/compare")
                browser_tools.settle(page)

                def panels() -> dict[str, float]:
                    """label -> mean chroma (max - min of RGB) of each frame panel's canvas"""
                    for _ in range(120):  # the component's iframe comes after the page's first run
                        ready = "body[data-ready='1'] canvas.panel"
                        frame = next((f for f in page.frames if f.query_selector(ready)), None)
                        if frame is not None:
                            break
                        page.wait_for_timeout(250)
                    else:
                        raise AssertionError("no frame panels on the compare page")
                    return frame.evaluate(
                        """() => Object.fromEntries([...document.querySelectorAll('canvas.panel')].map(c => {
                             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                             let s = 0; for (let i = 0; i < d.length; i += 4)
                               s += Math.max(d[i], d[i+1], d[i+2]) - Math.min(d[i], d[i+1], d[i+2]);
                             return [c.closest('figure').querySelector('figcaption').textContent,
                                     s / (d.length / 4)]; }))"""
                    )

                def after(key: str) -> dict[str, float]:
                    """the panels once the page has redrawn them after `key` on the epoch slider"""
                    before = panels()
                    slider.press(key)
                    browser_tools.settle(page)
                    for _ in range(40):
                        with contextlib.suppress(Exception):  # the frame may be replaced meanwhile
                            now = panels()
                            if now != before:
                                return now
                        page.wait_for_timeout(250)
                    return panels()

                end = panels()
                slider = page.get_by_role("slider", name="Epoch (frame and filmstrip)")
                slider.focus()
                first = after("Home")  # epoch 1
                page.screenshot(path=str(tmp_path / "compare_epoch1.png"))
                past = after("End")  # the end of training
                slider.press("ArrowLeft")  # epoch 3: t_005 stopped at 2
                browser_tools.settle(page)
                page.wait_for_timeout(1000)
                third = panels()
            finally:
                browser.close()
    trial = [k for k in first if k.startswith("t_002")]
    assert trial, first
    gray = next(k for k in first if k.startswith("Gray"))
    assert first[gray] < 1.0  # the gray input is gray at every epoch
    assert first[trial[0]] < 0.5 * end[next(k for k in end if k.startswith("t_002"))]  # a third of its colour
    assert past == end
    assert any(k.startswith("t_005") and "epoch 2" in k for k in third), third  # its last, and says so
