"""Tests for minclip/zeroshot.py: classifier maths on hand-built embeddings, top-k accuracy, retrieval recall."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from minclip import CLIP, CLIPConfig
from minclip.data import ShapeWorld
from minclip.data.transforms import clip_preprocess
from minclip.tokenizer import make_tokenizer
from minclip.zeroshot import (accuracy, image_features, logits_accuracy, prompt_ablation, retrieval,
                              shapeworld_zeroshot, zeroshot_classifier)


class FakeTokenizer:
    """Gives each distinct text its own id (in column 0) and remembers which text each id stands for."""

    def __init__(self):
        self.texts = []

    def __call__(self, texts, context_length=77, truncate=False):
        ids = []
        for t in texts:
            if t not in self.texts:
                self.texts.append(t)
            ids.append(self.texts.index(t))
        tokens = torch.zeros(len(texts), context_length, dtype=torch.long)
        tokens[:, 0] = torch.tensor(ids)
        return tokens  # (B, L)


class FakeModel(nn.Module):
    """encode_text looks the text up in `embed(text) -> (E,)`; encode_image is a fixed linear map of the pixels."""

    def __init__(self, tokenizer, embed, E):
        super().__init__()
        self.tokenizer, self.embed, self.embed_dim, self.context_length = tokenizer, embed, E, 8
        self.image_proj = nn.Parameter(torch.eye(E))
        self.modes_seen = []

    def encode_text(self, tokens, normalize=True):
        self.modes_seen.append((self.training, torch.is_grad_enabled()))
        x = torch.stack([self.embed(self.tokenizer.texts[i]) for i in tokens[:, 0].tolist()])
        return F.normalize(x, dim=-1) if normalize else x

    def encode_image(self, images, normalize=True):
        self.modes_seen.append((self.training, torch.is_grad_enabled()))
        x = images.flatten(1) @ self.image_proj  # (B, E)
        return F.normalize(x, dim=-1) if normalize else x


CLASSES = ["cat", "dog", "car"]
TEMPLATES = ["a photo of a {}.", "a drawing of a {}.", "a blurry {}!"]


def one_hot_embed(text, E=8):
    """Class k -> axis k (0..2), template j adds 0.5 on axis 3+j and scales the norm by 1+j (so the ensemble must
    average *normalised* embeddings to come out symmetric)."""
    for k, c in enumerate(CLASSES):
        for j, t in enumerate(TEMPLATES):
            if text == t.replace("{}", c):
                v = torch.zeros(E)
                v[k], v[3 + j] = 1.0, 0.5
                return v * (1 + j)
    raise KeyError(text)


def make(E=8, embed=one_hot_embed):
    tok = FakeTokenizer()
    return FakeModel(tok, embed, E), tok


def test_classifier_known_answer_one_hot_classes():
    model, tok = make()
    W = zeroshot_classifier(model, tok, CLASSES, TEMPLATES)
    assert W.shape == (8, 3)
    assert torch.allclose(W.norm(dim=0), torch.ones(3), atol=1e-6)
    # Class axes stay class axes; the template offsets (3 templates, 0.5 each, equal norms after normalising)
    # average to 0.5/3 on each of axes 3..5. Normalised: class weight 1/sqrt(1 + 3 * (1/6)^2).
    expected = torch.zeros(8, 3)
    expected[:3, :3] = torch.eye(3)
    expected[3:6, :] = 0.5 / 3
    expected = F.normalize(expected, dim=0)
    assert torch.allclose(W, expected, atol=1e-6)
    images = torch.eye(8)[:3].view(3, 2, 4, 1)  # image k is the pure class-k direction
    assert accuracy(model, images, torch.arange(3), W, topk=(1,)) == {1: 1.0}


def test_classifier_averages_normalised_embeddings_then_renormalises():
    g = torch.Generator().manual_seed(0)
    table = {}

    def embed(text):
        if text not in table:
            table[text] = torch.randn(16, generator=g) * (1 + 3 * torch.rand(1, generator=g))
        return table[text]

    model, tok = make(E=16, embed=embed)
    classes = ["red circle", "blue square", "green star", "gray heart"]
    W = zeroshot_classifier(model, tok, classes, TEMPLATES, batch_size=5)  # batches cut across classes
    for k, c in enumerate(classes):
        direct = torch.stack([F.normalize(embed(t.replace("{}", c)), dim=0) for t in TEMPLATES]).mean(0)
        assert torch.allclose(W[:, k], direct / direct.norm(), atol=1e-6)
    raw_mean = torch.stack([embed(t.replace("{}", classes[0])) for t in TEMPLATES]).mean(0)
    assert not torch.allclose(W[:, 0], F.normalize(raw_mean, dim=0), atol=1e-3)  # averaging raw would differ


def test_eval_mode_and_no_grad_then_mode_restored():
    model, tok = make()
    model.train()
    zeroshot_classifier(model, tok, CLASSES, TEMPLATES)
    image_features(model, torch.rand(2, 2, 4, 1))
    assert model.modes_seen and all(m == (False, False) for m in model.modes_seen)
    assert model.training


def test_accuracy_topk_known_ranks_tensor_and_loader():
    # Feature i ranks the classes in a known order; label ranks 0, 1, 4, 5, 0, 2 -> top-1 2/6, top-5 5/6.
    ranks = [0, 1, 4, 5, 0, 2]
    labels = torch.tensor([3, 0, 5, 1, 2, 4])
    feats = torch.zeros(6, 6)
    for i, (r, y) in enumerate(zip(ranks, labels.tolist())):
        order = [c for c in range(6) if c != y]
        order.insert(r, y)  # class order[j] gets score 6 - j
        feats[i, order] = torch.arange(6, 0, -1).float()
    model, _ = make(E=6)
    images = feats.view(6, 3, 2, 1)
    W = torch.eye(6)
    assert accuracy(model, images, labels, W) == pytest.approx({1: 2 / 6, 5: 5 / 6})
    assert accuracy(model, images, labels, W, topk=(1, 2, 3, 10), batch_size=4) == pytest.approx(
        {1: 2 / 6, 2: 3 / 6, 3: 4 / 6, 10: 1.0})
    loader = DataLoader(TensorDataset(images, labels), batch_size=4)
    assert accuracy(model, loader, None, W) == pytest.approx({1: 2 / 6, 5: 5 / 6})


def test_uint8_images_need_preprocess():
    model, _ = make(E=6)
    pixels = torch.randint(0, 256, (4, 3, 2, 1), dtype=torch.uint8)
    with pytest.raises(ValueError, match="preprocess"):
        image_features(model, pixels)
    feats = image_features(model, pixels, preprocess=lambda x: x.float() / 255)
    assert torch.allclose(feats, F.normalize(pixels.flatten(1).float(), dim=1), atol=1e-6)


def test_prompt_ablation_bare_name_vs_templates():
    def embed(text):  # a bare name points half-way to the next class; any template fixes it
        v = torch.zeros(3)
        k = next(k for k, c in enumerate(CLASSES) if c in text)
        v[k] = 1.0
        if text in CLASSES:
            v[(k + 1) % 3] = 1.2
        return v

    model, tok = make(E=3, embed=embed)
    images, labels = torch.eye(3).view(3, 3, 1, 1), torch.arange(3)
    result = prompt_ablation(model, tok, images, labels, CLASSES, TEMPLATES)
    assert list(result) == ["class name", "one template", "ensemble"]
    assert result["class name"] == 0.0 and result["one template"] == 1.0 and result["ensemble"] == 1.0


def test_retrieval_identity_permuted_and_reference():
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(20, 8, generator=g), dim=1)
    assert all(v == 1.0 for v in retrieval(x, x).values())
    perm = torch.randperm(20, generator=g)
    assert all(v == 1.0 for v in retrieval(x, x[perm], text_to_image=perm).values())
    assert retrieval(x, x[perm])["image_to_text_R@1"] == pytest.approx((perm == torch.arange(20)).float().mean())
    # Two noisy captions per image vs a brute-force loop over queries.
    text_to_image = torch.arange(20).repeat(2)
    t = x[text_to_image] + 0.9 * torch.randn(40, 8, generator=g)
    out = retrieval(x, t, text_to_image=text_to_image)
    sim = x @ F.normalize(t, dim=1).T
    for k in (1, 5, 10):
        i2t = sum(bool((text_to_image[sim[i].argsort(descending=True)[:k]] == i).any()) for i in range(20)) / 20
        t2i = sum(int(j) in sim[:, m].argsort(descending=True)[:k].tolist() for m, j in enumerate(text_to_image)) / 40
        assert out[f"image_to_text_R@{k}"] == pytest.approx(i2t)
        assert out[f"text_to_image_R@{k}"] == pytest.approx(t2i)
    assert 0 < out["image_to_text_R@1"] < out["image_to_text_R@10"] <= 1


def test_retrieval_ties_count_against_the_query():
    x = torch.ones(5, 4)
    assert retrieval(x, x)["image_to_text_R@1"] == 0.0 and retrieval(x, x)["text_to_image_R@5"] == 1.0


def test_bad_inputs_have_clear_errors():
    model, tok = make()
    with pytest.raises(ValueError, match="classnames is empty"):
        zeroshot_classifier(model, tok, [], TEMPLATES)
    with pytest.raises(ValueError, match="no '{}'"):
        zeroshot_classifier(model, tok, CLASSES, ["a photo of a cat"])
    with pytest.raises(ValueError, match="templates is empty"):
        zeroshot_classifier(model, tok, CLASSES, [])
    with pytest.raises(ValueError, match="duplicates"):
        zeroshot_classifier(model, tok, ["cat", "dog", "cat"], TEMPLATES)
    W = torch.eye(8)[:, :3]
    images = torch.rand(4, 2, 4, 1)
    with pytest.raises(ValueError, match="as many labels"):
        accuracy(model, images, torch.zeros(3, dtype=torch.long), W)
    with pytest.raises(ValueError, match="3 classes"):
        accuracy(model, images, torch.tensor([0, 1, 2, 7]), W)
    with pytest.raises(ValueError, match="text_to_image"):
        retrieval(torch.randn(3, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match="labels=None"):
        accuracy(model, DataLoader(TensorDataset(images, torch.zeros(4, dtype=torch.long))), torch.zeros(4), W)


@pytest.mark.slow
def test_real_tiny_clip_tokenizer_preprocess_and_shapeworld():
    import minclip
    from minclip.data import ShapeWorld
    from minclip.data.transforms import clip_preprocess

    torch.manual_seed(0)
    model = minclip.CLIP(minclip.CLIPConfig.preset("tiny"))
    world = ShapeWorld(seed=0)
    tokenizer = minclip.CLIPTokenizer.train(world.caption_corpus(n=500), vocab_size=512)  # the tiny preset's vocab
    images, labels, classnames = world.classification("color_shape", split="test", n=64, seed=0)
    W = zeroshot_classifier(model, tokenizer, classnames, ShapeWorld.templates("color_shape"))
    assert W.shape == (model.embed_dim, 64)
    assert torch.allclose(W.norm(dim=0), torch.ones(64), atol=1e-5)
    preprocess = clip_preprocess(32)
    feats = image_features(model, images, preprocess, batch_size=16)
    assert feats.shape == (64, model.embed_dim)
    expected = (feats @ W).argmax(1).eq(labels).float().mean().item()
    assert accuracy(model, images, labels, W, topk=(1,), preprocess=preprocess)[1] == pytest.approx(expected)


def test_retrieval_refuses_non_finite_embeddings():
    # NaN similarities fail every `>=`, so no wrong candidate outranks them: NaN rows used to count as hits
    g = torch.Generator().manual_seed(0)
    images, texts = torch.randn(64, 8, generator=g), torch.randn(64, 8, generator=g)
    images[::2] = float("nan")
    with pytest.raises(ValueError, match=r"image_embeds: 32 of 64 rows hold NaN or inf .*weights diverged"):
        retrieval(images, texts)
    texts[5, 1] = float("inf")
    with pytest.raises(ValueError, match=r"text_embeds: 1 of 64 rows .*row 5\)"):
        retrieval(torch.randn(64, 8, generator=g), texts)
    with pytest.raises(ValueError, match="positive ks"):
        retrieval(texts[:4], texts[:4] + 1, ks=(0, 1))


def test_accuracy_refuses_non_finite_image_embeddings_and_classifier():
    model, _ = make()
    images, labels, W = torch.eye(8)[:3].view(3, 2, 4, 1), torch.arange(3), torch.eye(8)[:, :3]
    nan_images = images.clone()
    nan_images[1] = float("nan")
    with pytest.raises(ValueError, match="the image embeddings: 1 of 3 rows hold NaN"):
        accuracy(model, nan_images, labels, W)
    nan_W = W.clone()
    nan_W[:, 2] = float("nan")
    with pytest.raises(ValueError, match=r"classifier\.T \(one row per class\): 1 of 3 rows .*row 2\)"):
        accuracy(model, images, labels, nan_W)


def test_zeroshot_classifier_refuses_non_finite_text_embeddings():
    model, tok = make(embed=lambda text: torch.full((8,), float("nan")) if "dog" in text else one_hot_embed(text))
    with pytest.raises(ValueError, match=r"mean text embedding per class: 1 of 3 rows .*row 1\).*diverged"):
        zeroshot_classifier(model, tok, CLASSES, TEMPLATES)


def test_one_class_is_refused_because_it_always_scores_1():
    model, tok = make()
    with pytest.raises(ValueError, match="two or more classes, got 1: with one class every prediction is right"):
        zeroshot_classifier(model, tok, ["cat"], TEMPLATES)
    with pytest.raises(ValueError, match="two or more classes, got 1"):
        prompt_ablation(model, tok, torch.rand(2, 2, 4, 1), torch.zeros(2, dtype=torch.long), ["cat"], TEMPLATES)
    with pytest.raises(ValueError, match="two or more classes, got 1"):  # a hand-made (E, 1) classifier
        accuracy(model, torch.rand(4, 2, 4, 1), torch.zeros(4, dtype=torch.long), torch.eye(8)[:, :1])


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_blank_class_names_are_refused_by_index(blank):
    model, tok = make()
    with pytest.raises(ValueError, match=r"classnames\[1\] is .*a blank name.*name it or drop the class"):
        zeroshot_classifier(model, tok, ["cat", blank, "car"], TEMPLATES)


def test_logits_accuracy_known_ranks_and_the_float32_mean_every_site_reported():
    logits = torch.tensor([[3., 2., 1.], [1., 3., 2.], [1., 2., 3.]])  # (B, K) = (3, 3)
    labels = torch.tensor([0, 2, 1])  # ranks 1, 2, 2
    assert logits_accuracy(logits, labels, topk=(1, 2, 3, 9)) == pytest.approx({1: 1 / 3, 2: 1.0, 3: 1.0, 9: 1.0})
    # one third is not a float64 third: it is the float32 one that (argmax == labels).float().mean() gives
    assert logits_accuracy(logits, labels)[1] == (logits.argmax(1) == labels).float().mean().item() != 1 / 3
    with pytest.raises(ValueError, match="labels run from"):
        logits_accuracy(logits, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match=r"\(B, K\) with labels \(B,\)"):
        logits_accuracy(logits, labels[:2])


def test_accuracy_and_prompt_ablation_give_logits_accuracy_numbers():
    def embed(text):  # any prompt or bare name of a class -> a fixed random (E,) vector
        k = next(k for k, c in enumerate(CLASSES) if c in text)
        return torch.randn(8, generator=torch.Generator().manual_seed(100 * k + len(text)))

    model, tok = make(embed=embed)
    images = torch.rand(7, 2, 4, 1, generator=torch.Generator().manual_seed(0))  # (B, 2, 4, 1): E = 8 pixels
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    W = zeroshot_classifier(model, tok, CLASSES, TEMPLATES)  # (E, K)
    direct = logits_accuracy(image_features(model, images) @ W, labels, topk=(1, 2))
    assert accuracy(model, images, labels, W, topk=(1, 2), batch_size=3) == direct
    assert prompt_ablation(model, tok, images, labels, CLASSES, TEMPLATES)["ensemble"] == direct[1]


def test_shapeworld_zeroshot_is_the_training_loops_old_zeroshot_to_the_bit():
    """It replaces PairSource.zeroshot (minclip/pairs.py): the expected numbers are that method's formula, argmax ==
    label averaged in float32, on a random tiny CLIP whose hits (1 and 4 of 96) are not dyadic fractions."""
    config = CLIPConfig.preset("tiny")
    torch.manual_seed(2)
    model = CLIP(config).train()
    tok, preprocess, world = make_tokenizer(config), clip_preprocess(32), ShapeWorld(seed=0, image_size=32)
    got = shapeworld_zeroshot(model, tok, preprocess, world, n=96, seed=3)
    assert model.training  # the mode it came in with, restored
    expected = {}
    with torch.no_grad():
        for split, name in (("test", "seen"), ("unseen", "unseen")):
            x, y, names = world.classification("color_shape", split=split, domain="photo", n=96, seed=3)
            W = zeroshot_classifier(model.eval(), tok, names, ShapeWorld.templates("color_shape"))  # (E, K)
            expected[name] = ((image_features(model, x, preprocess) @ W).argmax(1) == y).float().mean().item()
    assert got == expected and min(got.values()) > 0
    assert shapeworld_zeroshot(model.eval(), tok, preprocess, world, n=96, seed=3) == got and not model.training
