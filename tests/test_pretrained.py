"""minclip/pretrained.py: open_clip models with random weights give the same embeddings after conversion, and
files that could run code (TorchScript) are refused unless the caller trusts them."""
import logging
from typing import Tuple

import pytest
import torch
import torch.nn.functional as F

from minclip import CLIP, CLIPConfig
from minclip.pretrained import from_open_clip, load_state_dict, to_open_clip

logging.getLogger().setLevel(logging.ERROR)  # open_clip warns that no pretrained weights were loaded: intended
PAIRS = [("ViT-B-32-quickgelu", "vit-b-32"), ("ViT-B-16-quickgelu", "vit-b-16"), ("RN50-quickgelu", "rn50")]


@pytest.fixture(scope="module")
def open_clip():
    return pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def text(open_clip):
    captions = ["a photo of a dog", "two red circles, on the left!", "", "naïve café 😀 " * 5]
    return open_clip.get_tokenizer("ViT-B-32")(captions)


@pytest.mark.slow
@pytest.mark.parametrize("oc_name, preset", PAIRS)
def test_embeddings_equal_open_clip(oc_name, preset, text, open_clip):
    torch.manual_seed(0)
    ref = open_clip.create_model(oc_name, pretrained=None).eval()
    mine = from_open_clip(ref.state_dict(), preset).eval()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        di = (F.normalize(ref.encode_image(images), dim=-1) - mine.encode_image(images)).abs().max()
        dt = (F.normalize(ref.encode_text(text), dim=-1) - mine.encode_text(text)).abs().max()
        # unnormalised too: the projections must match, not just the directions
        du = (ref.encode_text(text) - mine.encode_text(text, normalize=False)).abs().max()
        # and the logit scale the loss receives
        ds = (ref(images, text)[2] - mine(images, text).logit_scale).abs()
    assert max(di, dt, ds) <= 1e-5 and du <= 1e-4
    back = to_open_clip(mine)
    assert set(back) == set(ref.state_dict())
    assert all(torch.equal(back[k], v) for k, v in ref.state_dict().items())
    ref.load_state_dict(back)  # open_clip itself accepts the round trip


@pytest.mark.slow
def test_load_from_file_checks_keys(tmp_path, text, open_clip):
    torch.manual_seed(0)
    ref = open_clip.create_model("RN50-quickgelu", pretrained=None).eval()
    sd = ref.state_dict()
    # an open_clip training checkpoint: {"state_dict": ...} with DDP's "module." prefix
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "ckpt.pt")
    mine = from_open_clip(tmp_path / "ckpt.pt", "rn50").eval()
    with torch.no_grad():
        torch.testing.assert_close(mine.encode_text(text), F.normalize(ref.encode_text(text), dim=-1),
                                   atol=1e-5, rtol=0)
    broken = {k: v for k, v in sd.items() if not k.startswith("visual.attnpool")}
    broken["visual.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="missing .*attnpool.*unexpected .*visual.extra.weight"):
        from_open_clip(broken, "rn50")
    with pytest.raises(ValueError, match="missing"):
        from_open_clip(sd, "vit-b-32")  # the wrong preset


def test_wrong_shapes_are_named():
    """Same keys, other sizes (patch 8 weights into a patch 4 ViT): the ValueError names the tensors that do not fit."""
    config = CLIPConfig.preset("tiny")
    state_dict = to_open_clip(CLIP(config))
    config.vision.patch_size = 4
    with pytest.raises(ValueError, match=r"a custom config .*wrong shape \(file vs model\) .*"
                                         r"visual.conv1.weight \(96, 3, 8, 8\) vs \(96, 3, 4, 4\)"):
        from_open_clip(state_dict, config)


class WritesOnLoad(torch.nn.Module):
    """A TorchScript module whose __setstate__, which torch.jit.load runs, writes into the file `target`: any code
    could stand there."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target
        self.register_buffer("weight", torch.zeros(2))

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:
        return self.target, self.training

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:
        self.target, self.training = state
        self.weight = torch.from_file(self.target, shared=True, size=2, dtype=torch.uint8).fill_(1).float()

    def forward(self, x):
        return x + self.weight


def test_torchscript_runs_only_when_allowed(tmp_path):
    marker, path = tmp_path / "marker", tmp_path / "model.pt"
    marker.write_bytes(b"\0\0")
    torch.jit.save(torch.jit.script(WritesOnLoad(str(marker))), path)
    with pytest.raises(ValueError, match="TorchScript archives can run code on load.*allow_torchscript=True"):
        load_state_dict(path)
    with pytest.raises(ValueError, match="OpenAI's original .pt files are TorchScript"):
        from_open_clip(path, "tiny")
    assert marker.read_bytes() == b"\0\0"  # nothing ran
    # The caller says the file is trusted: it loads, and its __setstate__ did run
    assert torch.equal(load_state_dict(path, allow_torchscript=True)["weight"], torch.ones(2))
    assert marker.read_bytes() == b"\1\1"
