"""Make ``torch_optim.npz``: torch.optim's adaptive members + StepLR + AveragedModel on the
seed's batches.

For each case of :data:`CASES` (each member in float32 and float64), 200 steps from W = 0,
b = 0: logits X W + b, ``F.cross_entropy``'s mean loss, autograd's gradients, then the
member's ``step()`` (single-tensor path: ``foreach=False``) with its settings below, weight
decay on W only (two parameter groups: W's with the case's ``weight_decay``, b's with 0; for
adamw that decay is decoupled), and ``StepLR(step_size=50, gamma=0.5)`` stepped after every
step. After each step past :data:`AVERAGE_START`, ``AveragedModel.update_parameters``: its
first call copies the iterate, each later one takes the running mean, so the mean is of the
iterates after steps 101..200, as ``scratchlr.optim.Averaged(optimizer, start=100)`` keeps.
The batches are the seed's: 128 rows at a time, in file order, of the training split (the
last 55,000 training images), scaled as ``model.pixels`` does.

Stored per case: ``{case}_loss`` (200 logged losses, each batch's before its update), the
final ``{case}_W`` and ``{case}_b``, and for the cases of :data:`AVERAGED` (averaging wraps
any member alike; two keep the file small) the averages ``{case}_avg_W`` and ``{case}_avg_b``.
PyTorch is not a dependency of scratchlr; to re-make the file, in an environment with torch
and scratchlr installed:

    python tests/data/make_torch_optim.py DATA_DIR    # writes tests/data/torch_optim.npz

The file in the repository was made with torch 2.13.0 (CPU), one thread.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scratchlr import model
from scratchlr.dataset import splits
from scratchlr.dataset.records import DATASETS

STEPS = 200
BATCH = 128
STEP_SIZE = 50  # StepLR's
GAMMA = 0.5
AVERAGE_START = 100
# Each member's settings: the torch class, its keyword arguments, and W's weight decay.
MEMBERS: dict[str, tuple[Any, dict[str, Any], float]] = {
    "adam": (torch.optim.Adam, {"lr": 0.01}, 1e-4),
    "adamw": (torch.optim.AdamW, {"lr": 0.01, "betas": (0.8, 0.99)}, 0.1),
    "rmsprop": (torch.optim.RMSprop, {"lr": 0.001}, 1e-4),
    "rmsprop_centered": (
        torch.optim.RMSprop,
        {"lr": 0.001, "alpha": 0.9, "momentum": 0.5, "centered": True, "eps": 1e-6},
        1e-4,
    ),
    "adagrad": (
        torch.optim.Adagrad,
        {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1},
        1e-4,
    ),
}
AVERAGED = ("adam_float32", "rmsprop_centered_float64")
CASES = {
    f"{member}_{dtype}": (member, dtype) for member in MEMBERS for dtype in ("float32", "float64")
}


class Softmax(torch.nn.Module):
    """W (784, 10) and b (10,), zero at first: the module AveragedModel averages."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(torch.zeros((784, 10), dtype=dtype))
        self.b = torch.nn.Parameter(torch.zeros(10, dtype=dtype))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return X @ self.W + self.b


def run(images: np.ndarray, labels: np.ndarray, member: str, dtype: str) -> dict[str, np.ndarray]:
    """The 200 steps of one case."""
    kind, settings, weight_decay = MEMBERS[member]
    net = Softmax(getattr(torch, dtype))
    opt = kind(
        [
            {"params": [net.W], "weight_decay": weight_decay},
            {"params": [net.b], "weight_decay": 0.0},
        ],
        foreach=False,
        **settings,
    )
    schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=STEP_SIZE, gamma=GAMMA)
    averaged = torch.optim.swa_utils.AveragedModel(net)
    losses = []
    for step in range(STEPS):
        rows = np.arange(step * BATCH, (step + 1) * BATCH) % len(labels)
        X = torch.from_numpy(model.pixels(images[rows], dtype))
        y = torch.from_numpy(labels[rows].astype(np.int64))
        loss = F.cross_entropy(net(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if step + 1 > AVERAGE_START:
            averaged.update_parameters(net)
        losses.append(loss.item())
    return {
        "loss": np.array(losses),
        "W": net.W.detach().numpy().copy(),
        "b": net.b.detach().numpy().copy(),
        "avg_W": averaged.module.W.detach().numpy().copy(),
        "avg_b": averaged.module.b.detach().numpy().copy(),
    }


def main() -> int:
    torch.set_num_threads(1)
    data = splits.load(DATASETS["mnist"], sys.argv[1])
    images = np.asarray(data.train.images)
    labels = np.asarray(data.train.labels)
    out = {}
    for case, (member, dtype) in CASES.items():
        for name, value in run(images, labels, member, dtype).items():
            if case in AVERAGED or not name.startswith("avg_"):
                out[f"{case}_{name}"] = value
    np.savez_compressed(Path(__file__).with_name("torch_optim.npz"), **out)
    print(f"wrote torch_optim.npz with torch {torch.__version__}: {', '.join(CASES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
