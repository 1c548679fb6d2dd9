"""The course's exercises (minclip/exercises, scripts/make_student.py): every solution passes its check, every
student stub fails it with a helpful message, and the committed student copies are up to date.

Convention (see notebooks/README.md): an exercise cell is self-contained (its own imports and inputs), holds its
solution between `### BEGIN SOLUTION` and `### END SOLUTION`, and ends by calling `check_<name>(...)`.
"""
import sys
from pathlib import Path

import nbformat
import torch
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_student import SOLUTION, handout, student_notebook, stub  # noqa: E402

from minclip.exercises import ExerciseError  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CELLS = [(nb.stem, i, cell.source) for nb in NOTEBOOKS
         for i, cell in enumerate(nbformat.read(nb, as_version=4).cells)
         if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source]
IDS = [f"{name}-cell{i}" for name, i, _ in CELLS]


def run(source: str) -> None:
    exec(compile(source, "<exercise cell>", "exec"), {"__name__": "__exercise__"})


def test_every_notebook_has_three_checked_exercises():
    for nb in NOTEBOOKS:
        cells = [s for name, _, s in CELLS if name == nb.stem]
        assert len(cells) >= 3, f"{nb.name} has {len(cells)} exercise cells, want >= 3"
        assert all("check_" in s for s in cells), f"{nb.name}: an exercise cell does not call a check_ function"


@pytest.mark.parametrize("name, index, source", CELLS, ids=IDS)
def test_solution_passes_its_check(name, index, source, capsys):
    run(source)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("name, index, source", CELLS, ids=IDS)
def test_stub_fails_with_a_helpful_message(name, index, source):
    with pytest.raises(ExerciseError) as error:
        run(stub(source))
    assert "not implemented yet" in str(error.value)


def test_student_copies_are_current():
    for nb in NOTEBOOKS:
        copy = ROOT / "notebooks" / "student" / nb.name
        assert copy.exists(), f"no student copy of {nb.name}: run `make student`"
        want = [c.source for c in student_notebook(nb).cells]
        got = [c.source for c in nbformat.read(copy, as_version=4).cells]
        assert got == want, f"{copy} is stale: run `make student`"
        assert not any(c.get("outputs") for c in nbformat.read(copy, as_version=4).cells if c.cell_type == "code")


def test_the_handout_holds_no_solution_and_its_badges_open_it(tmp_path):
    out = handout(tmp_path / "handout", colab="teacher/course/blob/main/notebooks", wheel=False)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(["README.md", "report/results.json"] + [f"notebooks/{nb.name}" for nb in NOTEBOOKS]), files
    assert (tmp_path / "handout.zip").stat().st_size > 0
    for nb in NOTEBOOKS:
        solution = nbformat.read(nb, as_version=4).cells
        given = nbformat.read(out / "notebooks" / nb.name, as_version=4).cells
        assert len(given) == len(solution)
        text = (out / "notebooks" / nb.name).read_text()
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, nb.name
        for mine, theirs in zip(solution, given):
            assert not theirs.get("outputs"), f"{nb.name}: an output (maybe an answer) reached the hand-out"
            for block in SOLUTION.finditer(mine.source):
                lines = [line.strip() for line in block.group(0).splitlines()[1:-1] if len(line.strip()) > 12]
                leaked = [line for line in lines if line in theirs.source]
                assert not leaked, f"{nb.name}: solution lines reached the hand-out: {leaked}"
        badges = [c.source for c in given if "colab.research.google.com" in c.source]
        assert badges and all(f"github/teacher/course/blob/main/notebooks/{nb.name}" in b for b in badges), nb.name


def test_stub_keeps_indentation():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\ncheck(f)\n"
    assert stub(src) == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError(\"exercise\")\ncheck(f)\n"


def test_nearest_neighbour_checks_explain_the_usual_mistakes():
    from minclip.exercises.prompts import check_zeroshot_predict
    from minclip.exercises.quickstart import check_retrieval
    with pytest.raises(ExerciseError, match="plain dot products: normalise the image embeddings"):
        check_retrieval(lambda images, texts: (texts @ images.T).argmax(dim=1))
    with pytest.raises(ExerciseError, match="plain dot products: normalise the class embeddings"):
        check_zeroshot_predict(lambda images, classes: (images @ classes.T).argmax(dim=1))
    with pytest.raises(ExerciseError, match=r"one image index per caption, shape \(4,\)"):
        check_retrieval(lambda images, texts: texts @ images.T)
    with pytest.raises(ExerciseError, match="with every class, then argmax over the classes"):
        check_zeroshot_predict(lambda images, classes: torch.zeros(len(images), dtype=torch.long) + 1)


# The usual wrong answers (issue "Assignments a teacher can grade"): each fails with a message naming the mistake,
# and correct answers written differently from the reference pass.

@pytest.fixture(autouse=True)
def fresh_attempts():
    from minclip.exercises.core import _LAST_FAILED, FAILURES
    FAILURES.clear(), _LAST_FAILED.clear()
    yield
    FAILURES.clear(), _LAST_FAILED.clear()


def _cell(notebook: str, check: str) -> str:
    return next(s for name, _, s in CELLS if name == notebook and f"{check}(" in s.split("### END SOLUTION")[-1])


def test_the_stated_rules_are_enforced():
    import torch.nn.functional as F
    import minclip
    from minclip.exercises import check_clip_logits_grad, check_clip_loss, check_online_logsumexp

    def uses_the_library(images, texts, s):
        return minclip.clip_loss(images, texts, s)
    with pytest.raises(ExerciseError, match="no minclip inside"):
        check_clip_loss(uses_the_library)
    # the same, imported inside the function or through a helper of the notebook
    source = "def helper(i, t, s):\n    from minclip.loss import clip_loss\n    return clip_loss(i, t, s)\n" \
             "def f(i, t, s):\n    return helper(i, t, s)\n"
    scope = {"__name__": "__exercise__"}
    exec(source, scope)
    with pytest.raises(ExerciseError, match="no minclip inside"):
        check_clip_loss(scope["f"])

    def by_autograd(Z):
        Z = Z.clone().requires_grad_()
        labels = torch.arange(len(Z))
        ((F.cross_entropy(Z, labels) + F.cross_entropy(Z.T, labels)) / 2).backward()
        return Z.grad
    with pytest.raises(ExerciseError, match="uses backward.*without autograd"):
        check_clip_logits_grad(by_autograd)
    with pytest.raises(ExerciseError, match=r"joined the chunks \(cat made a tensor larger.*one chunk at a time"):
        check_online_logsumexp(lambda chunks: torch.logsumexp(torch.cat(chunks), dim=0))
    with pytest.raises(ExerciseError, match="joined the chunks"):
        check_online_logsumexp(lambda chunks: torch.hstack(chunks).logsumexp(0))
    for joined in (lambda chunks: torch.cat([c.view(-1) for c in chunks]).logsumexp(0),
                   lambda chunks: torch.cat([c * 1 for c in chunks]).logsumexp(0),
                   lambda chunks: torch.tensor(sum((c.tolist() for c in chunks), [])).logsumexp(0)):
        with pytest.raises(ExerciseError, match="joined the chunks"):
            check_online_logsumexp(joined)


def test_the_rules_look_at_what_names_refer_to_not_at_the_names():
    import functools
    import torch.nn.functional as F
    from minclip.exercises import check_clip_logits_grad, check_clip_loss
    source = """
import torch
import torch.nn.functional as F
import minclip
from torch.autograd import grad as derivative
from torch.func import jacrev

def grad(Z):  # a helper that happens to be called grad: by hand, allowed
    B = len(Z)
    return (Z.softmax(1) + Z.softmax(0) - 2 * torch.eye(B, dtype=Z.dtype)) / (2 * B)

def with_helper(Z):
    return grad(Z)

@torch.no_grad()
def decorated(Z):
    g = grad(Z)
    return torch.stack([g[i] for i in range(len(g))])  # a local `g` read in a comprehension

def L(Z):
    labels = torch.arange(len(Z))
    return (F.cross_entropy(Z, labels) + F.cross_entropy(Z.T, labels)) / 2

def aliased(Z):
    Z = torch.tensor(Z.tolist(), dtype=Z.dtype, requires_grad=True)
    with torch.enable_grad():
        return derivative(L(Z), Z)[0]

def functional(Z):
    return jacrev(L)(Z)

def cheat_by_default(images, texts, s, loss=minclip.clip_loss):
    return loss(images, texts, s)
"""
    scope = {"__name__": "__exercise__"}
    exec(source, scope)
    check_clip_logits_grad(scope["with_helper"])
    check_clip_logits_grad(scope["decorated"])
    for cheat in ("aliased", "functional"):
        with pytest.raises(ExerciseError, match="without autograd"):
            check_clip_logits_grad(scope[cheat])
    with pytest.raises(ExerciseError, match="no minclip inside"):
        check_clip_loss(scope["cheat_by_default"])

    class ClipLoss(torch.nn.Module):  # an nn.Module is read through its forward
        def forward(self, images, texts, s):
            logits, labels = s * images @ texts.T, torch.arange(len(images))
            return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    check_clip_loss(ClipLoss())
    check_clip_loss(functools.partial(ClipLoss().forward))
    with pytest.raises(ExerciseError, match="pass a plain function"):
        check_clip_loss(max)  # a builtin has no Python code to read


def test_no_first_case_where_two_mistakes_look_alike():
    import torch.nn.functional as F
    from minclip.exercises import check_clip_logits_grad, check_clip_loss

    def summed_over_pairs(images, texts, s):
        logits, labels = s * images @ texts.T, torch.arange(len(images))
        return (F.cross_entropy(logits, labels, reduction="sum") + F.cross_entropy(logits.T, labels, reduction="sum")) / 2

    def both_directions_added(images, texts, s):
        logits, labels = s * images @ texts.T, torch.arange(len(images))
        return F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)
    with pytest.raises(ExerciseError, match="B = 5 times too large"):
        check_clip_loss(summed_over_pairs)
    with pytest.raises(ExerciseError, match="added the two directions"):
        check_clip_loss(both_directions_added)
    eye = lambda Z: torch.eye(len(Z), dtype=Z.dtype)  # noqa: E731
    with pytest.raises(ExerciseError, match="B = 4 times the gradient"):
        check_clip_logits_grad(lambda Z: (Z.softmax(1) + Z.softmax(0) - 2 * eye(Z)) / 2)
    with pytest.raises(ExerciseError, match="twice the gradient"):
        check_clip_logits_grad(lambda Z: (Z.softmax(1) + Z.softmax(0) - 2 * eye(Z)) / len(Z))
    with pytest.raises(ExerciseError, match="only the column"):
        check_clip_logits_grad(lambda Z: (Z.softmax(0) - eye(Z)) / len(Z))
    with pytest.raises(ExerciseError, match="wrong sign"):
        check_clip_logits_grad(lambda Z: -(Z.softmax(1) + Z.softmax(0) - 2 * eye(Z)) / (2 * len(Z)))

    def divided_by_the_scale(images, texts, s):
        logits, labels = images @ texts.T / s, torch.arange(len(images))
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    with pytest.raises(ExerciseError, match="divided the similarities by logit_scale"):
        check_clip_loss(divided_by_the_scale)


def test_the_first_crossing_counts():
    import math
    from minclip.exercises import check_crossover

    def last_crossing(shots, accs, zs):
        if accs[0] >= zs:
            return float(shots[0])
        found = None
        for k0, k1, a0, a1 in zip(shots, shots[1:], accs, accs[1:]):
            if a0 < zs <= a1:
                t = (zs - a0) / (a1 - a0)
                found = 2 ** (math.log2(k0) + t * (math.log2(k1) - math.log2(k0)))
        return found
    with pytest.raises(ExerciseError, match="last time.*stop at the first crossing"):
        check_crossover(last_crossing)


def test_shape_mistakes_get_a_message_naming_the_shapes():
    from minclip.exercises import check_clip_normalize, check_topk_accuracy

    def topk_over_images(logits, labels, k):
        return (logits.topk(k, dim=0).indices == labels[:, None]).any(dim=1).float().mean().item()
    with pytest.raises(ExerciseError, match=r"top k over dim=0.*over dim=1"):
        check_topk_accuracy(topk_over_images)

    def hits_not_averaged(logits, labels, k):
        return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float()
    with pytest.raises(ExerciseError, match=r"tensor of shape \(20,\), not one number.*over dim=1"):
        check_topk_accuracy(hits_not_averaged)
    with pytest.raises(ExerciseError, match="a percentage"):
        check_topk_accuracy(lambda logits, labels, k: 100 * (logits.topk(k, dim=1).indices == labels[:, None])
                            .any(dim=1).float().mean().item())

    def flat_mean(images):
        return (images.float() / 255 - torch.tensor((0.48145466, 0.4578275, 0.40821073))) / 0.27
    with pytest.raises(ExerciseError, match=r"shape \(3,\), which broadcasts against the last dim.*\(3, 1, 1\)"):
        check_clip_normalize(flat_mean)


def test_a_detached_temperature_is_named():
    from minclip.exercises import check_gradcache_step
    source = _cell("03_pretraining", "check_gradcache_step")
    detached = source.replace("model.logit_scale.exp())", "model.logit_scale.exp().item())")
    assert detached != source
    with pytest.raises(ExerciseError, match=r"logit_scale.grad is empty.*not \.item\(\)"):
        check_gradcache_step(_defined(detached, "gradcache_step"))


def _defined(source: str, name: str):
    scope = {"__name__": "__exercise__"}
    exec(compile(source.replace(f"check_{name}({name})", ""), "<exercise cell>", "exec"), scope)
    return scope[name]


def test_hints_grow_with_each_failed_attempt():
    from minclip.exercises import check_online_logsumexp

    def stub(chunks):
        raise NotImplementedError("exercise")
    attempts = [lambda chunks: sum(c.sum() for c in chunks),  # three different wrong answers
                lambda chunks: sum(c.max() for c in chunks),
                lambda chunks: max(c.max() for c in chunks)]
    messages = []
    for fn in [stub, attempts[0], attempts[0], attempts[1], attempts[2]]:
        with pytest.raises(ExerciseError) as error:
            check_online_logsumexp(fn)
        messages.append(str(error.value))
    assert "not implemented yet" in messages[0]  # the stub is not an attempt: the first real one gets hint 1
    assert "second failure says more" in messages[1] and "logaddexp" not in messages[1]
    assert messages[2] == messages[1]  # the same code run again is not a new attempt
    assert "third failure gives the formula" in messages[3] and len(messages[3]) > len(messages[1])
    assert "The formula: r = −inf" in messages[4]


def test_correct_answers_written_differently_pass(capsys):
    import math
    from minclip.exercises import (check_clip_logits_grad, check_clip_loss, check_clip_normalize, check_crossover,
                                   check_online_logsumexp, check_topk_accuracy)

    def loss_by_log_softmax(images, texts, s):
        logits = s * images @ texts.T
        return -(logits.log_softmax(1).diagonal().mean() + logits.log_softmax(0).diagonal().mean()) / 2
    check_clip_loss(loss_by_log_softmax)
    check_clip_logits_grad(lambda Z: 0.5 * (Z.softmax(1) - torch.eye(len(Z), dtype=Z.dtype)) / len(Z)
                           + 0.5 * (Z.softmax(0) - torch.eye(len(Z), dtype=Z.dtype)) / len(Z))

    def lse_by_max_shift(chunks):
        m, total = torch.tensor(-math.inf), torch.tensor(0.0)
        for c in chunks:
            new = torch.maximum(m, c.max())
            total = total * torch.exp(m - new) + torch.exp(c - new).sum()
            m = new
        return m + total.log()
    check_online_logsumexp(lse_by_max_shift)

    def merge_by_cat(chunks):  # joins the running value with one chunk at a time: online, and allowed
        running = torch.tensor(-math.inf)
        for c in chunks:
            running = torch.logsumexp(torch.cat([running[None], c]), dim=0)
        return running
    check_online_logsumexp(merge_by_cat)

    def crossover_with_numpy(shots, accs, zs):
        import numpy as np
        for i, a in enumerate(accs):
            if a >= zs:
                if i == 0:
                    return shots[0]
                logk = np.interp(zs, [accs[i - 1], a], [np.log2(shots[i - 1]), np.log2(shots[i])])
                return float(2 ** logk)
        return None
    check_crossover(crossover_with_numpy)

    def topk_by_sorting(logits, labels, k):
        ranked = logits.argsort(dim=1, descending=True)[:, :k]  # (B, k)
        return sum(int(label) in row.tolist() for row, label in zip(ranked, labels)) / len(labels)
    check_topk_accuracy(topk_by_sorting)
    check_clip_normalize(lambda images: (images.float() / 255 - torch.tensor(
        (0.48145466, 0.4578275, 0.40821073))[None, :, None, None]) / torch.tensor(
        (0.26862954, 0.26130258, 0.27577711))[None, :, None, None])
    assert capsys.readouterr().out.count("✓") == 7


def test_every_notebook_ends_with_its_questionnaire_and_the_key_answers_each_question():
    from questionnaires import HEADING, questionnaire_cell, questions
    for nb in NOTEBOOKS:
        key = ROOT / "notebooks" / "answers" / f"{nb.stem}.md"
        assert key.exists(), f"no answer key for {nb.name}: write {key.relative_to(ROOT)}"
        asked = questions(key)
        assert len(asked) >= 5, f"{key.name}: {len(asked)} questions"
        last = nbformat.read(nb, as_version=4).cells[-1]
        assert last.source.startswith(HEADING) and last.source == questionnaire_cell(asked), \
            f"{nb.name}'s questionnaire differs from {key.name}: run scripts/questionnaires.py"
        assert key.read_text().count("\n   Answer: ") == len(asked), f"{key.name}: one '   Answer: ' per question"
