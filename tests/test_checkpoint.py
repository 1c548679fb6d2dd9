"""minclip/checkpoint.py: a checkpoint round-trips, a file that is not one is named with the fix, and weights that
are not finite are never written."""
import pytest
import torch

import minclip
from minclip import CLIP, CLIPConfig
from minclip.checkpoint import read_checkpoint, save_checkpoint
from minclip.tokenizer import CLIPTokenizer


def tiny():
    torch.manual_seed(0)
    return CLIP(CLIPConfig.preset("tiny"))


@pytest.fixture(scope="module")
def tokenizer():
    return CLIPTokenizer.train(["a red circle", "two blue squares on the left"], vocab_size=64)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tokenizer):
    """A run folder with the checkpoint of an untrained tiny CLIP."""
    out = tmp_path_factory.mktemp("run")
    save_checkpoint(out / "checkpoint.pt", tiny(), tokenizer, step=3, extra={"train_seconds": 1.5})
    return out


def test_load_gives_back_the_model_and_tokenizer(run, tokenizer):
    model, loaded_tokenizer, preprocess = minclip.load(run)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny().state_dict().values()))
    assert not model.training and loaded_tokenizer.to_json() == tokenizer.to_json()
    assert preprocess(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).dtype == torch.float32
    state = read_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 3 and state["extra"] == {"train_seconds": 1.5}


def bare_state_dict(path, run):
    torch.save(tiny().state_dict(), path)


def other_preset(path, run):
    """The tiny model's weights under a config that says "small"."""
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["model_config"] = CLIPConfig.preset("small").to_dict()
    torch.save(state, path)


def truncated(path, run):
    data = (run / "checkpoint.pt").read_bytes()
    path.write_bytes(data[:len(data) // 2])


def torchscript(path, run):
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)


@pytest.mark.parametrize("write, message", [
    (lambda path, run: path.write_bytes(b""), "is empty \\(0 bytes\\)"),
    (lambda path, run: path.write_text("step: 100\nloss: 0.3\n"), "not a file written by torch.save .*b'step: 100"),
    (lambda path, run: path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(100)),
     "not a file written by torch.save .*JFIF"),
    (truncated, "truncated or damaged checkpoint"),
    (bare_state_dict, "bare state dict .*CLIP\\(config\\).load_state_dict.*from_open_clip"),
    (other_preset, "says its model is preset 'small', but its weights do not fit that model: .*wrong shape"),
    (torchscript, "TorchScript archives can run code on load"),
    (lambda path, run: torch.save([1, 2, 3], path), "not a minclip checkpoint: it holds a list"),
])
def test_a_file_that_is_not_a_checkpoint_is_named_with_the_fix(write, message, run, tmp_path):
    path = tmp_path / "checkpoint.pt"
    write(path, run)
    for source in (path, tmp_path):  # the file itself, or its run folder
        with pytest.raises(ValueError, match=message) as error:
            minclip.load(source)
        assert str(path) in str(error.value)
        assert "weights_only=False" not in str(error.value)  # torch's own advice, unsafe for files from elsewhere


def test_an_empty_run_folder_says_it_has_no_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"run folder {tmp_path} has no checkpoint.pt"):
        minclip.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no run or checkpoint at"):
        read_checkpoint(tmp_path / "nope.pt")


def test_non_finite_weights_are_never_written(tmp_path, tokenizer):
    path = tmp_path / "checkpoint.pt"
    model = tiny()
    save_checkpoint(path, model, tokenizer, step=1)
    good = path.read_bytes()
    with torch.no_grad():
        model.text.ln_final.weight[3] = float("nan")
    with pytest.raises(FloatingPointError, match="text.ln_final.weight holds NaN or inf"):
        save_checkpoint(path, model, tokenizer, step=2)
    assert path.read_bytes() == good  # the last good checkpoint is kept
