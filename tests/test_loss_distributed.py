"""distributed_clip_loss on 2 CPU processes (gloo) equals clip_loss on the full batch, loss and gradients.

This module imports only torch and minclip.loss, because each spawned process imports it again.

Teardown is where multi-process tests break on a busy machine, so the workers are built not to depend on timing:
- they meet through a FileStore (a file in the test's folder), not a TCPStore that rank 0 hosts, so neither rank's
  exit can pull the store from under the other;
- every collective has a 60 s timeout, so a broken rank fails the test instead of hanging it;
- after the results are on disk and the process group is destroyed, a worker leaves with os._exit(0). That skips only
  the interpreter's own finalisation, where gloo's threads can still abort a process ("terminate called without an
  active exception", SIGABRT) after all of its work is done (pytorch/pytorch#179291 describes the mechanism).
"""
import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from minclip.loss import clip_loss, distributed_clip_loss, gather_with_grad

WORLD, B_LOCAL, E = 2, 5, 8


def _full_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(WORLD * B_LOCAL, E, generator=g, dtype=torch.float64), dim=-1)  # (n·B, E)
    texts = F.normalize(torch.randn(WORLD * B_LOCAL, E, generator=g, dtype=torch.float64), dim=-1)  # (n·B, E)
    return images, texts, torch.tensor(14.3, dtype=torch.float64)


def _worker(rank: int, store: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))
    images, texts, scale = _full_batch()
    rows = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
    image, text = images[rows].clone().requires_grad_(), texts[rows].clone().requires_grad_()
    scale.requires_grad_()
    loss = distributed_clip_loss(image, text, scale)
    loss.backward()
    gathered = gather_with_grad(image.detach())
    path = os.path.join(out_dir, f"rank{rank}.pt")
    torch.save({"loss": loss.detach(), "image": image.grad, "text": text.grad, "scale": scale.grad,
                "gathered": gathered}, path + ".tmp")
    os.replace(path + ".tmp", path)  # the file is whole or absent
    dist.barrier()  # both ranks are done before either tears down
    dist.destroy_process_group()
    os._exit(0)  # see the module docstring: nothing is left to do, and finalisation is where gloo can abort


@pytest.mark.slow
def test_two_gloo_ranks_equal_the_full_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    images, texts, scale = (x.clone().requires_grad_() for x in _full_batch())
    full = clip_loss(images, texts, scale)
    full.backward()

    # the mean of the rank losses is the full-batch loss (each rank averages over its own rows)
    torch.testing.assert_close(sum(r["loss"] for r in ranks) / WORLD, full.detach(), rtol=1e-12, atol=0)
    for rank, r in enumerate(ranks):
        rows = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
        torch.testing.assert_close(r["gathered"], images.detach())
        # gather_with_grad sums every rank's gradient into the owner's rows; DDP then divides by the world size
        torch.testing.assert_close(r["image"] / WORLD, images.grad[rows], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(r["text"] / WORLD, texts.grad[rows], rtol=1e-10, atol=1e-12)
    # logit_scale is a replicated parameter: DDP's average of the per-rank gradients is the full-batch gradient
    torch.testing.assert_close(sum(r["scale"] for r in ranks) / WORLD, scale.grad, rtol=1e-10, atol=1e-12)


def test_without_a_process_group_it_is_clip_loss():
    images, texts, scale = _full_batch()
    assert not dist.is_initialized()
    assert gather_with_grad(images) is images
    torch.testing.assert_close(distributed_clip_loss(images, texts, scale), clip_loss(images, texts, scale))
