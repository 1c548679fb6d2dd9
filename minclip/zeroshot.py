"""Zero-shot classification and retrieval: a classifier built from class names alone, with no training.

CLIP §3.1.2: each class name is written into a caption ("a photo of a {}."), the text tower embeds it, and an
image is assigned to the class whose caption it is most similar to. The text embeddings are the weights of a
linear classifier on the image embeddings, a classifier "trained" by reading.

    classifier = zeroshot_classifier(model, tokenizer, classnames, ShapeWorld.templates("color_shape"))  # (E, K)
    accuracy(model, images, labels, classifier, preprocess=preprocess)  # {1: 0.93, 5: 0.99}
    logits_accuracy(image_features(model, images, preprocess) @ classifier, labels)  # {1: 0.93}: (B, E) @ (E, K)

Every zero-shot accuracy in minclip and baselines/ goes through logits_accuracy, so that all report one number.

Models that predict text instead of embedding it (the captioning and bag-of-words models of CLIP's Fig. 2,
baselines/) classify the way the paper scores them: each class's prompts by their log-likelihood given the image.
Such a model has `prompt_log_likelihood(images, tokens) -> (B, M)`, and zeroshot_logits takes that path for it:

    zeroshot_logits(model, tokenizer, images, classnames, templates, preprocess)   # (B, K), for either kind
"""
from contextlib import contextmanager
from typing import Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


@contextmanager
def _inference(model):
    """Eval mode (no dropout) and no autograd for the duration; yields the model's device; restores the mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield next(model.parameters(), torch.empty(0)).device
    finally:
        model.train(was_training)


DIVERGED = "likely cause: the model's weights diverged (check the checkpoint: did its training loss stay finite?)"


def check_finite(x: Tensor, name: str, cause: str = DIVERGED) -> None:
    """Refuse a (B, D) tensor with NaN or inf rows: they would be scored (a NaN similarity ranks like a hit in a
    top-k, and a probe fits them) instead of failing. It reads every value, so on a GPU it waits for the device:
    fine once per evaluation batch, not in a training step."""
    bad = ~torch.isfinite(x).all(dim=1)  # (B,)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} of {len(x)} rows hold NaN or inf values (the first is row "
                         f"{int(bad.nonzero()[0])}); {cause}")


def _check_classes(K: int) -> None:
    if K < 2:
        raise ValueError(f"zero-shot classification needs two or more classes, got {K}: with one class every "
                         "prediction is right, so accuracy would be 1.0 whatever the model")


def _check_prompts(classnames: list, templates: list) -> None:
    if not classnames:
        raise ValueError("classnames is empty; pass one name per class, e.g. ['red circle', 'blue square']")
    if not all(isinstance(c, str) for c in classnames):
        raise TypeError(f"classnames must be strings, got {[type(c).__name__ for c in classnames][:5]}")
    blank = [i for i, c in enumerate(classnames) if not c.strip()]
    if blank:
        raise ValueError(f"classnames[{blank[0]}] is {classnames[blank[0]]!r}, a blank name; every class needs a name "
                         "for its prompts (e.g. 'red circle'): name it or drop the class")
    _check_classes(len(classnames))
    if len(set(classnames)) != len(classnames):
        doubles = sorted({c for c in classnames if classnames.count(c) > 1})
        raise ValueError(f"classnames has duplicates {doubles}; two classes with one name cannot be told apart")
    if not templates:
        raise ValueError("templates is empty; pass at least one, e.g. ['a photo of a {}.'] (['{}']: the bare name)")
    for t in templates:
        if "{}" not in t:
            raise ValueError(f"template {t!r} has no '{{}}' where the class name goes; write e.g. 'a photo of a {{}}.'")


def zeroshot_classifier(model, tokenizer, classnames: Sequence[str], templates: Sequence[str],
                        batch_size: int = 256) -> Tensor:
    """Zero-shot classifier weights from prompt ensembles (CLIP §3.1.4).

    Every template is filled with every class name and embedded (L2-normalised); the T embeddings of a class are
    averaged and the mean renormalised. Averaging in embedding space costs nothing at test time, unlike averaging
    predictions, and gave +3.5% on ImageNet with 80 templates.

    Args: classnames (K names), templates (T strings with "{}").
    Returns: (E, K) weights on the model's device; `image_features(...) @ weights` are cosine-similarity logits.
    """
    classnames, templates = list(classnames), list(templates)
    _check_prompts(classnames, templates)
    K, T = len(classnames), len(templates)
    texts = [t.replace("{}", c) for c in classnames for t in templates]  # class-major: K*T prompts
    with _inference(model) as device:
        tokens = tokenizer(texts, context_length=model.context_length, truncate=True)  # (K*T, L)
        embeds = torch.cat([model.encode_text(chunk.to(device), normalize=True)
                            for chunk in tokens.split(batch_size)])  # (K*T, E)
    class_means = embeds.float().view(K, T, -1).mean(dim=1)  # (K, E)
    check_finite(class_means, "the mean text embedding per class")
    return F.normalize(class_means, dim=-1).T  # (E, K)


def scores_likelihood(model) -> bool:
    """Does the model classify by the likelihood of prompts (a captioning or bag-of-words model), not by embeddings?"""
    return hasattr(model, "prompt_log_likelihood")


def prompt_likelihoods(model, tokenizer, images: Tensor, classnames: Sequence[str], templates: Sequence[str],
                       preprocess=None, pairs: int = 4096) -> Tensor:
    """Zero-shot scores of a model that predicts text: the mean over templates of log p(prompt | image).

    For class k the score is (1/T) sum_t log p(template_t(name_k) | image), the log of the geometric mean of its
    prompts' likelihoods: averaging log-likelihoods is the likelihood model's version of averaging text embeddings.
    Every (image, prompt) pair is scored, so images and prompts go through in chunks of about `pairs` pairs.
    Returns: (B, K) on the CPU.
    """
    classnames, templates = list(classnames), list(templates)
    _check_prompts(classnames, templates)
    K, T = len(classnames), len(templates)
    texts = [t.replace("{}", c) for c in classnames for t in templates]  # class-major: K*T prompts
    rows = []
    with _inference(model) as device:
        tokens = tokenizer(texts, context_length=model.context_length, truncate=True).to(device)  # (K*T, L)
        for chunk in torch.as_tensor(images).split(max(1, pairs // len(texts))):
            chunk = chunk.to(device)
            chunk = preprocess(chunk) if preprocess is not None else chunk
            # at most about `pairs` pairs a forward: with more prompts than that (ImageNet: 80,000), one image at a
            # time against chunks of the prompts
            rows.append(torch.cat([model.prompt_log_likelihood(chunk, part).float().cpu()
                                   for part in tokens.split(pairs)], dim=1))  # (b, K*T)
    scores = torch.cat(rows).view(-1, K, T).mean(dim=2)  # (B, K)
    check_finite(scores, "the prompts' log-likelihoods")
    return scores


def zeroshot_logits(model, tokenizer, images: Tensor, classnames: Sequence[str], templates: Sequence[str],
                    preprocess=None, features: Optional[Tensor] = None) -> Tensor:
    """Zero-shot class scores (B, K) for any model that reads text: cosine similarity to the prompt-ensemble
    classifier (CLIP, SigLIP, LiT, bag-of-words CLIP), or prompt log-likelihoods (captioning, bag-of-words
    prediction). features: the images' (B, E) embeddings, if already computed (embedding models only)."""
    if scores_likelihood(model):
        return prompt_likelihoods(model, tokenizer, images, classnames, templates, preprocess)
    if features is None:
        features = image_features(model, torch.as_tensor(images), preprocess=preprocess)  # (B, E)
    return features @ zeroshot_classifier(model, tokenizer, classnames, templates).to(features)  # (B, E) @ (E, K)


def image_features(model, images: Tensor, preprocess=None, batch_size: int = 256) -> Tensor:
    """L2-normalised image embeddings, computed in batches without gradients.

    Args: images (B, 3, H, W), uint8 pixels (then `preprocess` is required) or floats the model accepts as they are;
        preprocess, when given, is applied to every batch on the model's device.
    Returns: (B, E) on the model's device.
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images should be a (B, 3, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if images.dtype == torch.uint8 and preprocess is None:
        raise ValueError("images are uint8 pixels; pass preprocess= (the one minclip.load returns) to turn them "
                         "into the float input the model expects")
    with _inference(model) as device:
        feats = []
        for chunk in images.split(batch_size):
            chunk = chunk.to(device)
            if preprocess is not None:
                chunk = preprocess(chunk)
            feats.append(model.encode_image(chunk, normalize=True).float())  # (B, E)
    feats = torch.cat(feats)  # (B, E)
    check_finite(feats, "the image embeddings")
    return feats


def _check_topk(topk: Sequence[int]) -> tuple:
    topk = tuple(topk)
    if not topk or min(topk) < 1:
        raise ValueError(f"topk should hold positive ks, e.g. (1, 5); got {topk}")
    return topk


def _topk_hits(logits: Tensor, labels: Tensor, topk: Sequence[int]) -> Tensor:
    """How many rows have their label among the k largest logits, for each k: (len(topk),)."""
    K = logits.shape[1]
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < K:
        raise ValueError(f"labels run from {int(labels.min())} to {int(labels.max())} but the classifier has {K} "
                         f"classes; labels must index classnames (0..{K - 1})")
    top = logits.topk(min(max(topk), K), dim=1).indices  # (B, max k)
    correct = top == labels.to(top.device)[:, None]  # (B, max k)
    return torch.stack([correct[:, :k].any(dim=1).sum() for k in topk]).cpu()


def _fractions(hits: Tensor, n: int, topk: tuple) -> dict:
    """{k: hits / n}, divided in float32: the number `(predicted == labels).float().mean()` gives, which the
    training log and the baselines have always reported."""
    if n == 0:
        raise ValueError("no images to evaluate; the images or the loader are empty")
    return dict(zip(topk, (hits.float() / n).tolist()))


def logits_accuracy(logits: Tensor, labels: Tensor, topk: Sequence[int] = (1,)) -> dict:
    """Top-k accuracy of classifier scores: the one place a zero-shot (or any) logit matrix becomes an accuracy.

    Args: logits (B, K), one score per class, e.g. `image_features(...) @ classifier`, (B, E) @ (E, K);
        labels (B,), class indices 0..K-1. A k above K counts every row correct.
    Returns: {k: fraction of rows whose label is among the k highest logits}.
    """
    topk = _check_topk(topk)
    labels = torch.as_tensor(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits should be (B, K) with labels (B,), got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    return _fractions(_topk_hits(logits, labels, topk), len(labels), topk)


def mean_per_class_recall(logits: Tensor, labels: Tensor) -> float:
    """The mean over classes of the fraction of each class's rows predicted right: what the CLIP paper reports for
    Pets, Caltech-101, Flowers 102 and FGVC Aircraft (Table 9), where classes differ in size. Classes absent from
    labels are not averaged. logits (B, K), labels (B,) in 0..K-1."""
    labels = torch.as_tensor(labels).cpu()
    logits_accuracy(logits, labels)  # the same checks on the shapes and the label range
    hit = (logits.argmax(dim=1).cpu() == labels).float()  # (B,)
    K = logits.shape[1]
    hits, counts = torch.zeros(K).index_add_(0, labels, hit), torch.bincount(labels, minlength=K).float()
    present = counts > 0
    return (hits[present] / counts[present]).mean().item()


def classification_metrics(logits: Tensor, labels: Tensor) -> dict:
    """The three numbers CLIP_benchmark reports for a classifier's scores (B, K) against labels (B,): top-1 and
    top-5 accuracy (top-5 is None when there are 5 classes or fewer: every row would count) and mean per-class
    recall."""
    top = logits_accuracy(logits, labels, topk=(1, 5))
    return {"top1": top[1], "top5": top[5] if logits.shape[1] > 5 else None,
            "mean_per_class_recall": mean_per_class_recall(logits, labels)}


def accuracy(model, images_or_loader, labels: Optional[Tensor], classifier: Tensor, topk: Sequence[int] = (1, 5),
             preprocess=None, batch_size: int = 256) -> dict:
    """Top-k accuracy of a bias-free linear classifier on normalised image embeddings, e.g. zeroshot_classifier's.

    Args: images_or_loader, images (B, 3, H, W) with labels (B,), or an iterable of (images, labels) batches (a
        DataLoader) with labels=None; classifier (E, K). A k above K counts every image correct.
    Returns: {k: fraction of images whose label is among the k highest logits}, as logits_accuracy.
    """
    topk = _check_topk(topk)
    if classifier.ndim != 2:
        raise ValueError(f"classifier should be (E, K), one column per class, got shape {tuple(classifier.shape)}")
    _check_classes(classifier.shape[1])
    check_finite(classifier.T, "classifier.T (one row per class)")
    if isinstance(images_or_loader, Tensor):
        if labels is None or len(labels) != len(images_or_loader):
            raise ValueError(f"{len(images_or_loader)} images need as many labels, got "
                             f"{None if labels is None else len(labels)}")
        batches: Iterable = zip(images_or_loader.split(batch_size), labels.split(batch_size))
    elif labels is not None:
        raise ValueError("a loader yields its own labels; pass labels=None with a loader")
    else:
        batches = images_or_loader
    # hits are summed batch by batch, so that a loader's logits never have to sit in memory at once
    hits, n = torch.zeros(len(topk), dtype=torch.long), 0
    for images, y in batches:
        feats = image_features(model, images, preprocess, batch_size)  # (B, E)
        hits += _topk_hits(feats @ classifier.to(feats), torch.as_tensor(y), topk)  # logits (B, K)
        n += len(y)
    return _fractions(hits, n, topk)


def shapeworld_zeroshot(model, tokenizer, preprocess, world, n: int = 500, seed: int = 12345) -> dict:
    """Top-1 zero-shot accuracy on fresh 64-class colour-shape photos: on pairs training captions ("seen") and on
    the pairs it holds out ("unseen"). Naming a held-out pair needs the colour and the shape learned apart and
    composed, the generalisation zero-shot transfer is for (CLIP §3.1). Training logs it at every evaluation.

    Args: world, the run's ShapeWorld (it decides which pairs are held out); n images per split, drawn with seed.
    Returns: {"seen": accuracy, "unseen": accuracy}.
    """
    result = {}
    with _inference(model):
        for split, name in (("test", "seen"), ("unseen", "unseen")):
            x, y, classnames = world.classification("color_shape", split=split, domain="photo", n=n, seed=seed)
            logits = zeroshot_logits(model, tokenizer, x, classnames, world.templates("color_shape"), preprocess)
            result[name] = logits_accuracy(logits, y)[1]  # (n, K)
    return result


def prompt_ablation(model, tokenizer, images: Tensor, labels: Tensor, classnames: Sequence[str],
                    templates: Sequence[str], preprocess=None) -> dict:
    """Top-1 accuracy with the bare class name, one template, and the whole ensemble (CLIP §3.1.4).

    The paper: "A photo of a {label}." gains 1.3% on ImageNet over the bare name; the 80-template ensemble a
    further 3.5%. Image features are computed once and shared by the three classifiers.
    Returns: {"class name": acc, "one template": acc, "ensemble": acc}.
    """
    templates = list(templates)
    _check_prompts(list(classnames), templates)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images need as many labels, got {len(labels)}")
    feats = None if scores_likelihood(model) else image_features(model, images, preprocess)  # (B, E), shared
    prompts = {"class name": ["{}"], "one template": templates[:1], "ensemble": templates}
    return {name: logits_accuracy(zeroshot_logits(model, tokenizer, images, classnames, t, preprocess, feats),
                                  labels)[1] for name, t in prompts.items()}


def retrieval(image_embeds: Tensor, text_embeds: Tensor, text_to_image: Optional[Tensor] = None,
              ks: Sequence[int] = (1, 5, 10)) -> dict:
    """Recall@k for image->text and text->image retrieval by cosine similarity (CLIP §3.1 / Table 13).

    Args: image_embeds (B, E); text_embeds (M, E); text_to_image (M,), the image each caption describes (default:
        caption i describes image i, so M == B).
    Image->text: an image counts as found at k if any of its captions is among its k most similar texts.
    Text->image: a caption counts if its image is among its k most similar images. Ties count against the query
    (a wrong candidate scoring equal to the right one ranks ahead of it), so constant embeddings score 0, not 1.
    Returns: {"image_to_text_R@k": fraction, "text_to_image_R@k": fraction} for each k.
    """
    for x, name in ((image_embeds, "image_embeds"), (text_embeds, "text_embeds")):
        if not isinstance(x, Tensor) or x.ndim != 2:
            raise ValueError(f"{name} should be a (B, E) tensor, got {getattr(x, 'shape', type(x))}")
        check_finite(x, name)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks should hold positive ks, e.g. (1, 5, 10); got {tuple(ks)}")
    B, M = len(image_embeds), len(text_embeds)
    if text_to_image is None:
        if B != M:
            raise ValueError(f"{B} images and {M} captions: pass text_to_image (M,) saying which image each caption "
                             "describes")
        text_to_image = torch.arange(B)
    text_to_image = torch.as_tensor(text_to_image, device=image_embeds.device)
    if text_to_image.shape != (M,) or (M and not 0 <= int(text_to_image.min()) <= int(text_to_image.max()) < B):
        raise ValueError(f"text_to_image should be (M,) = ({M},) image indices in 0..{B - 1}")
    if image_embeds.shape[1] != text_embeds.shape[1]:
        raise ValueError(f"image_embeds have E={image_embeds.shape[1]}, text_embeds E={text_embeds.shape[1]}")
    sim = F.normalize(image_embeds.float(), dim=1) @ F.normalize(text_embeds.float(), dim=1).T  # (B, M)
    match = text_to_image[None, :] == torch.arange(B, device=sim.device)[:, None]  # (B, M): caption j is of image i
    # Rank of the best right answer = the number of wrong candidates scoring at least as high.
    best_caption = sim.masked_fill(~match, float("-inf")).max(dim=1, keepdim=True).values  # (B, 1)
    image_rank = ((sim >= best_caption) & ~match).sum(dim=1)  # (B,)
    right_image = sim.gather(0, text_to_image[None, :])  # (1, M)
    text_rank = ((sim >= right_image) & ~match).sum(dim=0)  # (M,)
    out = {f"image_to_text_R@{k}": (image_rank < k).float().mean().item() for k in ks}
    out.update({f"text_to_image_R@{k}": (text_rank < k).float().mean().item() for k in ks})
    return out
