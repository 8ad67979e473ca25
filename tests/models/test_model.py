"""VideoColorizer, ConvLSTM, ensemble: shapes, the registry sweep, streaming, overfitting."""

import itertools

import numpy as np
import pytest
import torch

from models.colorizer import Colorizer
from models.ensemble import Ensemble
from models.errors import VidcolorError
from models.gamut import ABGamut
from models.losses import colorization_loss, downsample_ab
from models.model import VideoColorizer, count_parameters, create_model, final_logits
from models.presets import PRESETS, get_preset
from models.temporal import ConvLSTM


@pytest.fixture(scope="module")
def gamut():
    return ABGamut(10)


def _build(name, size, gamut):
    cfg = get_preset(name).replace(size=size)
    if cfg.is_ensemble:
        members = [create_model(get_preset(m).replace(size=size), gamut) for m in cfg.ensemble]
        return Ensemble(members, cfg)
    return create_model(cfg.replace(seq_len=2) if cfg.is_temporal else cfg, gamut)


@pytest.mark.parametrize(
    "size,name",
    [
        pytest.param(s, n, marks=[pytest.mark.slow] if s == "base" else [])
        for s, n in itertools.product(["tiny", "small", "base"], PRESETS)
    ],
)
def test_registry_forward_backward_without_nan(size, name, gamut):
    torch.manual_seed(0)
    model = _build(name, size, gamut).train()
    px = 32 if size == "tiny" else 16
    t = model.config.window if model.config.is_temporal else 2
    l_norm = torch.rand(2, t, 1, px, px) - 0.5
    out = model(l_norm)
    q, h = gamut.num_bins, px // 4
    assert out.ab_logits.shape == (2, t, q, h, h)
    assert (out.seq_logits is not None) == model.config.is_temporal
    ab_gt = (torch.rand(2, t, 2, h, h) - 0.5) * 60
    weights = torch.rand(q) + 0.5
    loss, parts = colorization_loss(out, ab_gt, gamut, weights, lam=model.config.lam)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in parts.values())
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_sizes_and_paper_parameter_count():
    counts = {s: count_parameters(Colorizer(s, 313)) for s in ("tiny", "small", "base")}
    assert counts["tiny"] < counts["small"] < counts["base"]
    assert 30e6 < counts["base"] < 34e6  # ECCV16: about 32M


def test_batchnorm_ends_each_block_and_strides(gamut):
    col = create_model(get_preset("exp2"), gamut).colorizer
    assert all(isinstance(block[-1], torch.nn.BatchNorm2d) for block in col.trunk)
    assert [len([m for m in b if isinstance(m, torch.nn.Conv2d)]) for b in col.trunk] == [2, 2, 3, 3, 3, 3, 3]
    assert [b[2 * (len(b) // 2) - 2].stride[0] for b in col.trunk] == [2, 2, 2, 1, 1, 1, 1]
    assert [b[0].dilation[0] for b in col.trunk] == [1, 1, 1, 1, 2, 2, 1]


def test_a_fresh_convlstm_adds_nothing_to_the_image_model():
    lstm = ConvLSTM(in_channels=8, num_bins=5)
    logits = torch.randn(1, 3, 5, 4, 4)
    out, _ = lstm(torch.randn(1, 3, 8, 4, 4), logits)
    assert torch.equal(out, logits)  # the residual's convolution starts at zero


def test_truncation_keeps_the_state_and_cuts_the_gradient():
    torch.manual_seed(0)
    lstm = ConvLSTM(in_channels=8, num_bins=5)
    torch.nn.init.normal_(lstm.out.weight)
    feats = torch.randn(1, 4, 8, 4, 4, requires_grad=True)
    logits = torch.zeros(1, 4, 5, 4, 4)
    whole, _ = lstm(feats, logits)
    cut, _ = lstm(feats, logits, truncate=2)
    assert torch.allclose(whole, cut)  # the same values: the state goes on
    (grad,) = torch.autograd.grad(cut[:, 3].sum(), feats)
    assert grad[:, 2:].abs().sum() > 0 and grad[:, :2].abs().sum() == 0  # frame 3 reaches back to frame 2 only
    (grad,) = torch.autograd.grad(whole[:, 3].sum(), feats)
    assert grad[:, :2].abs().sum() > 0


def test_convlstm_step_2_depends_on_frame_1_not_on_later_frames():
    torch.manual_seed(0)
    lstm = ConvLSTM(in_channels=8, num_bins=5)
    torch.nn.init.normal_(lstm.out.weight)  # a trained residual (a fresh one is zero)
    feats = torch.randn(1, 4, 8, 4, 4)
    logits = torch.zeros(1, 4, 5, 4, 4)
    base, _ = lstm(feats, logits)
    changed = feats.clone()
    changed[:, 1] += 1.0
    out, _ = lstm(changed, logits)
    assert not torch.allclose(out[:, 2], base[:, 2])
    assert torch.equal(out[:, 0], base[:, 0])  # step 0 sees only frame 0
    later = feats.clone()
    later[:, 3] += 1.0
    out, _ = lstm(later, logits)
    assert torch.equal(out[:, :3], base[:, :3])  # causal


def test_streaming_state_equals_one_long_window(gamut):
    torch.manual_seed(0)
    model = create_model(get_preset("exp5").replace(seq_len=3), gamut).eval()
    l_norm = torch.rand(1, 6, 1, 16, 16) - 0.5
    with torch.no_grad():
        whole = model(l_norm).seq_logits
        a = model(l_norm[:, :3])
        b = model(l_norm[:, 3:], a.state)
    assert torch.allclose(torch.cat((a.seq_logits, b.seq_logits), 1), whole, atol=1e-5)
    ab1, state = model.predict_ab(l_norm[:, :3])
    ab2, _ = model.predict_ab(l_norm[:, 3:], state=state)
    ab_all, _ = model.predict_ab(l_norm)
    assert torch.allclose(torch.cat((ab1, ab2), 1), ab_all, atol=1e-4)


def test_predict_ab_full_resolution_any_size(gamut):
    model = create_model(get_preset("exp2"), gamut).eval()
    ab, state = model.predict_ab(torch.rand(1, 2, 1, 30, 44) - 0.5, temperature=0.0)
    assert ab.shape == (1, 2, 2, 30, 44) and state is None
    assert ab.abs().max() <= gamut.centers.abs().max()
    with pytest.raises(VidcolorError, match=r"l_norm: expected shape \(B, T, 1, H, W\)"):
        model(torch.rand(2, 1, 16, 16))
    bare = VideoColorizer(get_preset("exp2"), gamut.num_bins)
    with pytest.raises(VidcolorError, match="bin centers"):
        bare.predict_ab(torch.rand(1, 1, 1, 16, 16))


def test_predict_ab_output_size_upsamples_the_decoded_prediction(gamut):
    """`size` gives the same ab as decoding at the working size and upsampling by hand."""
    import torch.nn.functional as F

    from models.model import final_logits

    model = create_model(get_preset("exp2"), gamut).eval()
    l_norm = torch.rand(1, 2, 1, 32, 48) - 0.5
    ab, _ = model.predict_ab(l_norm, temperature=0.38, size=(96, 144))
    with torch.no_grad():
        logits = final_logits(model(l_norm)).flatten(0, 1)  # (2, Q, 8, 12)
    by_hand = F.interpolate(
        gamut.decode(logits, temperature=0.38), size=(96, 144), mode="bilinear", align_corners=False
    )
    assert ab.shape == (1, 2, 2, 96, 144) and ab.dtype == torch.float32
    assert torch.allclose(ab[0], by_hand, atol=1e-5)


def test_ensemble_averages_probabilities(gamut):
    torch.manual_seed(0)
    members = [create_model(get_preset(n), gamut).eval() for n in ("exp1", "exp2")]
    ens = Ensemble(members).eval()
    assert ens.config.ensemble == ("exp1", "exp2")
    x = torch.rand(1, 2, 1, 16, 16) - 0.5
    with torch.no_grad():
        out = ens(x)
        mean = (torch.softmax(members[0](x).ab_logits, 2) + torch.softmax(members[1](x).ab_logits, 2)) / 2
    assert torch.allclose(out.ab_logits.exp(), mean, atol=1e-6)
    assert final_logits(out) is out.ab_logits
    other = create_model(get_preset("exp1").replace(grid=20), ABGamut(20))
    with pytest.raises(VidcolorError, match="bins"):
        Ensemble([members[0], other])


def test_create_model_rejects_ensemble_and_grid_mismatch(gamut):
    with pytest.raises(VidcolorError, match="ensemble"):
        create_model(get_preset("exp3"), gamut)
    with pytest.raises(VidcolorError, match="grid"):
        create_model(get_preset("exp2").replace(grid=20), gamut)


@pytest.mark.slow
def test_overfit_one_clip_50_steps(gamut, real_data):
    """A tiny exp5 model memorizes one real 3-frame clip: the loss falls clearly."""
    av = pytest.importorskip("av")
    from PIL import Image

    from models.color import frames_to_lab

    frames = []
    with av.open(str(real_data / "cockatoo.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 10 == 0:
                img = frame.to_image().resize((32, 32), Image.BILINEAR)
                frames.append(torch.from_numpy(np.array(img)))
            if len(frames) == 3:
                break
    clip = torch.stack(frames).unsqueeze(0)  # (1, 3, 32, 32, 3) uint8
    l_norm, ab = frames_to_lab(clip)
    ab_gt = downsample_ab(ab)
    torch.manual_seed(0)
    cfg = get_preset("exp5").replace(seq_len=2)
    model = create_model(cfg, gamut).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        loss, _ = colorization_loss(model(l_norm), ab_gt, gamut, None, lam=cfg.lam)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
