"""minclip/pretrained.py: open_clip models with random weights give the same embeddings after conversion."""
import logging

import pytest
import torch
import torch.nn.functional as F

open_clip = pytest.importorskip("open_clip")
from minclip.pretrained import from_open_clip, to_open_clip  # noqa: E402

logging.getLogger().setLevel(logging.ERROR)  # open_clip warns that no pretrained weights were loaded: intended
PAIRS = [("ViT-B-32-quickgelu", "vit-b-32"), ("ViT-B-16-quickgelu", "vit-b-16"), ("RN50-quickgelu", "rn50")]


@pytest.fixture(scope="module")
def text():
    captions = ["a photo of a dog", "two red circles, on the left!", "", "naïve café 😀 " * 5]
    return open_clip.get_tokenizer("ViT-B-32")(captions)


@pytest.mark.slow
@pytest.mark.parametrize("oc_name, preset", PAIRS)
def test_embeddings_equal_open_clip(oc_name, preset, text):
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
def test_load_from_file_checks_keys(tmp_path, text):
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
