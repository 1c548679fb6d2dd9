"""distributed_clip_loss, distributed_siglip_loss and negclip_loss on 2 CPU processes (gloo) equal clip_loss,
siglip_loss and negclip_loss on the full batch, loss and gradients.

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

from minclip.loss import (clip_loss, distributed_clip_loss, distributed_siglip_loss, gather_with_grad, negclip_loss,
                          siglip_loss)

WORLD, B_LOCAL, E = 2, 5, 8
LOSSES = {  # name: (single-process loss, distributed loss, its (B, E) inputs, its scalar parameters)
    "clip": (clip_loss, distributed_clip_loss, 2, (14.3,)),  # images, texts; logit_scale
    "siglip": (siglip_loss, distributed_siglip_loss, 2, (10.0, -10.0)),  # logit_scale, logit_bias at SigLIP's init
    "negclip": (negclip_loss, negclip_loss, 3, (14.3,)),  # images, texts, hard negatives; one function for both
}


def _full_batch(name: str, seed: int = 0):
    """The (n·B, E) inputs (images, texts[, negatives]) and the loss's scalar parameters, all float64: float32
    kernels differ across CPUs."""
    g = torch.Generator().manual_seed(seed)
    rows = [F.normalize(torch.randn(WORLD * B_LOCAL, E, generator=g, dtype=torch.float64), dim=-1)  # (n·B, E)
            for _ in range(LOSSES[name][2])]
    return rows, [torch.tensor(x, dtype=torch.float64) for x in LOSSES[name][3]]


def _worker(rank: int, store: str, out_dir: str, name: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))
    full, scalars = _full_batch(name)
    rows = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
    mine = [x[rows].clone().requires_grad_() for x in full]
    for x in scalars:
        x.requires_grad_()
    loss = LOSSES[name][1](*mine, *scalars)
    loss.backward()
    gathered = gather_with_grad(mine[0].detach())
    path = os.path.join(out_dir, f"rank{rank}.pt")
    torch.save({"loss": loss.detach(), "inputs": [x.grad for x in mine], "scalars": [x.grad for x in scalars],
                "gathered": gathered}, path + ".tmp")
    os.replace(path + ".tmp", path)  # the file is whole or absent
    dist.barrier()  # both ranks are done before either tears down
    dist.destroy_process_group()
    os._exit(0)  # see the module docstring: nothing is left to do, and finalisation is where gloo can abort


@pytest.mark.slow
@pytest.mark.parametrize("name", LOSSES)
def test_two_gloo_ranks_equal_the_full_batch(tmp_path, name):
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path), name), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    inputs, scalars = _full_batch(name)
    for x in inputs + scalars:
        x.requires_grad_()
    full = LOSSES[name][0](*inputs, *scalars)
    full.backward()

    # the mean of the rank losses is the full-batch loss (each rank averages over its own rows)
    torch.testing.assert_close(sum(r["loss"] for r in ranks) / WORLD, full.detach(), rtol=1e-12, atol=0)
    for rank, r in enumerate(ranks):
        rows = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
        torch.testing.assert_close(r["gathered"], inputs[0].detach())
        # gather_with_grad sums every rank's gradient into the owner's rows; DDP then divides by the world size
        for local, x in zip(r["inputs"], inputs):
            torch.testing.assert_close(local / WORLD, x.grad[rows], rtol=1e-12, atol=1e-14)
    # logit_scale (and SigLIP's logit_bias) are replicated parameters: DDP's average of the per-rank gradients is the
    # full-batch gradient
    for i, x in enumerate(scalars):
        torch.testing.assert_close(sum(r["scalars"][i] for r in ranks) / WORLD, x.grad, rtol=1e-12, atol=1e-14)


def test_without_a_process_group_it_is_clip_loss():
    (images, texts), (scale,) = _full_batch("clip")
    assert not dist.is_initialized()
    assert gather_with_grad(images) is images
    torch.testing.assert_close(distributed_clip_loss(images, texts, scale), clip_loss(images, texts, scale))
