"""Data parallelism under torchrun: each rank encodes its share of the batch, and gradients are averaged.

`torchrun --nproc_per_node N -m minclip.train ...` sets RANK, WORLD_SIZE and LOCAL_RANK; a plain
`python -m minclip.train` is a world of one and none of this does anything.

Why not wrap the model in DistributedDataParallel? GradCache (train.train_step) runs several backward passes per
step and the temperature receives its gradient outside the model's forward; averaging the gradients once, after all
of them, is what DDP would do, written out in one collective.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Parallel:
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def setup(cls, device: str = "auto") -> "Parallel":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        device = resolve_device(device)
        if world == 1:
            return cls(0, 1, device)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), device)

    def average_gradients(self, model: torch.nn.Module) -> None:
        """All-reduce every gradient and divide by the world size: one flat buffer, one collective."""
        if self.world == 1:
            return
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.flatten() for p in params])
        dist.all_reduce(flat)
        flat /= self.world
        for p, g in zip(params, flat.split([p.numel() for p in params])):
            p.grad.copy_(g.view_as(p))

    def any(self, flag: bool) -> bool:
        """True on every rank if `flag` is True on any (e.g. Ctrl-C reached one rank): all ranks stop at the same step,
        or the others would wait forever in the next collective."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast_int(self, value: int) -> int:
        """Rank 0's value everywhere (e.g. the number of steps --minutes allows)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], device=self.device)
        dist.broadcast(t, 0)
        return int(t.item())

    def close(self, wait: bool = True) -> None:
        """Tear the process group down. wait=False after an error, when the other ranks may never reach a barrier."""
        if self.world > 1 and dist.is_initialized():
            if wait:
                dist.barrier()  # every rank is done before any tears down: rank 0 hosts the rendezvous store
            dist.destroy_process_group()


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if there is a GPU, else cpu; any other name is checked, so that a missing device is named now
    rather than failing deep inside the first step."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device name; use auto, cpu, cuda, cuda:1, mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this machine has no CUDA GPU that torch can use; use --device cpu "
                         "(or auto)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: there are only {torch.cuda.device_count()} GPUs (cuda:0 ...)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS (Apple GPU) is not available here; use --device cpu (or auto)")
    return device
