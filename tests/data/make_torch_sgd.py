"""Make ``torch_sgd.npz``: torch.optim.SGD + lr_scheduler.StepLR on the seed's batches.

For each case (float32 and float64; Nesterov off and on), 200 steps from W = 0, b = 0:
logits X W + b, ``F.cross_entropy``'s mean loss, autograd's gradients, then
``torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=...)`` with ``weight_decay=1e-4`` on W and
none on b (two parameter groups), and ``StepLR(step_size=50, gamma=0.5)`` stepped after every
step. The batches are the seed's: 128 rows at a time, in file order, of the training split
(the last 55,000 training images), scaled as ``model.pixels`` does.

Stored per case: ``{case}_loss`` (200 logged losses, each batch's before its update), and the
final ``{case}_W`` and ``{case}_b``. PyTorch is not a dependency of scratchlr; to re-make the
file, in an environment with torch and scratchlr installed:

    python tests/data/make_torch_sgd.py DATA_DIR    # writes tests/data/torch_sgd.npz

The file in the repository was made with torch 2.13.0 (CPU), one thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scratchlr import model
from scratchlr.dataset import splits
from scratchlr.dataset.records import DATASETS

STEPS = 200
BATCH = 128
LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
STEP_SIZE = 50  # StepLR's
GAMMA = 0.5
CASES = {
    f"{dtype}_{'nesterov' if nesterov else 'momentum'}": (dtype, nesterov)
    for dtype in ("float32", "float64")
    for nesterov in (False, True)
}


def run(
    images: np.ndarray, labels: np.ndarray, dtype: str, nesterov: bool
) -> dict[str, np.ndarray]:
    """The 200 steps of one case."""
    W = torch.zeros((784, 10), dtype=getattr(torch, dtype), requires_grad=True)
    b = torch.zeros(10, dtype=getattr(torch, dtype), requires_grad=True)
    opt = torch.optim.SGD(
        [{"params": [W], "weight_decay": WEIGHT_DECAY}, {"params": [b], "weight_decay": 0.0}],
        lr=LR,
        momentum=MOMENTUM,
        nesterov=nesterov,
    )
    schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=STEP_SIZE, gamma=GAMMA)
    losses = []
    for step in range(STEPS):
        rows = np.arange(step * BATCH, (step + 1) * BATCH) % len(labels)
        X = torch.from_numpy(model.pixels(images[rows], dtype))
        y = torch.from_numpy(labels[rows].astype(np.int64))
        loss = F.cross_entropy(X @ W + b, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(loss.item())
    return {
        "loss": np.array(losses),
        "W": W.detach().numpy().copy(),
        "b": b.detach().numpy().copy(),
    }


def main() -> int:
    torch.set_num_threads(1)
    data = splits.load(DATASETS["mnist"], sys.argv[1])
    images = np.asarray(data.train.images)
    labels = np.asarray(data.train.labels)
    out = {}
    for case, (dtype, nesterov) in CASES.items():
        for name, value in run(images, labels, dtype, nesterov).items():
            out[f"{case}_{name}"] = value
    np.savez_compressed(Path(__file__).with_name("torch_sgd.npz"), **out)
    print(f"wrote torch_sgd.npz with torch {torch.__version__}: {', '.join(CASES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
