"""Import of the official ECCV16 weights: a reference network with the release's layout is built
here (nothing can be downloaded), its state dict saved as .pth, imported, and outputs compared."""

import pytest
import torch
from torch import nn

from models import eccv16
from models.checkpoint import load_checkpoint
from models.errors import VidcolorError
from models.gamut import ABGamut


def _block(c_in, c_out, n, stride=1, dilation=1):
    layers = []
    for i in range(n):
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, stride if i == n - 1 else 1, dilation, dilation),
            nn.ReLU(True),
        ]
    return nn.Sequential(*layers, nn.BatchNorm2d(c_out))


class ReferenceECCV16(nn.Module):
    """The layout of richzhang/colorization's eccv16 generator (model1 ... model8, model_out)."""

    def __init__(self, centers):
        super().__init__()
        self.model1 = _block(1, 64, 2, stride=2)
        self.model2 = _block(64, 128, 2, stride=2)
        self.model3 = _block(128, 256, 3, stride=2)
        self.model4 = _block(256, 512, 3)
        self.model5 = _block(512, 512, 3, dilation=2)
        self.model6 = _block(512, 512, 3, dilation=2)
        self.model7 = _block(512, 512, 3)
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(512, 256, 4, 2, 1),
            nn.ReLU(True),
            nn.Conv2d(256, 256, 3, 1, 1),
            nn.ReLU(True),
            nn.Conv2d(256, 256, 3, 1, 1),
            nn.ReLU(True),
            nn.Conv2d(256, 313, 1),
        )
        self.model_out = nn.Conv2d(313, 2, 1, bias=False)
        with torch.no_grad():
            self.model_out.weight.copy_((centers / 110.0).T.reshape(2, 313, 1, 1))

    def forward(self, l_norm):
        x = l_norm
        for i in range(1, 9):
            x = getattr(self, f"model{i}")(x)
        ab = self.model_out(torch.softmax(x, dim=1))
        return nn.functional.interpolate(ab, scale_factor=4, mode="bilinear") * 110.0


def _fake_release_centers():
    centers = ABGamut(10).centers  # 309 grid-10 points; pad to the release's 313 with 4 more
    extra = torch.tensor([[-110.0, 90.0], [100.0, -110.0], [100.0, 100.0], [-100.0, -100.0]])
    return torch.cat((centers, extra))


@pytest.mark.slow
def test_import_matches_reference_network(tmp_path):
    torch.manual_seed(0)
    ref = ReferenceECCV16(_fake_release_centers()).eval()
    with torch.no_grad():  # BN statistics that are not the defaults
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    pth = tmp_path / eccv16.RELEASE_NAME
    state = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, pth)
    assert eccv16.import_eccv16(pth, tmp_path / "ck")[0] == tmp_path / "ck"
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.config.size == "base" and loaded.gamut.num_bins == 313 and loaded.gamut.grid == 10
    assert torch.equal(loaded.gamut.centers, _fake_release_centers())
    assert loaded.meta["extra"]["source"] == "eccv16"
    l_norm = torch.rand(1, 1, 32, 32) - 0.5
    with torch.no_grad():
        expected = ref(l_norm)
        ab, _ = loaded.model.predict_ab(l_norm.unsqueeze(1), temperature=1.0)
    assert torch.allclose(ab[:, 0], expected, atol=1e-3)


def test_key_mapping_and_bad_files(tmp_path):
    assert eccv16.rename_key("model1.0.weight") == "colorizer.trunk.0.0.weight"
    assert eccv16.rename_key("model3.6.running_var") == "colorizer.trunk.2.6.running_var"
    assert eccv16.rename_key("model8.0.weight") == "colorizer.up.0.weight"
    assert eccv16.rename_key("model8.6.bias") == "colorizer.head.bias"
    assert eccv16.rename_key("model_out.weight") is None
    with pytest.raises(VidcolorError, match="file not found"):
        eccv16.import_eccv16(tmp_path / "missing.pth", tmp_path / "out")
    bad = tmp_path / "bad.pth"
    torch.save({"model_out.weight": torch.zeros(2, 313, 1, 1), "model1.0.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(VidcolorError, match=r"model1.0.weight has shape \[3, 3\]"):
        eccv16.import_eccv16(bad, tmp_path / "out")
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(VidcolorError, match="model_out.weight"):
        eccv16.import_eccv16(bad, tmp_path / "out")
    (tmp_path / "pickle.pth").write_bytes(b"not a zip file")
    with pytest.raises(VidcolorError, match="weights-only"):
        eccv16.import_eccv16(tmp_path / "pickle.pth", tmp_path / "out")
    assert not (tmp_path / "out").exists()
